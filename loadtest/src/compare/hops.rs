//! Direct probes of the microservices' internal calls, at a low constant
//! rate: what one HTTP hop and one gRPC hop cost in latency and in CPU.
//!
//! Why it exists: the comparison's latency difference divided by the hops
//! per order is an estimate; a probe of each internal call alone is the
//! measurement. Three probes, each an engine [`Operation`], timed like
//! every other request (open model, from the intended send time):
//!
//! - `GET /internal/v1/users/{id}` on the user service's internal port,
//!   for pool users (a Redis cache hit, as during placement): the HTTP hop
//!   the order service makes for every order;
//! - gRPC `grpc.health.v1.Health/Check` on the payment service: the pure
//!   transport cost of a gRPC hop (HTTP/2, framing, tonic), no work behind;
//! - gRPC `twinshop.payment.v1.Payments/Charge` for a random order of a
//!   random unknown user: a real Charge transaction (a new empty wallet,
//!   answered `INSUFFICIENT_FUNDS`), touching no pool user's money.
//!
//! The gRPC calls are sent over one HTTP/2 connection by hyper with the
//! two tiny protobuf messages encoded by hand (three fields), so the
//! generator stays a pure client with no workspace dependency.

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, Result};
use http::{Method, Request, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::procs::{Watch, cpu_delta_ms};
use crate::{
    client::{Target, TransportError},
    engine::{self, Model, Operation, Phase},
    setup::UserPool,
    stats::{Outcome, Recorder},
};

pub const LOOKUP: &str = "GET /internal/v1/users/{id}";
pub const HEALTH: &str = "grpc Health/Check";
pub const CHARGE: &str = "grpc Payments/Charge";

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
    pub cpu_us_by_process: std::collections::BTreeMap<String, f64>,
}

/// All probes of one comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hops {
    pub rate: f64,
    pub duration_s: f64,
    pub probes: Vec<Probe>,
}

/// A protobuf string field (wire type 2).
fn pb_string(out: &mut Vec<u8>, field: u8, s: &str) {
    out.push(field << 3 | 2);
    pb_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn pb_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `ChargeRequest { order_id = 1, user_id = 2, amount_cents = 3 }` in a gRPC frame.
pub fn charge_frame(order_id: &str, user_id: &str, amount_cents: i64) -> Vec<u8> {
    let mut msg = Vec::new();
    pb_string(&mut msg, 1, order_id);
    pb_string(&mut msg, 2, user_id);
    msg.push(3 << 3);
    pb_varint(&mut msg, amount_cents as u64);
    grpc_frame(&msg)
}

/// A gRPC length-prefixed message: uncompressed flag, 4-byte length, bytes.
pub fn grpc_frame(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 5);
    out.push(0);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

/// A unary gRPC client over one HTTP/2 (prior knowledge) connection.
#[derive(Debug, Clone)]
struct Grpc {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Grpc {
    fn new(base: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).http2_only(true).build(connector);
        Self { base: base.trim_end_matches('/').to_owned(), client }
    }

    /// Calls `path` with `frame`; `Ok(0)` is `grpc-status: 0`.
    async fn call(&self, path: &str, frame: Vec<u8>) -> Result<u16, TransportError> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", self.base))
            .header(header::CONTENT_TYPE, "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from(frame)))
            .map_err(|_| TransportError::Io)?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|_| TransportError::Io)?;
            let in_headers = response.headers().get("grpc-status").cloned();
            let collected = response.into_body().collect().await.map_err(|_| TransportError::Io)?;
            let status = collected.trailers().and_then(|t| t.get("grpc-status").cloned()).or(in_headers);
            Ok(status.and_then(|s| s.to_str().ok()?.parse::<u16>().ok()).unwrap_or(2))
        };
        tokio::time::timeout(Duration::from_secs(5), exchange).await.unwrap_or(Err(TransportError::Timeout))
    }
}

/// One of the three probes as an engine operation.
#[derive(Debug)]
enum HopProbe {
    Lookup { target: Target, user_ids: Vec<String> },
    Health(Grpc),
    Charge(Grpc),
}

/// A gRPC status as an [`Outcome`]: 0 is HTTP 200-like, anything else an error (500 + code).
fn grpc_outcome(endpoint: &'static str, status: Result<u16, TransportError>) -> Outcome {
    match status {
        Ok(0) => Outcome { endpoint, status: Ok(200), code: None, tag: None },
        Ok(code) => Outcome { endpoint, status: Ok(500), code: Some(format!("grpc-status {code}")), tag: None },
        Err(e) => Outcome { endpoint, status: Err(e), code: None, tag: None },
    }
}

