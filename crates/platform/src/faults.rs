//! Fault flags: faults a lab switches on in one area of a running process,
//! like the OpenTelemetry demo's feature flags, but with outcomes the labs
//! check (docs/design.md §8).
//!
//! Per area: **leak** memory on every call of the area's code paths (each
//! public request and each event its consumers apply, so a leak in the user
//! area grows with the stats consumer's work: the classic "memory leak in
//! Reporting"), **burn** CPU (a background spinner using a share of cores),
//! add **latency** to its requests, **panic** in its handlers, or **abort**
//! the whole process on its next request.
//!
//! Why it is safe: the flags exist only when the process was started with
//! `{PREFIX}FAULTS_ENABLED=true`, and are served only on the internal port
//! (`GET /faults`, `PUT /faults/{area}`, `DELETE /faults/{area}`), which
//! the edge never routes. Without the variable there are no routes and no
//! layers: nothing to switch, nothing to pay. No deployment file enables it
//! (the deployment tests check).

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Path, Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use twinshop_contracts::events::Envelope;

use crate::{
    inbox::{EventHandler, HandleError},
    problem::{ErrorCode, Problem},
    validation::FieldErrors,
};

/// What is switched on in one area. Every field defaults to off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Flags {
    /// KiB kept for good on every call of the area (0: no leak).
    pub leak_kib: u64,
    /// Cores a background spinner keeps busy (0.0: none), e.g. 0.5.
    pub burn_cores: f64,
    /// Added to every public request of the area.
    pub latency_ms: u64,
    /// Every public request of the area panics (caught: a 500).
    pub panic: bool,
    /// The next public request of the area aborts the process.
    pub abort: bool,
}

/// One area's switch, its leaked memory and its spinner.
#[derive(Debug, Default)]
pub struct AreaFaults {
    area: &'static str,
    flags: RwLock<Flags>,
    leaked: Mutex<Vec<Box<[u8]>>>,
    leaked_bytes: AtomicU64,
    spinner: Mutex<Option<Arc<AtomicBool>>>,
}

impl AreaFaults {
    fn new(area: &'static str) -> Self {
        Self { area, ..Self::default() }
    }

    /// The flags now.
    pub fn flags(&self) -> Flags {
        self.flags.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Bytes leaked so far.
    pub fn leaked_bytes(&self) -> u64 {
        self.leaked_bytes.load(Ordering::Relaxed)
    }

    /// Switches to `flags` (and starts or stops the spinner).
    pub fn set(&self, flags: Flags) {
        let burn = flags.burn_cores;
        *self.flags.write().unwrap_or_else(PoisonError::into_inner) = flags;
        let mut spinner = self.spinner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(stop) = spinner.take() {
            stop.store(true, Ordering::Relaxed);
        }
        if burn > 0.0 {
            let stop = Arc::new(AtomicBool::new(false));
            spin(burn, stop.clone());
            *spinner = Some(stop);
        }
        tracing::warn!(area = self.area, flags = ?self.flags(), "fault flags set");
    }

    /// One call of the area's code path: leaks what the flags say. The
    /// memory is written (so it is resident, not just reserved) and kept.
    pub fn leak(&self) {
        let kib = self.flags.read().unwrap_or_else(PoisonError::into_inner).leak_kib;
        if kib == 0 {
            return;
        }
        let bytes = usize::try_from(kib.saturating_mul(1024)).unwrap_or(usize::MAX);
        let block = vec![0xA5u8; bytes].into_boxed_slice();
        self.leaked.lock().unwrap_or_else(PoisonError::into_inner).push(block);
        self.leaked_bytes.fetch_add(kib * 1024, Ordering::Relaxed);
        metrics::gauge!("fault_leaked_bytes", "area" => self.area).set(self.leaked_bytes() as f64);
    }

    /// Before a public request of the area: latency, abort, panic, leak.
    async fn before_request(&self) {
        let flags = self.flags();
        if flags.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(flags.latency_ms)).await;
        }
        if flags.abort {
            tracing::error!(area = self.area, "fault flag abort: aborting the process");
            std::process::abort();
        }
        if flags.panic {
            panic!("fault flag panic in the {} area", self.area);
        }
        self.leak();
    }
}

