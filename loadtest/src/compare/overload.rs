//! The overload step: each build offered twice the monolith's peak, then
//! half of it, then a flood of logins for one account beside the mix.
//!
//! Why it exists: a system is judged by what it does past its peak as
//! much as below it (issue 16, part 4; docs/api.md, `overloaded` and
//! `too_many_requests`). Every process bounds its requests in flight and
//! refuses the rest at once (`503 overloaded`, `Retry-After`); the user
//! area throttles failed logins per account (`429 too_many_requests`). This
//! step measures what that buys, for both builds alike:
//!
//! 1. **overload**: the default mix, open model, at 2 × the peak: goodput
//!    (answers that are neither shed nor errors, per second) against the
//!    peak, the p99 of the requests served (timed from their intended send,
//!    as every step), how many were shed and how fast the refusal came, and
//!    each process's memory high-water mark before and after;
//! 2. **recovery**: straight after, half of what *this build* serves within
//!    the SLO (its throughput at the SLO in the same run, at most the
//!    peak): the second from which nothing is shed and every second's p99
//!    is within the SLO. Half the monolith's peak would be above what the
//!    microservices sustain at all, and measure their capacity again, not
//!    their recovery;
//! 3. **login flood**: the same rate again, and beside it 8 clients sending
//!    wrong passwords for one pool account as fast as they are answered:
//!    how many attempts were checked (401) and how many refused unchecked
//!    (429), and the mix's p99 meanwhile.
//!
//! Targets (the report's, never asserted here): goodput ≥ 90 % of the
//! peak, served p99 ≤ the SLO, memory bounded, recovered within seconds.
//! The correctness check runs after the step: a refused request did
//! nothing, so the pool's bookkeeping must still match the API.

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::json;
use twinshop_client::Client;

use super::{launch::Build, math, plan::Plan, procs::Watch};
use crate::{
    engine::{self, Model, Operation, Phase, intended_time},
    mix::Mix,
    setup::{Product, UserPool},
    shop::Shop,
    stats::{Outcome, Percentiles, Recorder, new_histogram, record},
};

/// The overload rate, as a multiple of the peak.
pub const OVERLOAD: f64 = 2.0;
/// The rate of the recovery and login-flood phases, as a fraction of the peak.
pub const CALM_LEVEL: f64 = 0.5;
/// Clients of the login flood.
pub const FLOOD_CLIENTS: usize = 8;

/// What the step measured for one build.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OverloadResult {
    pub peak_rps: f64,
    /// This build's throughput at the SLO in the same run (the rate the
    /// calm phases take half of); `None` in reports from before it was kept.
    #[serde(default)]
    pub sustained_rps: Option<f64>,
    pub overload: PhaseResult,
    pub recovery: PhaseResult,
    /// From the start of the recovery phase: the first second from which no
    /// second sheds a request or has its p99 above the SLO; `None`: never.
    pub recovered_after_s: Option<f64>,
    pub flood: FloodResult,
    /// Memory high-water marks (MiB) before the overload phase and after the
    /// whole step, per process.
    pub memory_before_mib: BTreeMap<String, f64>,
    pub memory_after_mib: BTreeMap<String, f64>,
}

/// One phase of the mix, with shed requests apart from those served.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseResult {
    pub offered_rps: f64,
    pub window_s: f64,
    /// Answers that are neither `503 overloaded` nor errors.
    pub ok: u64,
    pub shed: u64,
    /// Any other error answer (or none), by status or transport error.
    pub errors: BTreeMap<String, u64>,
    pub goodput_rps: f64,
    /// Latency of every request answered other than `503 overloaded`.
    pub served: Percentiles,
    /// Latency of the `503 overloaded` answers.
    pub refused: Percentiles,
    /// Per second of the phase: `(ok, shed, p99 µs of those served)`.
    pub seconds: Vec<(u64, u64, u64)>,
}

/// The login flood beside the mix.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FloodResult {
    pub attempts: u64,
    /// Checked and wrong: `401 invalid_credentials`.
    pub checked: u64,
    /// Refused unchecked: `429 too_many_requests` with `Retry-After`.
    pub throttled: u64,
    pub throttled_with_retry_after: u64,
    pub other: BTreeMap<String, u64>,
    /// Latency of the 429 answers.
    pub throttled_latency: Percentiles,
    /// The mix beside it.
    pub mix: PhaseResult,
}

