//! The trace map: where a placed order's time goes, stage by stage and hop
//! by hop, at 25, 50 and 70 % of the monolith's peak, in both builds, with
//! the waits (for a pool connection, a row lock, a core) apart from work.
//!
//! Why it exists: a p99 says that something queues, not what. The map is
//! read from the services' own spans. Each build is started once more with
//! its spans exported to the generator's OTLP receiver ([`crate::otlp`]);
//! the default mix runs at each level, and every n-th placed order (about
//! [`TRACES_PER_S`] a second, whatever the rate) carries a sampled
//! `traceparent`. The services' sampler is `parentbased_traceidratio` with
//! ratio 0: they record exactly those requests, end to end, and nothing
//! else, so exporting costs them little. The generator times each traced
//! request itself; the rest comes from the spans:
//!
//! - **edge and wire**: the generator's time minus the order handler's
//!   server span (nginx both ways, loopback, HTTP parsing, and the wait
//!   before a worker picks the request up);
//! - **order handler** and its stages: the idempotency-key lookup, the
//!   catalog read, the order insert and the settle transaction (each a
//!   `db.tx` span, see `twinshop_platform::db::acquire`), the user lookup
//!   and the charge (client spans in the microservices, the use cases'
//!   spans in the monolith), and the rest of the handler;
//! - **hops**: a call's client span minus the callee's server span (the
//!   wire, both frameworks, and the callee's wait before its span starts);
//! - **outbox relay**: from the settle transaction's end to the event's
//!   publication (microservices) or delivery (monolith); **broker**: from
//!   publication to the first consumer;
//! - **queueing**: waiting for a pool connection (`db.acquire` spans) and
//!   statements that take a row lock (`db.lock`), per request; waiting for
//!   a core, per process, from the kernel's run-queue delay
//!   ([`super::sched`]).
//!
//! Percentiles are over the traced orders of a step (exact, no histogram).
//! Each step's own latency is reported beside the untraced runs' at the
//! same rate, so a reader can see whether tracing disturbed it.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{launch::Build, sched::PerRequest};
use crate::{
    otlp::{Kind, SpanRecord},
    shop::ClientTrace,
};

/// Traced orders per second the generator aims for at every level.
pub const TRACES_PER_S: f64 = 12.0;

/// The levels the map is drawn at (fractions of the monolith's peak).
pub const LEVELS: [f64; 3] = [0.25, 0.5, 0.7];

/// One stage of a placed order, over the traced orders of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub name: String,
    /// 0 for the whole request, 1 inside the handler, 2 inside a call.
    pub depth: u8,
    /// A wait rather than work.
    pub queueing: bool,
    /// Traced orders that had this stage.
    pub n: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
}

/// The map of one build at one level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelMap {
    pub build: Build,
    pub level: f64,
    pub rate: f64,
    /// One placed order in `every` was traced.
    pub every: u64,
    /// Traced orders answered 201, and of those, with their handler's span.
    pub traced: usize,
    pub complete: usize,
    /// The traced step's own POST /v1/orders latency (all its orders).
    pub place_p50_us: f64,
    pub place_p99_us: f64,
    pub stages: Vec<Stage>,
    /// Waiting for a core and context switches, per request of the step.
    pub sched: BTreeMap<String, PerRequest>,
}

/// The whole map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceMap {
    pub traces_per_s: f64,
    pub levels: Vec<LevelMap>,
}

// Stage names, in the order the table lists them.
pub const CLIENT: &str = "request, as the generator saw it";
pub const EDGE: &str = "edge and wire (generator − order handler)";
pub const HANDLER: &str = "order handler (its server span)";
pub const FIND_KEY: &str = "idempotency-key lookup";
pub const CATALOG: &str = "catalog read";
pub const LOOKUP: &str = "user lookup";
pub const LOOKUP_HOP: &str = "hop: lookup call − user service's span";
pub const LOOKUP_CALLEE: &str = "user service's handler";
pub const CREATE: &str = "order insert (transaction)";
pub const CHARGE: &str = "charge";
pub const CHARGE_HOP: &str = "hop: charge call − payment service's span";
pub const CHARGE_CALLEE: &str = "payment service's handler";
pub const CHARGE_TX: &str = "charge transaction";
pub const SETTLE: &str = "settle and outbox insert (transaction)";
pub const REST: &str = "rest of the handler (framework, auth, JSON, layers, waits between stages)";
pub const RELAY: &str = "outbox relay: settled → event published (or delivered, monolith)";
pub const BROKER: &str = "broker: published → first consumer";
pub const POOL: &str = "waiting for a pool connection (all db.acquire before the answer)";
pub const LOCKS: &str = "row-lock statements (SELECT … FOR UPDATE, wait included)";