/// Busy threads using `cores` of CPU (each a duty cycle of 10 ms) until
/// `stop`.
fn spin(cores: f64, stop: Arc<AtomicBool>) {
    let threads = cores.ceil().max(1.0) as usize;
    let share = cores / threads as f64;
    for _ in 0..threads {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let period = Duration::from_millis(10);
            let busy = period.mul_f64(share.clamp(0.0, 1.0));
            let mut sink = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                while started.elapsed() < busy {
                    sink = std::hint::black_box(sink.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
                std::thread::sleep(period.saturating_sub(busy));
            }
        });
    }
}

/// The fault flags of every area of one process.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    areas: Arc<BTreeMap<&'static str, Arc<AreaFaults>>>,
}

impl Faults {
    /// Flags for `areas`, all off.
    pub fn new(areas: impl IntoIterator<Item = &'static str>) -> Self {
        Self { areas: Arc::new(areas.into_iter().map(|a| (a, Arc::new(AreaFaults::new(a)))).collect()) }
    }

    /// One area's switch.
    pub fn area(&self, area: &str) -> Option<Arc<AreaFaults>> {
        self.areas.get(area).cloned()
    }
}

/// `area`'s public routes with its flags applied before each request.
pub fn apply(routes: Router, area: Arc<AreaFaults>) -> Router {
    routes.layer(middleware::from_fn(move |req: Request, next: Next| {
        let area = area.clone();
        async move {
            area.before_request().await;
            next.run(req).await
        }
    }))
}

/// A consumer that leaks on every event it applies, then applies it.
struct Leaky {
    inner: Arc<dyn EventHandler>,
    area: Arc<AreaFaults>,
}

impl std::fmt::Debug for Leaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaky").field("consumer", &self.inner.consumer()).finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl EventHandler for Leaky {
    fn consumer(&self) -> &'static str {
        self.inner.consumer()
    }
    async fn handle(&self, event: Envelope<Value>) -> Result<(), HandleError> {
        self.area.leak();
        self.inner.handle(event).await
    }
}

/// `handler`, leaking by `area`'s flags on every event.
pub fn leaky(handler: Arc<dyn EventHandler>, area: Arc<AreaFaults>) -> Arc<dyn EventHandler> {
    Arc::new(Leaky { inner: handler, area })
}

#[derive(Serialize)]
struct AreaView {
    flags: Flags,
    leaked_bytes: u64,
}

/// `GET /faults`, `PUT /faults/{area}` (the flags as JSON), `DELETE
/// /faults/{area}`: for the internal port only.
pub fn router(faults: Faults) -> Router {
    Router::new()
        .route("/faults", get(list))
        .route("/faults/{area}", get(show).put(set).delete(clear))
        .with_state(faults)
}

fn unknown(area: &str) -> Problem {
    Problem::new(ErrorCode::NotFound).with_detail(format!("No area {area:?} in this process."))
}

async fn list(State(faults): State<Faults>) -> Json<BTreeMap<&'static str, AreaView>> {
    Json(
        faults.areas.iter().map(|(n, a)| (*n, AreaView { flags: a.flags(), leaked_bytes: a.leaked_bytes() })).collect(),
    )
}

async fn show(State(faults): State<Faults>, Path(area): Path<String>) -> Result<Response, Problem> {
    let a = faults.area(&area).ok_or_else(|| unknown(&area))?;
    Ok(Json(AreaView { flags: a.flags(), leaked_bytes: a.leaked_bytes() }).into_response())
}

async fn set(
    State(faults): State<Faults>,
    Path(area): Path<String>,
    crate::http::json::JsonObject(body): crate::http::json::JsonObject,
) -> Result<Response, Problem> {
    let a = faults.area(&area).ok_or_else(|| unknown(&area))?;
    a.set(parse_flags(&body).map_err(Problem::validation)?);
    Ok((StatusCode::OK, Json(AreaView { flags: a.flags(), leaked_bytes: a.leaked_bytes() })).into_response())
}