/// Runs the step against a build that is up, with a pool already set up.
pub async fn run(
    target: &Client,
    pool: &Arc<UserPool>,
    catalog: &Arc<Vec<Product>>,
    watch: &Watch,
    plan: &Plan,
    build: Build,
    rates: Rates,
) -> Result<OverloadResult> {
    let Rates { peak, sustained } = rates;
    let (overload_s, calm_s) = durations(plan);
    let memory_before_mib = watch.memory();
    let rate = peak * OVERLOAD;
    eprintln!("overload {} at {rate:.0} rps ({OVERLOAD} × the peak) for {overload_s} s", build.name());
    let overload = phase(target, pool, catalog, 0x0e7e, rate, overload_s).await;
    let calm = calm_rate(peak, sustained);
    eprintln!("overload {} recovery at {calm:.0} rps for {calm_s} s", build.name());
    let recovery = phase(target, pool, catalog, 0x7ec0, calm, calm_s).await;
    let recovered_after_s = recovered_after(&recovery.seconds, math::SLO_P99_US);
    let victim = pool.users.first().map_or("nobody@example.com", |u| u.email.as_str());
    eprintln!("overload {} login flood ({FLOOD_CLIENTS} clients, one account) beside {calm:.0} rps", build.name());
    let (mix, flood) = tokio::join!(phase(target, pool, catalog, 0xf100d, calm, calm_s), flood(target, victim, calm_s));
    let memory_after_mib = watch.memory();
    Ok(OverloadResult {
        peak_rps: peak,
        sustained_rps: Some(sustained),
        overload,
        recovery,
        recovered_after_s,
        flood: FloodResult { mix, ..flood },
        memory_before_mib,
        memory_after_mib,
    })
}

/// What the step's rates are set from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// The monolith's peak: the overload is twice it, for both builds.
    pub peak: f64,
    /// This build's throughput at the SLO in the same run: the calm phases
    /// take half of it.
    pub sustained: f64,
}

/// The rate of the calm phases: half of what the build sustains within the
/// SLO, never more than half the peak (a build that met the SLO nowhere
/// gets a tenth of the peak, so the phase still says whether it recovers).
pub fn calm_rate(peak: f64, sustained: f64) -> f64 {
    let base = if sustained > 0.0 { sustained.min(peak) } else { peak * 0.2 };
    math::level_rate(base, CALM_LEVEL)
}

/// Orders the step may place (what the pool's wallets must be funded for).
pub fn orders(plan: &Plan, peak: f64, place_share: f64) -> f64 {
    let (overload_s, calm_s) = durations(plan);
    (peak * OVERLOAD * overload_s + 2.0 * peak * CALM_LEVEL * calm_s) * place_share
}

/// Seconds of the overload phase and of each calm phase.
fn durations(plan: &Plan) -> (f64, f64) {
    if plan.quick { (6.0, 6.0) } else { (15.0, 10.0) }
}

/// Writes `overload-{label}.json` into `dir` and appends the run's section
/// to `overload.md` there.
pub fn write(dir: &Path, label: &str, build: Build, r: &OverloadResult) -> Result<()> {
    let json_path = dir.join(format!("overload-{label}.json"));
    std::fs::write(&json_path, serde_json::to_vec_pretty(r)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    let md_path = dir.join("overload.md");
    let mut md = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&md_path)
        .with_context(|| format!("opening {}", md_path.display()))?;
    md.write_all(markdown(label, build, r).as_bytes()).with_context(|| format!("writing {}", md_path.display()))?;
    Ok(())
}

