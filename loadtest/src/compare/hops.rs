//! Direct probes of the microservices' internal calls, at a low constant
//! rate: what one HTTP hop and one gRPC hop cost in latency and in CPU,
//! and what the same calls cost when only the frameworks answer them.
//!
//! Why it exists: the comparison's latency difference divided by the hops
//! per order is an estimate; a probe of each internal call alone is the
//! measurement, and the same probe against the bare-framework floor
//! ([`crate::floor`], its own process) says how much of it is ours. Three
//! probes, each an engine [`Operation`], timed like every other request
//! (open model, from the intended send time):
//!
//! - `GET /internal/v1/users/{id}` on the user service's internal port,
//!   for pool users (a Redis cache hit, as during placement): the HTTP hop
//!   the order service makes for every order; its floor is a bare axum
//!   route reading the same kind of entry from Redis;
//! - gRPC `grpc.health.v1.Health/Check` on the payment service: the pure
//!   transport cost of a gRPC hop (HTTP/2, framing, tonic), no work behind;
//!   its floor is tonic-health on a bare tonic server;
//! - gRPC `twinshop.payment.v1.Payments/Charge` for a random order of a
//!   random unknown user: a real Charge transaction (a new empty wallet,
//!   answered `INSUFFICIENT_FUNDS`), touching no pool user's money; its
//!   floor answers the same without a transaction, so its ratio is what
//!   the transaction adds, not overhead.
//!
//! Ours and the floor are measured **interleaved**: each round runs every
//! probe against ours, then against the floor, for a slice of the probe's
//! duration, and the slices add up; whatever else the machine does during
//! the probes falls on both alike.
//!
//! All go through twinshop-client's internal part ([`UserDirectory`],
//! [`Payments`]): the gRPC calls over one HTTP/2 connection with tonic, as
//! the order service makes them.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use twinshop_client::{ApiError, Payments, RpcError, UserDirectory};
use uuid::Uuid;

use super::procs::{Watch, cpu_delta_ms};
use crate::{
    engine::{self, Model, Operation, Phase},
    floor::FloorAddrs,
    stats::{Outcome, Recorder},
};

pub const LOOKUP: &str = "GET /internal/v1/users/{id}";
pub const HEALTH: &str = "grpc Health/Check";
pub const CHARGE: &str = "grpc Payments/Charge";

/// The floor process's name in CPU tables.
pub const FLOOR: &str = "floor (loadtest-floor)";

/// What one probe measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub name: String,
    pub calls: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    /// The process that answers the call.
    pub callee: String,
    /// Its CPU per call (µs), and the rest of the machine's attributed CPU.
    pub callee_cpu_us: f64,
    pub cpu_us_by_process: BTreeMap<String, f64>,
    /// The same call against the bare-framework floor, measured
    /// interleaved with this one (absent in older results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<Box<Probe>>,
}

/// A call set against its floor: ours / floor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloorRatios {
    pub callee_cpu: f64,
    pub p50: f64,
    pub p99: f64,
}

impl Probe {
    /// Ours / the floor's callee CPU, p50 and p99 (`None` without a floor).
    pub fn floor_ratios(&self) -> Option<FloorRatios> {
        let f = self.floor.as_deref()?;
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        Some(FloorRatios {
            callee_cpu: ratio(self.callee_cpu_us, f.callee_cpu_us),
            p50: ratio(self.p50_us as f64, f.p50_us as f64),
            p99: ratio(self.p99_us as f64, f.p99_us as f64),
        })
    }
}

/// All probes of one comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hops {
    pub rate: f64,
    /// Seconds of each probe against ours (the floor got as many).
    pub duration_s: f64,
    /// Interleaved rounds the duration was split into (0 in older results: one, no floor).
    #[serde(default)]
    pub rounds: usize,
    pub probes: Vec<Probe>,
}

/// One of the three probes as an engine operation.
#[derive(Debug)]
enum HopProbe {
    Lookup { directory: UserDirectory, user_ids: Vec<Uuid> },
    Health(Payments),
    Charge(Payments),
}

