//! Probes: a steady trickle of requests per endpoint group, each timed and
//! its answer kept, so a lab can say per group and per second whether the
//! shop answered (availability) and how fast (p99), and mark its faults on
//! the same clock.

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use twinshop_client::{Response, SendError};

/// One probe request and its answer.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub group: &'static str,
    /// Seconds since the probes started.
    pub at: f64,
    pub latency_ms: f64,
    /// 2xx (or, for a group that expects refusals, its expected answer).
    pub ok: bool,
    /// `200`, `503 dependency_unavailable`, `timeout`, ...
    pub answer: String,
}

/// Sends one request of a group.
pub type Send = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<Response, SendError>> + std::marker::Send>>
        + std::marker::Send
        + Sync,
>;

/// Every probe's samples, on one clock.
#[derive(Debug, Clone)]
pub struct Probes {
    pub epoch: Instant,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: CancellationToken,
}

impl Default for Probes {
    fn default() -> Self {
        Self::new()
    }
}

impl Probes {
    pub fn new() -> Self {
        Self { epoch: Instant::now(), samples: Arc::default(), stop: CancellationToken::new() }
    }

    /// Seconds since the probes started.
    pub fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    /// Sends `send` every `every` until [`Probes::stop`]; each request may
    /// take up to `timeout` (the client's own), and they overlap if slower.
    pub fn spawn(&self, group: &'static str, every: Duration, send: Send) {
        let (samples, stop, epoch) = (self.samples.clone(), self.stop.clone(), self.epoch);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let (send, samples) = (send.clone(), samples.clone());
                tokio::spawn(async move {
                    let at = epoch.elapsed().as_secs_f64();
                    let sent = Instant::now();
                    let answer = send().await;
                    let latency_ms = sent.elapsed().as_secs_f64() * 1e3;
                    let (ok, answer) = match answer {
                        Ok(r) if r.status().is_success() => (true, r.status().as_u16().to_string()),
                        Ok(r) => (false, format!("{} {}", r.status().as_u16(), r.problem_code().unwrap_or_default())),
                        Err(e) => (false, e.kind.as_str().to_owned()),
                    };
                    samples.lock().unwrap_or_else(PoisonError::into_inner).push(Sample {
                        group,
                        at,
                        latency_ms,
                        ok,
                        answer,
                    });
                });
            }
        });
    }

    /// Stops sending (requests in flight still record their answer).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Every sample so far, in the order answers arrived.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Share of `ok` samples of `group` sent within `[from, to)`.
pub fn availability(samples: &[Sample], group: &str, from: f64, to: f64) -> Option<f64> {
    let of: Vec<&Sample> = samples.iter().filter(|s| s.group == group && s.at >= from && s.at < to).collect();
    (!of.is_empty()).then(|| of.iter().filter(|s| s.ok).count() as f64 / of.len() as f64)
}

/// The `q` quantile (0–1) of the latency of `group`'s samples in `[from, to)`.
pub fn latency_quantile(samples: &[Sample], group: &str, from: f64, to: f64, q: f64) -> Option<f64> {
    let mut v: Vec<f64> =
        samples.iter().filter(|s| s.group == group && s.at >= from && s.at < to).map(|s| s.latency_ms).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let idx = ((v.len() as f64) * q).ceil() as usize;
    Some(v[idx.saturating_sub(1).min(v.len() - 1)])
}

/// Per second: the share of `group`'s samples that were `ok`.
pub fn availability_per_second(samples: &[Sample], group: &str) -> Vec<(f64, f64)> {
    let mut per: BTreeMap<u64, (u32, u32)> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.group == group) {
        let e = per.entry(s.at as u64).or_default();
        e.1 += 1;
        if s.ok {
            e.0 += 1;
        }
    }
    per.into_iter().map(|(sec, (ok, n))| (sec as f64, f64::from(ok) / f64::from(n))).collect()
}

/// The answers `group` got in `[from, to)`, counted.
pub fn answers(samples: &[Sample], group: &str, from: f64, to: f64) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for s in samples.iter().filter(|s| s.group == group && s.at >= from && s.at < to) {
        *out.entry(s.answer.clone()).or_default() += 1;
    }
    out
}