impl Operation for HopProbe {
    async fn call(&self, i: u64) -> Outcome {
        match self {
            Self::Lookup { target, user_ids } => {
                let id = &user_ids[(i as usize) % user_ids.len().max(1)];
                let reply = target.send(Method::GET, &format!("/internal/v1/users/{id}"), None, None, None).await;
                match reply {
                    Ok(r) => Outcome { endpoint: LOOKUP, status: Ok(r.status.as_u16()), code: None, tag: None },
                    Err(e) => Outcome { endpoint: LOOKUP, status: Err(e), code: None, tag: None },
                }
            }
            // An empty HealthCheckRequest: the server's overall status.
            Self::Health(grpc) => {
                grpc_outcome(HEALTH, grpc.call("/grpc.health.v1.Health/Check", grpc_frame(&[])).await)
            }
            Self::Charge(grpc) => {
                let frame = charge_frame(&Uuid::now_v7().to_string(), &Uuid::now_v7().to_string(), 100);
                grpc_outcome(CHARGE, grpc.call("/twinshop.payment.v1.Payments/Charge", frame).await)
            }
        }
    }
}

/// The pool users' ids, from `GET /v1/users/me`.
pub async fn user_ids(target: &Target, pool: &UserPool, at_most: usize) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Me {
        id: String,
    }
    let mut ids = Vec::new();
    for user in pool.users.iter().take(at_most) {
        let me: Me = target.get("/v1/users/me", Some(&user.auth)).await?.json(200, "GET /v1/users/me")?;
        ids.push(me.id);
    }
    Ok(ids)
}

/// Runs the three probes against a running microservices build, `rate`
/// calls per second for `duration` each, one after the other.
pub async fn probe(
    user_internal: &str,
    payment_internal: &str,
    user_ids: Vec<String>,
    watch: &Watch,
    rate: f64,
    duration: Duration,
) -> Result<Hops> {
    let lookup = HopProbe::Lookup {
        target: Target::new(user_internal, Duration::from_secs(5)).context("the user service's internal URL")?,
        user_ids,
    };
    let grpc = Grpc::new(payment_internal);
    let mut probes = Vec::new();
    for (name, op, callee) in [
        (LOOKUP, lookup, "user-service"),
        (HEALTH, HopProbe::Health(grpc.clone()), "payment-service"),
        (CHARGE, HopProbe::Charge(grpc), "payment-service"),
    ] {
        eprintln!("hops     {name}: {rate:.0}/s for {:.0} s", duration.as_secs_f64());
        let op = Arc::new(op);
        let phase = |d| Phase {
            model: Model::Open { rate },
            duration: d,
            max_requests: u64::MAX,
            max_in_flight: 256,
            drain: Duration::from_secs(5),
            progress: None,
        };
        // A second of warm-up: connections, HTTP/2 settings, caches.
        engine::run(&phase(Duration::from_secs(1)), op.clone(), Arc::new(Recorder::new())).await;
        let recorder = Arc::new(Recorder::new());
        let before = watch.sample();
        let ran = engine::run(&phase(duration), op, recorder.clone()).await;
        let after = watch.sample();
        let summary = recorder.summary(ran.window);
        let o = &summary.overall;
        let per_call = crate::compare::math::per_unit(&cpu_delta_ms(&before, &after), o.count);
        probes.push(Probe {
            name: name.to_owned(),
            calls: o.count,
            errors: o.errors,
            p50_us: o.latency.p50_us,
            p90_us: o.latency.p90_us,
            p99_us: o.latency.p99_us,
            callee: callee.to_owned(),
            callee_cpu_us: per_call.get(callee).copied().unwrap_or(f64::NAN),
            cpu_us_by_process: per_call,
        });
    }
    Ok(Hops { rate, duration_s: duration.as_secs_f64(), probes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_request_is_three_protobuf_fields_in_a_grpc_frame() {
        let frame = charge_frame("o", "u", 300);
        // 0x0a len "o", 0x12 len "u", 0x18 varint(300) = ac 02.
        assert_eq!(frame, [0, 0, 0, 0, 9, 0x0a, 1, b'o', 0x12, 1, b'u', 0x18, 0xac, 0x02]);
        assert_eq!(grpc_frame(&[]), [0, 0, 0, 0, 0]);
    }

    #[test]
    fn grpc_statuses_become_outcomes() {
        assert!(!grpc_outcome(HEALTH, Ok(0)).is_error());
        let failed = grpc_outcome(CHARGE, Ok(14));
        assert!(failed.is_error());
        assert_eq!(failed.code.as_deref(), Some("grpc-status 14"));
        assert!(grpc_outcome(CHARGE, Err(TransportError::Timeout)).is_error());
    }
}