/// The largest leak per call (1 GiB) and added latency (10 min) a lab may ask for.
const MAX_LEAK_KIB: i64 = 1 << 20;
const MAX_LATENCY_MS: i64 = 600_000;

/// The flags of a `PUT`: each one named is checked, one error per bad or
/// unknown field; an absent flag is off.
fn parse_flags(body: &serde_json::Map<String, Value>) -> Result<Flags, FieldErrors> {
    let mut errors = FieldErrors::new();
    let mut flags = Flags::default();
    let integer = |value: &Value, max: i64| match value {
        Value::Number(n) => crate::http::json::integral(n).filter(|v| (0..=max).contains(v)).map(|v| v.unsigned_abs()),
        _ => None,
    };
    for (name, value) in body {
        match name.as_str() {
            "leak_kib" => match integer(value, MAX_LEAK_KIB) {
                Some(v) => flags.leak_kib = v,
                None => errors.push(name, format!("must be an integer from 0 to {MAX_LEAK_KIB}")),
            },
            "latency_ms" => match integer(value, MAX_LATENCY_MS) {
                Some(v) => flags.latency_ms = v,
                None => errors.push(name, format!("must be an integer from 0 to {MAX_LATENCY_MS}")),
            },
            "burn_cores" => match value.as_f64() {
                Some(v) if (0.0..=16.0).contains(&v) => flags.burn_cores = v,
                _ => errors.push(name, "must be a number from 0 to 16"),
            },
            "panic" | "abort" => match value.as_bool() {
                Some(v) if name == "panic" => flags.panic = v,
                Some(v) => flags.abort = v,
                None => errors.push(name, "must be true or false"),
            },
            _ => errors.push(name, "is not a fault flag (leak_kib, burn_cores, latency_ms, panic, abort)"),
        }
    }
    errors.finish().map(|()| flags)
}

async fn clear(State(faults): State<Faults>, Path(area): Path<String>) -> Result<Response, Problem> {
    let a = faults.area(&area).ok_or_else(|| unknown(&area))?;
    a.set(Flags::default());
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leak_keeps_what_it_took_and_a_clear_stops_it() {
        let faults = Faults::new(["user", "order"]);
        let user = faults.area("user").expect("user");
        user.set(Flags { leak_kib: 64, ..Flags::default() });
        for _ in 0..10 {
            user.leak();
        }
        assert_eq!(user.leaked_bytes(), 640 * 1024);
        user.set(Flags::default());
        user.leak();
        assert_eq!(user.leaked_bytes(), 640 * 1024, "kept, and no more after the clear");
        assert_eq!(faults.area("order").map(|o| o.leaked_bytes()), Some(0), "areas are apart");
        assert!(faults.area("payment").is_none());
    }

    fn parse(body: Value) -> Result<Flags, Vec<String>> {
        let Value::Object(body) = body else { panic!("an object") };
        parse_flags(&body).map_err(|e| {
            let mut fields: Vec<String> = e.iter().map(|e| e.field.clone()).collect();
            fields.sort();
            fields
        })
    }

    #[test]
    fn each_bad_or_unknown_flag_is_named() {
        assert_eq!(parse(serde_json::json!({"latency_ms": 5})), Ok(Flags { latency_ms: 5, ..Flags::default() }));
        assert_eq!(
            parse(serde_json::json!({"leak_kib": 64.0, "burn_cores": 0.5, "panic": true})),
            Ok(Flags { leak_kib: 64, burn_cores: 0.5, panic: true, ..Flags::default() })
        );
        assert_eq!(
            parse(
                serde_json::json!({"leak_kb": 1, "latency_ms": -1, "burn_cores": 17, "abort": "yes", "leak_kib": 0.5})
            ),
            Err(vec!["abort".into(), "burn_cores".into(), "latency_ms".into(), "leak_kb".into(), "leak_kib".into()])
        );
    }
}