/// A lookup as an [`Outcome`]: found is 200, unknown 404, the rest as answered.
fn lookup_outcome(result: Result<bool, ApiError>) -> Outcome {
    let status = match &result {
        Ok(true) => Ok(200),
        Ok(false) => Ok(404),
        Err(e) => match (e.status(), e.transport()) {
            (Some(status), _) => Ok(status.as_u16()),
            (None, Some(kind)) => Err(kind),
            (None, None) => Ok(500),
        },
    };
    Outcome { endpoint: LOOKUP, status, code: result.err().and_then(|e| e.code().map(str::to_owned)), tag: None }
}

/// A gRPC result as an [`Outcome`]: OK is HTTP 200-like, a refusal an error
/// (500 + its code), no answer a transport error.
fn grpc_outcome<T>(endpoint: &'static str, result: Result<T, RpcError>) -> Outcome {
    match result {
        Ok(_) => Outcome { endpoint, status: Ok(200), code: None, tag: None },
        Err(RpcError::Status { status, .. }) => Outcome {
            endpoint,
            status: Ok(500),
            code: Some(format!("grpc-status {}", status.code() as i32)),
            tag: None,
        },
        Err(RpcError::Transport { kind, .. }) => Outcome { endpoint, status: Err(kind), code: None, tag: None },
    }
}

impl Operation for HopProbe {
    async fn call(&self, i: u64) -> Outcome {
        match self {
            Self::Lookup { directory, user_ids } => {
                let Some(id) = user_ids.get((i as usize) % user_ids.len().max(1)) else {
                    return lookup_outcome(Ok(false));
                };
                lookup_outcome(directory.user(*id).await.map(|found| found.is_some()))
            }
            // The server's overall status.
            Self::Health(payments) => grpc_outcome(HEALTH, payments.health("").await),
            Self::Charge(payments) => grpc_outcome(CHARGE, payments.charge(Uuid::now_v7(), Uuid::now_v7(), 100).await),
        }
    }
}

/// The three probes against one target (ours, or the floor).
fn probes_of(user_http: &str, grpc: &str, user_ids: &[Uuid]) -> Result<[HopProbe; 3]> {
    let directory =
        twinshop_client::Client::builder().timeout(Duration::from_secs(5)).build(user_http).context("a lookup URL")?;
    let payments = Payments::new(grpc).context("a gRPC URL")?;
    Ok([
        HopProbe::Lookup { directory: UserDirectory::with_client(directory), user_ids: user_ids.to_vec() },
        HopProbe::Health(payments.clone()),
        HopProbe::Charge(payments),
    ])
}

/// What one probe against one target accumulated over its slices.
#[derive(Default)]
struct Tally {
    recorder: Arc<Recorder>,
    window: Duration,
    cpu_ms: BTreeMap<String, f64>,
}

impl Tally {
    fn probe(&self, name: &str, callee: &str) -> Probe {
        let summary = self.recorder.summary(self.window);
        let o = &summary.overall;
        let per_call = crate::compare::math::per_unit(&self.cpu_ms, o.count);
        Probe {
            name: name.to_owned(),
            calls: o.count,
            errors: o.errors,
            p50_us: o.latency.p50_us,
            p90_us: o.latency.p90_us,
            p99_us: o.latency.p99_us,
            callee: callee.to_owned(),
            callee_cpu_us: per_call.get(callee).copied().unwrap_or(f64::NAN),
            cpu_us_by_process: per_call,
            floor: None,
        }
    }
}

