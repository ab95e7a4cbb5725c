//! The engine's accounting against a server that stalls on purpose.
//!
//! A tiny in-test server answers at once, except that one request (the
//! n-th) freezes it for a while, as a GC pause or a lock convoy would:
//! every request arriving during the freeze waits for it to end. The open
//! model must show the stall as what it is (a whole second's worth of
//! requests delayed, each by its share of the stall), the closed model as
//! what it sees (one slow sample), and a stall longer than the run must
//! leave its unsent requests counted, not dropped.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State, routing::get};
use tokio::sync::RwLock;
use twinshop_loadtest::{
    Client, Model, Operation, Outcome, Phase, Recorder, Summary,
    engine::{self},
};

/// Freezes every request for `stall` once the `stall_at`-th has arrived.
#[derive(Clone)]
struct Stall {
    seen: Arc<AtomicU64>,
    gate: Arc<RwLock<()>>,
    stall_at: u64,
    stall: Duration,
}

async fn answer(State(s): State<Stall>) -> &'static str {
    if s.seen.fetch_add(1, Ordering::SeqCst) == s.stall_at {
        // The freeze lives in its own task so a client giving up on this
        // request cannot end it early.
        let guard = s.gate.clone().write_owned().await;
        tokio::spawn(async move {
            tokio::time::sleep(s.stall).await;
            drop(guard);
        });
    }
    let _pass = s.gate.read().await;
    "ok"
}

async fn stalling_server(stall_at: u64, stall: Duration) -> SocketAddr {
    let state = Stall { seen: Arc::default(), gate: Arc::default(), stall_at, stall };
    let app = Router::new().route("/ping", get(answer)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

/// `GET /ping`, as an engine operation.
struct Ping(Client);

impl Operation for Ping {
    async fn call(&self, _i: u64) -> Outcome {
        let reply = self.0.get("/ping").send().await;
        Outcome {
            endpoint: "GET /ping",
            status: reply.map(|r| r.status().as_u16()).map_err(|e| e.kind),
            code: None,
            tag: None,
        }
    }
}

async fn drive(addr: SocketAddr, model: Model, duration: Duration, max_requests: u64, in_flight: usize) -> Summary {
    drive_with_timeout(addr, model, duration, max_requests, in_flight, Duration::from_secs(10)).await
}

async fn drive_with_timeout(
    addr: SocketAddr,
    model: Model,
    duration: Duration,
    max_requests: u64,
    in_flight: usize,
    timeout: Duration,
) -> Summary {
    let target = Client::builder().timeout(timeout).build(&format!("http://{addr}")).expect("client");
    let phase = Phase { model, duration, max_requests, max_in_flight: in_flight, drain: timeout, progress: None };
    let recorder = Arc::new(Recorder::new());
    let ran = engine::run(&phase, Arc::new(Ping(target)), recorder.clone()).await;
    recorder.summary(ran.window)
}

const MS: u64 = 1_000;

#[tokio::test]
async fn the_open_model_shows_a_one_second_stall_in_many_requests_not_one() {
    // 200 rps for 3 s; the 200th request (≈ 1 s in) freezes the server for 1 s.
    let addr = stalling_server(200, Duration::from_secs(1)).await;
    let s = drive(addr, Model::Open { rate: 200.0 }, Duration::from_secs(3), 1_000_000, 2048).await;
    let l = s.overall.latency;
    assert_eq!((s.overall.count, s.overall.errors), (600, 0), "{s:#?}");
    // About 200 requests were due during the stall, each delayed by the
    // rest of it (1000 ms down to 0): the top 10 % all waited ≥ ~700 ms.
    assert!(l.max_us >= 950 * MS, "max {l:?}");
    assert!(l.p99_us >= 800 * MS, "p99 {l:?}");
    assert!(l.p90_us >= 300 * MS, "p90 {l:?}");
    assert!(l.p50_us < 300 * MS, "p50 {l:?}");
}

#[tokio::test]
async fn with_too_few_slots_requests_wait_and_keep_their_delay_from_the_intended_time() {
    // The same stall, but only 4 requests may be in flight: the schedule
    // waits for slots, so requests leave late. Their service time looks
    // fine; their latency (from the intended time) must not.
    let addr = stalling_server(200, Duration::from_secs(1)).await;
    let s = drive(addr, Model::Open { rate: 200.0 }, Duration::from_secs(3), 1_000_000, 4).await;
    let l = s.overall.latency;
    assert_eq!((s.overall.count, s.overall.errors, s.unsent), (600, 0, 0), "{s:#?}");
    assert!(s.backlogged > 0, "backlogged {}", s.backlogged);
    assert!(s.send_lag.p90_us >= 300 * MS, "send lag {:?}", s.send_lag);
    assert!(l.p90_us >= 300 * MS && l.max_us >= 950 * MS, "latency {l:?}");
    assert!(s.overall.service_time.p90_us < l.p90_us / 2, "service {:?} vs latency {l:?}", s.overall.service_time);
}

#[tokio::test]
async fn the_closed_model_records_the_same_stall_as_a_single_slow_sample() {
    // One user, request after request: while the server is frozen the
    // user simply waits, so the stall is one sample among ~1000.
    let addr = stalling_server(200, Duration::from_secs(1)).await;
    let s = drive(addr, Model::Closed { users: 1 }, Duration::from_secs(10), 1_000, 2048).await;
    let l = s.overall.latency;
    assert_eq!((s.overall.count, s.overall.errors), (1_000, 0), "{s:#?}");
    assert!(l.max_us >= 950 * MS, "max {l:?}");
    assert!(l.p99_us < 100 * MS, "p99 {l:?}");
}

#[tokio::test]
async fn a_stall_longer_than_the_run_leaves_its_unsent_requests_counted_as_errors() {
    // 100 rps for 1 s against a server frozen from the first request for
    // 5 s, 4 slots, 300 ms timeout (and drain): a few requests time out,
    // the rest of the schedule never leaves, and all 100 are errors.
    let addr = stalling_server(0, Duration::from_secs(5)).await;
    let s = drive_with_timeout(
        addr,
        Model::Open { rate: 100.0 },
        Duration::from_secs(1),
        1_000_000,
        4,
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(s.overall.count, 100, "{s:#?}");
    assert_eq!(s.overall.errors, 100, "{s:#?}");
    assert!(s.unsent > 50, "unsent {}", s.unsent);
    let timeouts = s.overall.transport_errors.get("timeout").copied().unwrap_or(0);
    assert_eq!(timeouts + s.unsent, 100, "{s:#?}");
    assert!(s.overall.latency.min_us >= 300 * MS, "timeouts are timed: {:?}", s.overall.latency);
}
