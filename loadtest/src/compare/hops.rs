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
//! All three go through twinshop-client's internal part
//! ([`UserDirectory`], [`Payments`]): the gRPC calls over one HTTP/2
//! connection with tonic, as the order service makes them.

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use twinshop_client::{ApiError, Payments, RpcError, UserDirectory};
use uuid::Uuid;

use super::procs::{Watch, cpu_delta_ms};
use crate::{
    engine::{self, Model, Operation, Phase},
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

/// Runs the three probes against a running microservices build, `rate`
/// calls per second for `duration` each, one after the other.
pub async fn probe(
    user_internal: &str,
    payment_internal: &str,
    user_ids: Vec<Uuid>,
    watch: &Watch,
    rate: f64,
    duration: Duration,
) -> Result<Hops> {
    let directory = twinshop_client::Client::builder()
        .timeout(Duration::from_secs(5))
        .build(user_internal)
        .context("the user service's internal URL")?;
    let lookup = HopProbe::Lookup { directory: UserDirectory::with_client(directory), user_ids };
    let payments = Payments::new(payment_internal).context("the payment service's internal URL")?;
    let mut probes = Vec::new();
    for (name, op, callee) in [
        (LOOKUP, lookup, "user-service"),
        (HEALTH, HopProbe::Health(payments.clone()), "payment-service"),
        (CHARGE, HopProbe::Charge(payments), "payment-service"),
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