/// Runs the three probes against a running microservices build, `rate`
/// calls per second for `duration` each, and (with `floor`) the same
/// probes against the floor, interleaved over `rounds` rounds.
#[allow(clippy::too_many_arguments)]
pub async fn probe(
    user_internal: &str,
    payment_internal: &str,
    floor: Option<(FloorAddrs, Option<u32>)>,
    user_ids: Vec<Uuid>,
    watch: &Watch,
    rate: f64,
    duration: Duration,
    rounds: usize,
) -> Result<Hops> {
    let rounds = rounds.max(1);
    let mut watch = watch.clone();
    let ours = probes_of(user_internal, payment_internal, &user_ids).context("the services' internal URLs")?;
    let floors = match floor {
        Some((addrs, pid)) => {
            watch.add(FLOOR, pid, true);
            let ops = probes_of(&format!("http://{}", addrs.http), &format!("http://{}", addrs.grpc), &user_ids)?;
            Some(ops.map(Arc::new))
        }
        None => None,
    };
    let ours = ours.map(Arc::new);
    let callees = ["user-service", "payment-service", "payment-service"];
    let names = [LOOKUP, HEALTH, CHARGE];
    let phase = |d| Phase {
        model: Model::Open { rate },
        duration: d,
        max_requests: u64::MAX,
        max_in_flight: 256,
        drain: Duration::from_secs(5),
        progress: None,
    };
    // A second of warm-up each: connections, HTTP/2 settings, caches.
    for op in ours.iter().chain(floors.iter().flatten()) {
        engine::run(&phase(Duration::from_secs(1)), op.clone(), Arc::new(Recorder::new())).await;
    }
    let slice = duration / rounds as u32;
    let mut tallies: [[Tally; 2]; 3] = Default::default();
    for round in 0..rounds {
        for (i, name) in names.iter().enumerate() {
            let targets = [Some(&ours[i]), floors.as_ref().map(|f| &f[i])];
            for (t, op) in targets.into_iter().enumerate() {
                let Some(op) = op else { continue };
                let who = if t == 0 { "ours" } else { "floor" };
                eprintln!(
                    "hops     {name} ({who}, round {}/{rounds}): {rate:.0}/s for {:.1} s",
                    round + 1,
                    slice.as_secs_f64()
                );
                let tally = &mut tallies[i][t];
                let before = watch.sample();
                let ran = engine::run(&phase(slice), op.clone(), tally.recorder.clone()).await;
                let after = watch.sample();
                tally.window += ran.window;
                for (process, ms) in cpu_delta_ms(&before, &after) {
                    *tally.cpu_ms.entry(process).or_default() += ms;
                }
            }
        }
    }
    let probes = tallies
        .iter()
        .enumerate()
        .map(|(i, [ours, floor])| {
            let mut probe = ours.probe(names[i], callees[i]);
            if floors.is_some() {
                probe.floor = Some(Box::new(floor.probe(names[i], FLOOR)));
            }
            probe
        })
        .collect();
    Ok(Hops { rate, duration_s: duration.as_secs_f64(), rounds, probes })
}

#[cfg(test)]
mod tests {
    use twinshop_client::{SendError, TransportError, internal::Status};

    use super::*;

    #[test]
    fn grpc_results_become_outcomes() {
        assert!(!grpc_outcome(HEALTH, Ok(())).is_error());
        let refused = RpcError::Status { method: "Payments/Charge", status: Box::new(Status::unavailable("x")) };
        let failed = grpc_outcome::<()>(CHARGE, Err(refused));
        assert!(failed.is_error());
        assert_eq!(failed.code.as_deref(), Some("grpc-status 14"));
        let lost = RpcError::Transport { method: "Health/Check", kind: TransportError::Timeout, detail: String::new() };
        assert_eq!(grpc_outcome::<()>(HEALTH, Err(lost)).status, Err(TransportError::Timeout));
    }

    #[test]
    fn lookups_become_outcomes() {
        assert_eq!(lookup_outcome(Ok(true)).status, Ok(200));
        assert!(lookup_outcome(Ok(false)).is_error());
        let lost = ApiError::Transport(SendError {
            request: "GET /internal/v1/users/x".into(),
            kind: TransportError::Io,
            source: None,
        });
        assert_eq!(lookup_outcome(Err(lost)).status, Err(TransportError::Io));
    }
}
