//! The load engine: when requests are sent, and from when they are timed.
//! It knows nothing of the shop; it drives any [`Operation`].
//!
//! Why it exists: this is where a load tool is honest or not.
//!
//! **Open model** (the default, the wrk2 approach). One ticker task walks
//! the schedule `t0 + i / rate` and spawns each request as its own task at
//! its intended time. Latency is measured from that *intended* time, not
//! from when the request actually left: if the server stalls for a second,
//! every request that should have been sent during the stall is late, and
//! each one records the delay it suffered. A tool that waits for an answer
//! before sending the next request (or times from the actual send) records
//! one slow sample instead, and coordinated omission hides the stall.
//!
//! In-flight requests are bounded (`max_in_flight`, default 2048) so a dead
//! server cannot make the generator open unbounded sockets. When the bound
//! is hit the ticker *waits* for a slot: nothing is dropped, the requests
//! are sent late and each records its full delay from its intended time,
//! and the run counts how many had to wait (`backlogged`). The ticker stops
//! at a hard deadline (`duration + drain`); scheduled requests still unsent
//! then are counted as errors (`unsent`), never silently forgotten.
//!
//! The tokio timer wakes with 1 ms granularity, so the ticker asks to be
//! woken [`TIMER_SLACK`] early: a request leaves within about ±1 ms of its
//! intended time, and is timed from `min(intended, actual send)`. Any lag
//! left (a busy worker, a descheduled thread) is part of its latency (it
//! is real delay) and is reported apart as `send_lag`; *service time*
//! (from the actual send) is recorded beside latency.
//!
//! **Closed model**: N workers, each sending its next request when the
//! previous answer arrives, timed from the actual send. The offered load
//! adapts to the server, which is what you want for finding peak
//! throughput, and exactly why its latencies hide stalls.
//!
//! Every run is bounded by both its duration and a request count.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::{
    progress::ProgressLine,
    stats::{Outcome, Recorder},
};

/// One kind of request the engine can send. `call(i)` sends request
/// number `i` of the run and reports what happened; it must not fail (a
/// failure is an [`Outcome`]) and should bound its own duration (the
/// [`Client`](crate::Client) applies the request timeout).
pub trait Operation: Send + Sync + 'static {
    fn call(&self, i: u64) -> impl Future<Output = Outcome> + Send;
}

/// How load is offered.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Model {
    /// A constant arrival rate, timed from intended send times.
    Open { rate: f64 },
    /// A fixed number of concurrent users, each waiting for its answer.
    Closed { users: usize },
}

impl Model {
    /// The offered rate, for the open model.
    pub fn offered_rps(&self) -> Option<f64> {
        match self {
            Self::Open { rate } => Some(*rate),
            Self::Closed { .. } => None,
        }
    }

    /// A short description: `open 500 rps`, `closed 16 users`.
    pub fn describe(&self) -> String {
        match self {
            Self::Open { rate } => format!("open {rate} rps"),
            Self::Closed { users } => format!("closed {users} users"),
        }
    }
}

/// The bounds of one phase.
#[derive(Debug, Clone)]
pub struct Phase {
    pub model: Model,
    pub duration: Duration,
    pub max_requests: u64,
    /// Open model: requests in flight at once before the ticker waits.
    pub max_in_flight: usize,
    /// How long after `duration` requests may still be sent or awaited
    /// (the request timeout is a good value); the hard stop.
    pub drain: Duration,
    /// The label of the progress line, or `None` for no progress line.
    pub progress: Option<String>,
}

/// When a phase ran.
#[derive(Debug, Clone, Copy)]
pub struct Ran {
    pub started: Instant,
    /// From the start to the last completion (or to the end of the
    /// schedule, whichever is later): the window throughput is computed over.
    pub window: Duration,
}

/// How early the ticker asks to be woken. The tokio timer has 1 ms
/// granularity and rounds deadlines *up*, so sleeping until the intended
/// time itself wakes ~0.5–1 ms late on average, and that lag (the
/// generator's, not the server's) would land in every latency. Waking up
/// to 1 ms early centres the error on zero instead; a request that leaves
/// early is timed from its actual send, so it is never timed for less
/// than its service time.
pub const TIMER_SLACK: Duration = Duration::from_millis(1);