/// One run's section: the three phases and the memory, against the targets.
pub fn markdown(label: &str, build: Build, r: &OverloadResult) -> String {
    let ms = |us: u64| format!("{:.1} ms", us as f64 / 1e3);
    let slo = math::SLO_P99_US;
    let o = &r.overload;
    let mut out = format!("\n## {label} ({})\n\n", build.name());
    out += "| phase | offered rps | goodput rps | shed | other errors | served p50 | served p99 | 503 p99 |\n";
    out += "|---|---|---|---|---|---|---|---|\n";
    for (name, p) in [("overload", o), ("recovery", &r.recovery), ("beside the login flood", &r.flood.mix)] {
        out += &format!(
            "| {name} | {:.0} | {:.0} | {} | {} | {} | {} | {} |\n",
            p.offered_rps,
            p.goodput_rps,
            p.shed,
            p.errors.values().sum::<u64>(),
            ms(p.served.p50_us),
            ms(p.served.p99_us),
            if p.shed == 0 { "–".to_owned() } else { ms(p.refused.p99_us) },
        );
    }
    let goodput = o.goodput_rps / r.peak_rps.max(1e-9);
    let own = r.sustained_rps.filter(|s| *s > 0.0).map_or(String::new(), |s| {
        format!(
            " This build serves {s:.0} rps within the SLO: its goodput here is {:.0} % of that.",
            100.0 * o.goodput_rps / s
        )
    });
    let verdict = |met: bool| if met { "met" } else { "missed" };
    out += &format!(
        "\nAt {:.0} × the peak ({:.0} rps): goodput {:.0} rps = **{:.0} % of the peak** (target ≥ 90 %: {}); \
         served p99 **{}** (SLO {}: {}); {} of {} requests shed ({:.0} %).{own}\n",
        OVERLOAD,
        r.peak_rps,
        o.goodput_rps,
        goodput * 100.0,
        verdict(goodput >= 0.9),
        ms(o.served.p99_us),
        ms(slo),
        verdict(o.served.p99_us <= slo),
        o.shed,
        o.ok + o.shed + o.errors.values().sum::<u64>(),
        100.0 * o.shed as f64 / (o.ok + o.shed).max(1) as f64,
    );
    let calm_why = match r.sustained_rps {
        Some(s) if s > 0.0 && s <= r.peak_rps => {
            format!(" (half of what this build serves within the SLO, {s:.0} rps)")
        }
        Some(s) if s > 0.0 => " (half the peak: this build serves more within the SLO)".to_owned(),
        _ => String::new(),
    };
    out += &match r.recovered_after_s {
        Some(s) => {
            format!("Recovered **{s:.0} s** after the load dropped to {:.0} rps{calm_why}.\n", r.recovery.offered_rps)
        }
        None => format!(
            "**Not recovered** within {:.0} s at {:.0} rps{calm_why}.\n",
            r.recovery.window_s, r.recovery.offered_rps
        ),
    };
    let f = &r.flood;
    out += &format!(
        "Login flood ({FLOOD_CLIENTS} clients, wrong passwords for one account, {:.0} s): {} attempts, **{} checked** \
         (401), {} refused unchecked (429; {} with `Retry-After`; p99 {}){}; the mix beside it: p99 {}.\n",
        f.mix.window_s,
        f.attempts,
        f.checked,
        f.throttled,
        f.throttled_with_retry_after,
        ms(f.throttled_latency.p99_us),
        if f.other.is_empty() { String::new() } else { format!(", other answers {:?}", f.other) },
        ms(f.mix.served.p99_us),
    );
    out += "\n| process | memory high-water mark before (MiB) | after (MiB) |\n|---|---|---|\n";
    for (name, after) in &r.memory_after_mib {
        let before = r.memory_before_mib.get(name).copied().unwrap_or(0.0);
        out += &format!("| {name} | {before:.1} | {after:.1} |\n");
    }
    out
}

/// The first second from which every second sheds nothing and keeps its p99
/// within `slo_us`.
fn recovered_after(seconds: &[(u64, u64, u64)], slo_us: u64) -> Option<f64> {
    let bad = seconds.iter().rposition(|&(ok, shed, p99)| shed > 0 || p99 > slo_us || ok == 0);
    match bad {
        None => Some(0.0),
        Some(i) if i + 1 < seconds.len() => Some((i + 1) as f64),
        Some(_) => None,
    }
}

/// One open-model phase of the default mix at `rate` for `secs`, shed
/// answers apart (`loadtest ab --overload` measures with it too).
pub(crate) async fn phase(
    target: &Client,
    pool: &Arc<UserPool>,
    catalog: &Arc<Vec<Product>>,
    seed: u64,
    rate: f64,
    secs: f64,
) -> PhaseResult {
    let shop = Shop {
        target: target.clone(),
        pool: pool.clone(),
        catalog: catalog.clone(),
        mix: Mix::default(),
        seed,
        traces: None,
    };
    measure(Arc::new(shop), rate, secs).await
}

/// One open-model phase of `op` at `rate` for `secs`, shed answers apart.
async fn measure<O: Operation>(op: Arc<O>, rate: f64, secs: f64) -> PhaseResult {
    let duration = Duration::from_secs_f64(secs);
    let t0 = Instant::now();
    let sorted = Arc::new(Sorted { inner: op, t0, rate, tally: Mutex::new(Tally::new(secs)) });
    let phase = Phase {
        model: Model::Open { rate },
        duration,
        max_requests: u64::MAX,
        max_in_flight: 4096,
        drain: Duration::from_secs(10),
        progress: None,
    };
    let ran = engine::run(&phase, sorted.clone(), Arc::new(Recorder::new())).await;
    let t = sorted.tally.lock().unwrap_or_else(PoisonError::into_inner);
    let window = ran.window.as_secs_f64().max(1e-3);
    PhaseResult {
        offered_rps: rate,
        window_s: window,
        ok: t.ok,
        shed: t.shed,
        errors: t.errors.clone(),
        goodput_rps: t.ok as f64 / window,
        served: Percentiles::of(&t.served),
        refused: Percentiles::of(&t.refused),
        seconds: t
            .seconds
            .iter()
            .map(|s| (s.ok, s.shed, if s.served.is_empty() { 0 } else { s.served.value_at_quantile(0.99) }))
            .collect(),
    }
}

