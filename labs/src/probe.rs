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

use rand::{Rng as _, SeedableRng as _, rngs::SmallRng};
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

    /// Sends `send` on average every `every` until [`Probes::stop`]; each
    /// request may take up to `timeout` (the client's own), and they
    /// overlap if slower.
    ///
    /// The gaps are random (exponential, as Poisson arrivals), not a fixed
    /// tick: a probe every 100 ms exactly would be phase-locked to the
    /// kernel's 100 ms CPU-quota period and would see either only the
    /// throttled part of each period or only the free part, whichever it
    /// happened to start in. Random arrivals see each part for the share of
    /// time it lasts.
    pub fn spawn(&self, group: &'static str, every: Duration, send: Send) {
        let (samples, stop, epoch) = (self.samples.clone(), self.stop.clone(), self.epoch);
        let mut rng = SmallRng::from_os_rng();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(poisson_gap(&mut rng, every)) => {}
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

/// An exponentially distributed gap of mean `mean` (capped at 5× the mean,
/// which cuts off 0.7 % of the tail).
fn poisson_gap(rng: &mut SmallRng, mean: Duration) -> Duration {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    mean.mul_f64((-u.ln()).min(5.0))
}

/// Share of `ok` samples of `group` sent within `[from, to)`.
pub fn availability(samples: &[Sample], group: &str, from: f64, to: f64) -> Option<f64> {
    let of: Vec<&Sample> = samples.iter().filter(|s| s.group == group && s.at >= from && s.at < to).collect();
    (!of.is_empty()).then(|| of.iter().filter(|s| s.ok).count() as f64 / of.len() as f64)
}

/// The `q` quantile (0–1) of the latency of `group`'s samples in `[from, to)`.
pub fn latency_quantile(samples: &[Sample], group: &str, from: f64, to: f64, q: f64) -> Option<f64> {
    latency_quantile_pooled(samples, &[group], &[(from, to)], q)
}

/// The `q` quantile (0–1) of the latency of every sample of any of `groups`
/// sent within any of `windows` (`[from, to)` each): one statistic over
/// the pooled samples, steadier than the worst of several small ones.
pub fn latency_quantile_pooled(samples: &[Sample], groups: &[&str], windows: &[(f64, f64)], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = samples
        .iter()
        .filter(|s| groups.contains(&s.group) && windows.iter().any(|(from, to)| s.at >= *from && s.at < *to))
        .map(|s| s.latency_ms)
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(group: &'static str, at: f64, latency_ms: f64) -> Sample {
        Sample { group, at, latency_ms, ok: true, answer: "200".into() }
    }

    #[test]
    fn probe_gaps_are_random_with_the_mean_asked_for() {
        let mut rng = SmallRng::seed_from_u64(7);
        let gaps: Vec<f64> =
            (0..20_000).map(|_| poisson_gap(&mut rng, Duration::from_millis(100)).as_secs_f64()).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        // The cap at 5× takes e^-5 ≈ 0.7 % off the mean of an exponential.
        assert!((0.097..0.102).contains(&mean), "mean gap {mean}");
        let below_half = gaps.iter().filter(|g| **g < 0.05).count() as f64 / gaps.len() as f64;
        // An exponential has 1 - e^-0.5 ≈ 39 % of its gaps below half the mean; a fixed tick none.
        assert!((0.37..0.42).contains(&below_half), "share of gaps below 50 ms {below_half}");
        assert!(gaps.iter().all(|g| *g <= 0.5 + 1e-9));
    }

    #[test]
    fn a_pooled_quantile_takes_every_group_and_window_asked_for_and_nothing_else() {
        let samples: Vec<Sample> = (0..100)
            .map(|i| sample(if i % 2 == 0 { "a" } else { "b" }, f64::from(i) / 10.0, f64::from(i)))
            .chain([sample("c", 1.0, 10_000.0)])
            .collect();
        // Windows [0, 2) and [5, 6): samples 0..20 and 50..60, of a and b; not c's.
        let windows = [(0.0, 2.0), (5.0, 6.0)];
        assert_eq!(latency_quantile_pooled(&samples, &["a", "b"], &windows, 1.0), Some(59.0));
        assert_eq!(latency_quantile_pooled(&samples, &["a", "b"], &windows, 0.5), Some(14.0));
        assert_eq!(latency_quantile_pooled(&samples, &["a"], &windows, 1.0), Some(58.0));
        assert_eq!(latency_quantile_pooled(&samples, &["a"], &[(20.0, 30.0)], 0.99), None);
        assert_eq!(latency_quantile(&samples, "c", 0.0, 10.0, 0.99), Some(10_000.0));
    }
}