/// The number of requests the open model schedules: `duration × rate`,
/// at most `max_requests`.
pub fn scheduled_requests(rate: f64, duration: Duration, max_requests: u64) -> u64 {
    let by_time = (duration.as_secs_f64() * rate).floor();
    if by_time.is_finite() && by_time >= 0.0 { (by_time as u64).min(max_requests) } else { 0 }
}

/// The intended send time of request `i` (`t0 + i / rate`).
pub fn intended_time(t0: Instant, i: u64, rate: f64) -> Instant {
    t0 + Duration::from_secs_f64(i as f64 / rate)
}

/// Runs one phase of `op` and records every request into `recorder`.
pub async fn run<O: Operation>(phase: &Phase, op: Arc<O>, recorder: Arc<Recorder>) -> Ran {
    let progress = phase.progress.as_ref().map(|label| ProgressLine::spawn(label.clone(), recorder.clone()));
    let started = Instant::now();
    let scheduled_end = match phase.model {
        Model::Open { rate } => open(phase, rate, started, op, &recorder).await,
        Model::Closed { users } => closed(phase, users, started, op, &recorder).await,
    };
    if let Some(progress) = progress {
        progress.finish().await;
    }
    let last = recorder.last_done().unwrap_or(scheduled_end).max(scheduled_end);
    Ran { started, window: last.saturating_duration_since(started) }
}

async fn open<O: Operation>(phase: &Phase, rate: f64, t0: Instant, op: Arc<O>, recorder: &Arc<Recorder>) -> Instant {
    let total = scheduled_requests(rate, phase.duration, phase.max_requests);
    let hard_stop = t0 + phase.duration + phase.drain;
    let slots = Arc::new(Semaphore::new(phase.max_in_flight.max(1)));
    let tasks = TaskTracker::new();
    let mut sent = 0;
    while sent < total {
        let i = sent;
        let intended = intended_time(t0, i, rate);
        if intended > Instant::now() + TIMER_SLACK {
            tokio::time::sleep_until((intended - TIMER_SLACK).into()).await;
        }
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                recorder.backlogged();
                match tokio::time::timeout_at(hard_stop.into(), slots.clone().acquire_owned()).await {
                    Ok(Ok(slot)) => slot,
                    _ => break,
                }
            }
        };
        if Instant::now() >= hard_stop {
            break;
        }
        let (op, recorder) = (op.clone(), recorder.clone());
        tasks.spawn(async move {
            let sent_at = Instant::now();
            let outcome = op.call(i).await;
            // Early by at most the timer slack: then timed from the send.
            recorder.record(&outcome, intended.min(sent_at), sent_at, Instant::now());
            drop(slot);
        });
        sent += 1;
    }
    if sent < total {
        recorder.unsent(total - sent);
    }
    tasks.close();
    tasks.wait().await;
    intended_time(t0, total, rate)
}

async fn closed<O: Operation>(
    phase: &Phase,
    users: usize,
    t0: Instant,
    op: Arc<O>,
    recorder: &Arc<Recorder>,
) -> Instant {
    let end = t0 + phase.duration;
    let next = Arc::new(AtomicU64::new(0));
    let tasks = TaskTracker::new();
    for _ in 0..users.max(1) {
        let (op, recorder, next, max) = (op.clone(), recorder.clone(), next.clone(), phase.max_requests);
        tasks.spawn(async move {
            while Instant::now() < end {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= max {
                    break;
                }
                let sent_at = Instant::now();
                let outcome = op.call(i).await;
                recorder.record(&outcome, sent_at, sent_at, Instant::now());
            }
        });
    }
    tasks.close();
    tasks.wait().await;
    end.min(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_bounded_by_time_and_by_count() {
        assert_eq!(scheduled_requests(200.0, Duration::from_secs(3), 1_000_000), 600);
        assert_eq!(scheduled_requests(200.0, Duration::from_secs(3), 100), 100);
        assert_eq!(scheduled_requests(0.5, Duration::from_secs(3), 100), 1);
        assert_eq!(scheduled_requests(f64::NAN, Duration::from_secs(3), 100), 0);
    }

    #[test]
    fn intended_times_are_evenly_spaced_from_the_start() {
        let t0 = Instant::now();
        assert_eq!(intended_time(t0, 0, 250.0), t0);
        assert_eq!(intended_time(t0, 250, 250.0), t0 + Duration::from_secs(1));
        assert_eq!(intended_time(t0, 1, 250.0), t0 + Duration::from_millis(4));
    }
}