/// An operation whose answers are sorted into served and shed, per second
/// of intended send time.
struct Sorted<O> {
    inner: Arc<O>,
    t0: Instant,
    rate: f64,
    tally: Mutex<Tally>,
}

struct Tally {
    ok: u64,
    shed: u64,
    errors: BTreeMap<String, u64>,
    served: Histogram<u64>,
    refused: Histogram<u64>,
    seconds: Vec<Second>,
}

struct Second {
    ok: u64,
    shed: u64,
    served: Histogram<u64>,
}

impl Tally {
    fn new(secs: f64) -> Self {
        let seconds =
            (0..secs.ceil().max(1.0) as usize).map(|_| Second { ok: 0, shed: 0, served: new_histogram() }).collect();
        Self { ok: 0, shed: 0, errors: BTreeMap::new(), served: new_histogram(), refused: new_histogram(), seconds }
    }
}

impl<O: Operation> Operation for Sorted<O> {
    async fn call(&self, i: u64) -> Outcome {
        let intended = intended_time(self.t0, i, self.rate).min(Instant::now());
        let outcome = self.inner.call(i).await;
        let latency = intended.elapsed();
        let second = intended.saturating_duration_since(self.t0).as_secs() as usize;
        let shed = outcome.status == Ok(503) && outcome.code.as_deref() == Some("overloaded");
        let mut t = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
        let last = t.seconds.len() - 1;
        let s = second.min(last);
        if shed {
            t.shed += 1;
            t.seconds[s].shed += 1;
            record(&mut t.refused, latency);
            return outcome;
        }
        record(&mut t.served, latency);
        record(&mut t.seconds[s].served, latency);
        if outcome.is_error() {
            let key = match (&outcome.status, &outcome.code) {
                (Ok(status), Some(code)) => format!("{status} {code}"),
                (Ok(status), None) => status.to_string(),
                (Err(e), _) => format!("{e:?}"),
            };
            *t.errors.entry(key).or_default() += 1;
        } else {
            t.ok += 1;
            t.seconds[s].ok += 1;
        }
        outcome
    }
}

/// `FLOOD_CLIENTS` clients sending wrong passwords for `email` for `secs`.
async fn flood(target: &Client, email: &str, secs: f64) -> FloodResult {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let state = Mutex::new((FloodResult::default(), new_histogram()));
    let client = |n: usize| {
        let state = &state;
        async move {
            let body = json!({"email": email, "password": format!("a wrong guess {n:04}")});
            while Instant::now() < deadline {
                let sent = Instant::now();
                let reply = target.post("/v1/sessions").json(&body).send().await;
                let took = sent.elapsed();
                let mut guard = state.lock().unwrap_or_else(PoisonError::into_inner);
                let (r, latency) = &mut *guard;
                r.attempts += 1;
                match reply {
                    Ok(res) if res.status().as_u16() == 401 => r.checked += 1,
                    Ok(res) if res.status().as_u16() == 429 => {
                        r.throttled += 1;
                        r.throttled_with_retry_after += u64::from(res.header("retry-after").is_some());
                        record(latency, took);
                    }
                    Ok(res) => *r.other.entry(res.status().as_u16().to_string()).or_default() += 1,
                    Err(e) => *r.other.entry(format!("{:?}", e.kind)).or_default() += 1,
                }
            }
        }
    };
    futures_util::future::join_all((0..FLOOD_CLIENTS).map(client)).await;
    let (mut out, latency) = state.into_inner().unwrap_or_else(PoisonError::into_inner);
    out.throttled_latency = Percentiles::of(&latency);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calm_phases_take_half_of_what_the_build_sustains() {
        // The microservices at a third of the monolith's peak: half of their own rate.
        assert_eq!(calm_rate(900.0, 300.0), math::level_rate(300.0, CALM_LEVEL));
        // Never above half the peak, even when the ladder's top met the SLO.
        assert_eq!(calm_rate(900.0, 1200.0), math::level_rate(900.0, CALM_LEVEL));
        // A build that met the SLO nowhere still gets a phase, a tenth of the peak.
        assert_eq!(calm_rate(900.0, 0.0), math::level_rate(180.0, CALM_LEVEL));
    }

    #[test]
    fn recovery_is_the_first_second_after_the_last_bad_one() {
        let slo = 25_000;
        let good = (100, 0, 10_000);
        assert_eq!(recovered_after(&[good, good], slo), Some(0.0));
        assert_eq!(recovered_after(&[(80, 5, 9_000), (100, 0, 40_000), good, good], slo), Some(2.0));
        assert_eq!(recovered_after(&[good, (100, 1, 9_000)], slo), None, "still shedding at the end");
        assert_eq!(
            recovered_after(&[(0, 0, 0), good], slo),
            Some(1.0),
            "a second with nothing served is not recovered"
        );
    }
}