/// `(name, depth, queueing)` of every stage, in table order.
pub const STAGES: [(&str, u8, bool); 19] = [
    (CLIENT, 0, false),
    (EDGE, 1, false),
    (HANDLER, 1, false),
    (FIND_KEY, 2, false),
    (CATALOG, 2, false),
    (LOOKUP, 2, false),
    (LOOKUP_HOP, 3, false),
    (LOOKUP_CALLEE, 3, false),
    (CREATE, 2, false),
    (CHARGE, 2, false),
    (CHARGE_HOP, 3, false),
    (CHARGE_CALLEE, 3, false),
    (CHARGE_TX, 3, false),
    (SETTLE, 2, false),
    (REST, 2, false),
    (POOL, 1, true),
    (LOCKS, 1, true),
    (RELAY, 0, false),
    (BROKER, 0, false),
];

/// The top-level stages a bar chart shows.
pub const CHART_STAGES: [&str; 9] = [EDGE, FIND_KEY, CATALOG, LOOKUP, CREATE, CHARGE, SETTLE, REST, RELAY];

/// The span names a stage is read from.
const PLACE_ROUTE: &str = "POST /v1/orders";
const LOOKUP_CALL: &str = "GET /internal/v1/users/{id}";
const CHARGE_CALL: &str = "twinshop.payment.v1.Payments/Charge";

/// The stages of one traced order, in µs (absent when the trace lacks the spans).
pub fn stages_of(spans: &[&SpanRecord], client: &ClientTrace) -> BTreeMap<&'static str, f64> {
    let mut out = BTreeMap::new();
    out.insert(CLIENT, client.latency_us);
    let Some(server) = spans.iter().find(|s| s.kind == Kind::Server && s.name == PLACE_ROUTE) else { return out };
    let home = &server.service;
    out.insert(EDGE, (client.latency_us - server.duration_us()).max(0.0));
    out.insert(HANDLER, server.duration_us());
    let mine = |pred: &dyn Fn(&SpanRecord) -> bool| -> Vec<&SpanRecord> {
        spans.iter().copied().filter(|s| &s.service == home && pred(s)).collect()
    };
    let sum = |v: &[&SpanRecord]| -> Option<f64> { (!v.is_empty()).then(|| v.iter().map(|s| s.duration_us()).sum()) };
    let unit = |name: &'static str| mine(&|s: &SpanRecord| s.name == name && s.unit.as_deref() == Some(name));
    let put = |out: &mut BTreeMap<&'static str, f64>, stage: &'static str, value: Option<f64>| {
        if let Some(v) = value {
            out.insert(stage, v);
        }
    };
    put(&mut out, FIND_KEY, sum(&unit("order.find_key")));
    put(&mut out, CATALOG, sum(&unit("order.catalog")));
    put(&mut out, CREATE, sum(&unit("order.create")));
    let settle = unit("order.transition");
    put(&mut out, SETTLE, sum(&settle));

    // A call: the caller's client span (microservices) or the use case's
    // span in the same process (monolith).
    let call = |client_name: &str, use_case: &str| -> (Vec<&SpanRecord>, bool) {
        let clients = mine(&|s: &SpanRecord| s.kind == Kind::Client && s.name == client_name);
        if clients.is_empty() {
            (mine(&|s: &SpanRecord| s.kind == Kind::Internal && s.name == use_case && s.unit.is_none()), false)
        } else {
            (clients, true)
        }
    };
    let callee = |client: &SpanRecord, name: &str| {
        spans.iter().copied().find(|s| s.kind == Kind::Server && s.name == name && s.parent_id == client.span_id)
    };
    let (lookups, remote) = call(LOOKUP_CALL, "user.lookup");
    put(&mut out, LOOKUP, sum(&lookups));
    if remote {
        let served: Vec<(&SpanRecord, &SpanRecord)> =
            lookups.iter().filter_map(|c| Some((*c, callee(c, LOOKUP_CALL)?))).collect();
        if !served.is_empty() {
            put(&mut out, LOOKUP_HOP, Some(served.iter().map(|(c, s)| c.duration_us() - s.duration_us()).sum()));
            put(&mut out, LOOKUP_CALLEE, Some(served.iter().map(|(_, s)| s.duration_us()).sum()));
        }
    }
    let (charges, remote) = call(CHARGE_CALL, "payment.charge");
    put(&mut out, CHARGE, sum(&charges));
    if remote {
        let served: Vec<(&SpanRecord, &SpanRecord)> =
            charges.iter().filter_map(|c| Some((*c, callee(c, CHARGE_CALL)?))).collect();
        if !served.is_empty() {
            put(&mut out, CHARGE_HOP, Some(served.iter().map(|(c, s)| c.duration_us() - s.duration_us()).sum()));
            put(&mut out, CHARGE_CALLEE, Some(served.iter().map(|(_, s)| s.duration_us()).sum()));
        }
    }
    let charge_tx: Vec<&SpanRecord> = spans
        .iter()
        .copied()
        .filter(|s| s.name == "payment.charge" && s.unit.as_deref() == Some("payment.charge"))
        .collect();
    put(&mut out, CHARGE_TX, sum(&charge_tx));
    let known: f64 = [FIND_KEY, CATALOG, LOOKUP, CREATE, CHARGE, SETTLE].iter().filter_map(|k| out.get(k)).sum();
    out.insert(REST, (server.duration_us() - known).max(0.0));

    // Waits on the request path (everything that started before the answer).
    let before_answer = |s: &&SpanRecord| s.start_ns < server.end_ns;
    let acquires: Vec<&SpanRecord> =
        spans.iter().copied().filter(|s| s.name == "pool acquire").filter(before_answer).collect();
    put(&mut out, POOL, sum(&acquires).or(Some(0.0)).filter(|_| !unit("order.create").is_empty()));
    let locks: Vec<&SpanRecord> =
        spans.iter().copied().filter(|s| s.name == "row lock").filter(before_answer).collect();
    put(&mut out, LOCKS, sum(&locks).or(Some(0.0)).filter(|_| !settle.is_empty()));

    // After the answer: the event's way out.
    if let Some(settled) = settle.iter().map(|s| s.end_ns).max() {
        let first =
            |kind: Kind| spans.iter().filter(|s| s.kind == kind && s.start_ns >= settled).map(|s| s.start_ns).min();
        let published = first(Kind::Producer);
        let consumed = first(Kind::Consumer);
        match (published, consumed) {
            (Some(p), c) => {
                out.insert(RELAY, p.saturating_sub(settled) as f64 / 1e3);
                let end = spans.iter().filter(|s| s.kind == Kind::Producer && s.start_ns == p).map(|s| s.end_ns).next();
                if let (Some(c), Some(end)) = (c, end) {
                    out.insert(BROKER, c.saturating_sub(end) as f64 / 1e3);
                }
            }
            (None, Some(c)) => {
                out.insert(RELAY, c.saturating_sub(settled) as f64 / 1e3);
            }
            (None, None) => {}
        }
    }
    out
}

/// Exact percentile `q` (0–1) of `values` (sorted here).
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// The stages of a step's traced orders: the client's records joined with
/// the spans received (answered orders only).
pub fn stages(clients: &[ClientTrace], spans: &[SpanRecord]) -> (Vec<Stage>, usize, usize) {
    let mut by_trace: HashMap<u128, Vec<&SpanRecord>> = HashMap::new();
    for s in spans {
        by_trace.entry(s.trace_id).or_default().push(s);
    }
    let mut values: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let (mut traced, mut complete) = (0, 0);
    for c in clients.iter().filter(|c| c.status == 201) {
        traced += 1;
        let trace = by_trace.get(&c.trace_id).map(Vec::as_slice).unwrap_or_default();
        let stages = stages_of(trace, c);
        if stages.contains_key(HANDLER) {
            complete += 1;
        }
        for (name, v) in stages {
            values.entry(name).or_default().push(v);
        }
    }
    let table = STAGES
        .iter()
        .filter_map(|(name, depth, queueing)| {
            let v = values.get_mut(name)?;
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            Some(Stage {
                name: (*name).to_owned(),
                depth: *depth,
                queueing: *queueing,
                n: v.len(),
                p50_us: percentile(v, 0.5),
                p99_us: percentile(v, 0.99),
                mean_us: mean,
            })
        })
        .collect();
    (table, traced, complete)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn span(service: &str, name: &str, kind: Kind, id: u64, parent: u64, start_us: u64, end_us: u64) -> SpanRecord {
        SpanRecord {
            trace_id: 7,
            span_id: id,
            parent_id: parent,
            service: Arc::from(service),
            name: name.to_owned(),
            kind,
            start_ns: start_us * 1_000,
            end_ns: end_us * 1_000,
            busy_ns: None,
            idle_ns: None,
            unit: None,
        }
    }

    fn tx(service: &str, unit: &str, id: u64, parent: u64, start_us: u64, end_us: u64) -> SpanRecord {
        SpanRecord { unit: Some(unit.to_owned()), ..span(service, unit, Kind::Internal, id, parent, start_us, end_us) }
    }

    /// A placed order through the microservices, times in µs.
    fn micro_trace() -> Vec<SpanRecord> {
        vec![
            span("order", PLACE_ROUTE, Kind::Server, 1, 99, 100, 3_100),
            tx("order", "order.find_key", 2, 1, 200, 400),
            span("order", "pool acquire", Kind::Internal, 3, 2, 200, 250),
            span("order", LOOKUP_CALL, Kind::Client, 4, 1, 500, 1_000),
            span("user", LOOKUP_CALL, Kind::Server, 5, 4, 600, 900),
            tx("order", "order.create", 6, 1, 1_000, 1_300),
            span("order", CHARGE_CALL, Kind::Client, 7, 1, 1_300, 2_300),
            span("payment", CHARGE_CALL, Kind::Server, 8, 7, 1_400, 2_200),
            tx("payment", "payment.charge", 9, 8, 1_500, 2_100),
            span("payment", "row lock", Kind::Internal, 10, 9, 1_600, 1_700),
            tx("order", "order.transition", 11, 1, 2_400, 2_900),
            span("order", "order.confirmed publish", Kind::Producer, 12, 11, 4_900, 5_000),
            span("user", "order.confirmed process", Kind::Consumer, 13, 12, 5_400, 5_600),
        ]
    }

    #[test]
    fn a_microservices_order_splits_into_its_stages() {
        let spans = micro_trace();
        let refs: Vec<&SpanRecord> = spans.iter().collect();
        let client = ClientTrace { trace_id: 7, latency_us: 3_500.0, status: 201 };
        let st = stages_of(&refs, &client);
        assert_eq!(st[CLIENT], 3_500.0);
        assert_eq!(st[EDGE], 500.0, "3500 seen − 3000 handled");
        assert_eq!(st[HANDLER], 3_000.0);
        assert_eq!(
            (st[FIND_KEY], st[LOOKUP], st[CREATE], st[CHARGE], st[SETTLE]),
            (200.0, 500.0, 300.0, 1_000.0, 500.0)
        );
        assert_eq!((st[LOOKUP_HOP], st[LOOKUP_CALLEE]), (200.0, 300.0));
        assert_eq!((st[CHARGE_HOP], st[CHARGE_CALLEE], st[CHARGE_TX]), (200.0, 800.0, 600.0));
        assert_eq!(st[REST], 3_000.0 - (200.0 + 500.0 + 300.0 + 1_000.0 + 500.0));
        assert_eq!((st[POOL], st[LOCKS]), (50.0, 100.0));
        assert_eq!((st[RELAY], st[BROKER]), (2_000.0, 400.0));
        assert!(!st.contains_key(CATALOG), "no span, no stage");
    }

    #[test]
    fn a_monolith_order_reads_its_calls_from_the_use_cases() {
        let spans = [
            span("monolith", PLACE_ROUTE, Kind::Server, 1, 0, 0, 2_000),
            span("monolith", "user.lookup", Kind::Internal, 2, 1, 100, 300),
            tx("monolith", "order.create", 3, 1, 300, 500),
            span("monolith", "payment.charge", Kind::Internal, 4, 1, 500, 1_200),
            tx("monolith", "order.transition", 5, 1, 1_200, 1_500),
            span("monolith", "order.confirmed process", Kind::Consumer, 6, 5, 1_800, 1_900),
        ];
        let refs: Vec<&SpanRecord> = spans.iter().collect();
        let st = stages_of(&refs, &ClientTrace { trace_id: 7, latency_us: 2_300.0, status: 201 });
        assert_eq!((st[LOOKUP], st[CHARGE]), (200.0, 700.0));
        assert!(!st.contains_key(LOOKUP_HOP) && !st.contains_key(CHARGE_HOP), "no hop in one process");
        assert_eq!(st[RELAY], 300.0, "settled to delivered");
        assert!(!st.contains_key(BROKER));
        assert_eq!(st[POOL], 0.0, "instrumented, and nothing waited");
    }

    #[test]
    fn stages_aggregate_over_the_answered_orders_only() {
        let spans = micro_trace();
        let answered = ClientTrace { trace_id: 7, latency_us: 3_500.0, status: 201 };
        let refused = ClientTrace { trace_id: 8, latency_us: 10.0, status: 503 };
        let lost = ClientTrace { trace_id: 9, latency_us: 9_000.0, status: 201 };
        let (table, traced, complete) = stages(&[answered, refused, lost], &spans);
        assert_eq!((traced, complete), (2, 1), "the 503 is not counted; the one without spans is incomplete");
        let client = table.iter().find(|s| s.name == CLIENT).expect("client stage");
        assert_eq!((client.n, client.p50_us, client.p99_us), (2, 3_500.0, 9_000.0));
        let edge = table.iter().find(|s| s.name == EDGE).expect("edge stage");
        assert_eq!(edge.n, 1);
        let order: Vec<&str> = table.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(order.first(), Some(&CLIENT));
        assert!(order.iter().position(|n| *n == HANDLER) < order.iter().position(|n| *n == REST));
    }

    #[test]
    fn percentiles_are_exact_ranks() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 0.5), 50.0);
        assert_eq!(percentile(&mut v, 0.99), 99.0);
        assert!(percentile(&mut [], 0.5).is_nan());
    }
}
