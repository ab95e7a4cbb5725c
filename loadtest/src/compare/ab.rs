//! `loadtest ab`: two variants of the same build (other binaries, or other
//! environment) measured alternately at one fixed rate, for CPU per request.
//!
//! Why it exists: a cut in our own CPU per request is a few percent to a
//! few tens of percent, and two runs of the same binaries on this 2-core
//! machine differ by as much (issue 16's old-vs-new runs: 616–981 µs for
//! one monolith binary). A comparison run picks its rates from its own
//! peak, which adds its own noise. Here both variants get the same rate,
//! the same mix and the same pool size, in the order A B B A A B B A ...
//! so a drift of the machine during the run falls on both alike, and each
//! round gives one paired difference. The report gives each measurement,
//! the means, and the mean paired difference with its standard error: a
//! change is shown when that difference is several standard errors from
//! zero, and the report says how many.
//!
//! With `--overload` the rate is meant to be past the build's peak (twice
//! it, as `loadtest compare`'s overload step offers) and the figure is what
//! issue 16 asks of shedding: the goodput (answers that are neither `503
//! overloaded` nor errors, per second) and the p99 of the requests served.
//! A comparison run offers each run twice *its own* monolith peak, so two
//! runs of it overload two variants at different rates; here both get one.

use std::{collections::BTreeMap, fmt::Write as _, io::Write as _, path::PathBuf, time::Instant};

use anyhow::{Context as _, Result, bail, ensure};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use twinshop_client::Client;

use super::{
    GENERATOR, SystemArgs,
    launch::{Build, Setup},
    math::per_unit,
    overload::{self, PhaseResult},
    plan::{Plan, fmt_minutes},
    procs::{self, cpu_delta_ms},
    watch_for,
};
use crate::{engine::Model, mix::Mix, stats::fmt_us, step::StepResult};

/// The unmeasured load before each window, seconds.
const WARMUP_S: f64 = 3.0;

/// `loadtest ab` flags.
#[derive(Debug, Clone, Args)]
pub struct AbArgs {
    /// Variant A's service binaries (default: the workspace's target/release, as built).
    #[arg(long, value_name = "DIR")]
    pub a_bins: Option<PathBuf>,
    /// Variant B's service binaries (default: the same as A's).
    #[arg(long, value_name = "DIR")]
    pub b_bins: Option<PathBuf>,
    /// More environment for every process of variant A (KEY=VALUE, repeatable).
    #[arg(long = "a-env", value_name = "KEY=VALUE", value_parser = key_value)]
    pub a_env: Vec<(String, String)>,
    /// More environment for every process of variant B (KEY=VALUE, repeatable).
    #[arg(long = "b-env", value_name = "KEY=VALUE", value_parser = key_value)]
    pub b_env: Vec<(String, String)>,
    /// Variant A's name in the report.
    #[arg(long, default_value = "A")]
    pub a_name: String,
    /// Variant B's name in the report.
    #[arg(long, default_value = "B")]
    pub b_name: String,
    /// Which builds to measure.
    #[arg(long, value_enum, default_value_t = Builds::Both)]
    pub build: Builds,
    /// The open model's rate of the default mix, the same for every measurement.
    #[arg(long, default_value_t = 250.0)]
    pub rate: f64,
    /// Seconds of each measured window (after a 3 s warm-up, [`WARMUP_S`]).
    #[arg(long, default_value_t = 15.0)]
    pub duration: f64,
    /// Measure shedding instead of CPU: --rate is past the peak (e.g. twice
    /// it), and the figure is the goodput (answers neither `503 overloaded`
    /// nor errors, per second) and the p99 of the requests served.
    #[arg(long)]
    pub overload: bool,
    /// Rounds per build; a round measures A and B once each (A B, then B A, ...).
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Where results.json, report.md and the run logs go.
    #[arg(long, default_value = "loadtest-ab")]
    pub out: PathBuf,
    #[command(flatten)]
    pub system: SystemArgs,
}

/// The builds an A/B measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Builds {
    Monolith,
    Microservices,
    Both,
}

impl Builds {
    fn list(self) -> Vec<Build> {
        match self {
            Self::Monolith => vec![Build::Monolith],
            Self::Microservices => vec![Build::Microservices],
            Self::Both => vec![Build::Monolith, Build::Microservices],
        }
    }
}

pub(crate) fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// One measurement: one variant of one build, started fresh, one window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    pub build: Build,
    /// 0 for A, 1 for B.
    pub variant: usize,
    pub round: usize,
    pub requests: u64,
    pub errors: u64,
    pub correct: bool,
    pub achieved_rps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// CPU µs per request of the build's own processes (the services, or
    /// the monolith), summed.
    pub own_us_per_request: f64,
    /// CPU µs per request of every accounted process, by name.
    pub cpu_us_per_request: BTreeMap<String, f64>,
    /// Each of the build's own processes' peak resident memory (`VmHWM`,
    /// MiB) at the end of the window (absent in older results).
    #[serde(default)]
    pub peak_rss_mib: BTreeMap<String, f64>,
    /// With `--overload`: what was served and what was shed (then `p50_us`
    /// and `p99_us` are those of the requests served).
    #[serde(default)]
    pub shedding: Option<Shedding>,
}

/// What an overload window served and refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shedding {
    /// Answers neither shed nor errors, per second of the window.
    pub goodput_rps: f64,
    pub ok: u64,
    /// `503 overloaded` answers.
    pub shed: u64,
    /// How fast a refusal came, p50.
    pub refused_p50_us: u64,
}

impl Measurement {
    /// The figure the A/B compares: own CPU per request, or with
    /// `--overload` the goodput.
    pub fn figure(&self) -> f64 {
        self.shedding.as_ref().map_or(self.own_us_per_request, |s| s.goodput_rps)
    }
}

/// The whole A/B and its summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AbReport {
    pub names: [String; 2],
    pub bins: [String; 2],
    pub env: [Vec<(String, String)>; 2],
    pub rate: f64,
    pub duration_s: f64,
    pub rounds: usize,
    /// Measured with `--overload` (absent in older results).
    #[serde(default)]
    pub overload: bool,
    pub command: String,
    pub measurements: Vec<Measurement>,
    pub summaries: Vec<Summary>,
}

/// Per build: means, the paired differences and their standard error, of
/// [`Measurement::figure`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub build: Build,
    /// Mean own CPU µs per request (with `--overload`, goodput) of A and of B.
    pub mean: [f64; 2],
    /// B − A per round.
    pub differences: Vec<f64>,
    pub mean_difference: f64,
    /// The standard error of the mean difference (sample sd / √n); `None` below 2 rounds.
    pub standard_error: Option<f64>,
    /// Rounds in which B's figure was lower than A's.
    pub b_lower: usize,
    /// Mean p99 of A and of B, µs.
    pub p99_us: [f64; 2],
    /// Mean peak resident memory per own process of A and of B, MiB
    /// (absent in older results).
    #[serde(default)]
    pub peak_rss_mib: [BTreeMap<String, f64>; 2],
}

impl Summary {
    /// The summary of `build`'s complete rounds (both variants measured, both correct).
    pub fn of(build: Build, measurements: &[Measurement]) -> Option<Self> {
        let rounds: BTreeMap<usize, [Option<&Measurement>; 2]> =
            measurements.iter().filter(|m| m.build == build && m.correct).fold(BTreeMap::new(), |mut acc, m| {
                acc.entry(m.round).or_insert([None, None])[m.variant.min(1)] = Some(m);
                acc
            });
        let pairs: Vec<(&Measurement, &Measurement)> =
            rounds.values().filter_map(|[a, b]| Some(((*a)?, (*b)?))).collect();
        if pairs.is_empty() {
            return None;
        }
        let n = pairs.len() as f64;
        let mean = |f: &dyn Fn(&(&Measurement, &Measurement)) -> f64| pairs.iter().map(f).sum::<f64>() / n;
        let differences: Vec<f64> = pairs.iter().map(|(a, b)| b.figure() - a.figure()).collect();
        let mean_difference = differences.iter().sum::<f64>() / n;
        let standard_error = (pairs.len() >= 2).then(|| {
            let var = differences.iter().map(|d| (d - mean_difference).powi(2)).sum::<f64>() / (n - 1.0);
            (var / n).sqrt()
        });
        Some(Self {
            build,
            mean: [mean(&|(a, _)| a.figure()), mean(&|(_, b)| b.figure())],
            b_lower: differences.iter().filter(|d| **d < 0.0).count(),
            differences,
            mean_difference,
            standard_error,
            p99_us: [mean(&|(a, _)| a.p99_us as f64), mean(&|(_, b)| b.p99_us as f64)],
            peak_rss_mib: [0, 1].map(|v| {
                let mut sums: BTreeMap<String, f64> = BTreeMap::new();
                for pair in &pairs {
                    let m = if v == 0 { pair.0 } else { pair.1 };
                    for (name, mib) in &m.peak_rss_mib {
                        *sums.entry(name.clone()).or_default() += mib / n;
                    }
                }
                sums
            }),
        })
    }

    /// B's change against A, as a fraction of A's mean.
    pub fn change(&self) -> f64 {
        if self.mean[0] > 0.0 { self.mean_difference / self.mean[0] } else { 0.0 }
    }

    /// How many standard errors the mean difference is from zero.
    pub fn t(&self) -> Option<f64> {
        self.standard_error.filter(|se| *se > 0.0).map(|se| self.mean_difference / se)
    }
}

/// Runs the A/B; exits non-zero when a measurement failed or was incorrect.
pub async fn run(args: AbArgs) -> Result<std::process::ExitCode> {
    ensure!(args.rate.is_finite() && args.rate > 0.0, "--rate must be above 0");
    ensure!(args.duration > 0.0, "--duration must be above 0");
    ensure!(args.rounds >= 1, "--rounds must be at least 1");
    let root = args.system.root()?;
    let release = root.join("target/release");
    let a_bins = args.a_bins.clone().unwrap_or(release);
    let b_bins = args.b_bins.clone().unwrap_or_else(|| a_bins.clone());
    for dir in [&a_bins, &b_bins] {
        if !dir.join("monolith").is_file() && !dir.join("order-service").is_file() {
            bail!("{} holds no service binaries (build them first: cargo build --release --bins)", dir.display());
        }
    }
    let log_dir = args.out.join("logs");
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let setups = [&a_bins, &b_bins].map(|bins| args.system.setup(&root, bins.clone(), log_dir.clone()));
    let envs = [args.a_env.clone(), args.b_env.clone()];
    let names = [args.a_name.clone(), args.b_name.clone()];
    let plan = Plan::quick(1);
    let window = Window { rate: args.rate, duration: args.duration, overload: args.overload };
    let builds = args.build.list();
    let total = builds.len() * args.rounds * 2;
    eprintln!(
        "ab       {} against {}: {} measurement(s) of {:.0} s at {:.0} rps, about {}",
        names[0],
        names[1],
        total,
        args.duration,
        args.rate,
        fmt_minutes(total as f64 * (args.duration + WARMUP_S + 1.0))
    );
    let started = Instant::now();
    let mut measurements = Vec::new();
    for build in builds {
        for round in 0..args.rounds {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for variant in order {
                eprintln!(
                    "ab       {} round {}: {}, {} elapsed",
                    build.name(),
                    round + 1,
                    names[variant],
                    fmt_minutes(started.elapsed().as_secs_f64())
                );
                let label = format!("{}-r{}-{}", build.name(), round + 1, if variant == 0 { "a" } else { "b" });
                let context = || format!("{label}: see the logs in {}", log_dir.join(&label).display());
                let m = measure(&setups[variant], &envs[variant], &plan, build, &label, window, (variant, round))
                    .await
                    .with_context(context)?;
                if let Some(shed) = &m.shedding {
                    eprintln!(
                        "ab       goodput {:.0} rps, {} shed, served p99 {}, {} errors",
                        shed.goodput_rps,
                        shed.shed,
                        fmt_us(m.p99_us as f64),
                        m.errors
                    );
                }
                eprintln!(
                    "ab       {:.0} µs of own CPU per request, p99 {}, {} errors, peak RSS {:.1} MiB in all",
                    m.own_us_per_request,
                    fmt_us(m.p99_us as f64),
                    m.errors,
                    m.peak_rss_mib.values().sum::<f64>()
                );
                measurements.push(m);
            }
        }
    }
    let summaries = args.build.list().into_iter().filter_map(|b| Summary::of(b, &measurements)).collect();
    let report = AbReport {
        names,
        bins: [a_bins.display().to_string(), b_bins.display().to_string()],
        env: envs,
        rate: args.rate,
        duration_s: args.duration,
        rounds: args.rounds,
        overload: args.overload,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        measurements,
        summaries,
    };
    std::fs::write(args.out.join("results.json"), serde_json::to_string_pretty(&report)?)?;
    let markdown = render(&report);
    std::fs::write(args.out.join("report.md"), &markdown)?;
    writeln!(std::io::stdout().lock(), "{markdown}")?;
    let all_correct = report.measurements.iter().all(|m| m.correct);
    Ok(if all_correct { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) })
}

/// What each measurement offers.
#[derive(Debug, Clone, Copy)]
struct Window {
    rate: f64,
    duration: f64,
    overload: bool,
}

/// One fresh start of `build` with `setup`'s binaries and `env`, a pool,
/// a warm-up and one measured window; the peak memory of every watched
/// process is read before the build stops. With `--overload` the window
/// sorts shed answers apart, CPU is sampled at its edges, and the pool is
/// checked after it (a refused request must have done nothing).
async fn measure(
    setup: &Setup,
    env: &[(String, String)],
    plan: &Plan,
    build: Build,
    label: &str,
    window: Window,
    (variant, round): (usize, usize),
) -> Result<Measurement> {
    let Window { rate, duration, overload } = window;
    let running = setup.start_with(build, label, env).await?;
    let watch = watch_for(build, Some(&running), &running.base_url);
    let result = async {
        let target = Client::builder().timeout(std::time::Duration::from_secs(10)).build(&running.base_url)?;
        let mix = Mix::default();
        let orders = rate * (WARMUP_S + duration) * mix.place_share();
        let (pool, catalog) = super::setup_pool(&target, plan, orders).await?;
        if !overload {
            let model = Model::Open { rate };
            let mut config = super::step_config(plan, &running.base_url, build, label.to_owned(), model, mix, duration);
            config.warmup = std::time::Duration::from_secs_f64(WARMUP_S);
            let step = super::measured_step(&target, &pool, &catalog, &config, &watch, "ab").await?;
            return Ok(Measurement::of(build, variant, round, &step, &watch.memory()));
        }
        overload::phase(&target, &pool, &catalog, 0x0e7e, rate, WARMUP_S).await;
        let before = watch.sample();
        let phase = overload::phase(&target, &pool, &catalog, 0xab0e, rate, duration).await;
        let cpu = cpu_delta_ms(&before, &watch.sample());
        let memory = watch.memory();
        let check = crate::check::check_pool_settled(&target, &pool).await;
        Ok::<_, anyhow::Error>(Measurement::of_overload(build, (variant, round), &phase, check.passed, &cpu, &memory))
    }
    .await;
    running.stop().await;
    result
}

impl Measurement {
    /// What the report keeps of one measured step of `build`.
    fn of(build: Build, variant: usize, round: usize, step: &StepResult, memory: &BTreeMap<String, f64>) -> Self {
        let cpu: BTreeMap<String, f64> = step
            .extra
            .get("cpu_us_per_request")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let l = step.latency();
        Self {
            build,
            variant,
            round,
            requests: step.summary.overall.count,
            errors: step.summary.overall.errors,
            correct: step.correct(),
            achieved_rps: step.achieved_rps(),
            p50_us: l.p50_us,
            p99_us: l.p99_us,
            own_us_per_request: build.processes().iter().filter_map(|p| cpu.get(*p)).sum(),
            cpu_us_per_request: cpu,
            peak_rss_mib: own_memory(build, memory),
            shedding: None,
        }
    }

    /// What the report keeps of one overload window of `build`: CPU is per
    /// request answered, served or shed.
    fn of_overload(
        build: Build,
        (variant, round): (usize, usize),
        phase: &PhaseResult,
        correct: bool,
        cpu_ms: &BTreeMap<String, f64>,
        memory: &BTreeMap<String, f64>,
    ) -> Self {
        let errors = phase.errors.values().sum::<u64>();
        let requests = phase.ok + phase.shed + errors;
        let cpu = per_unit(cpu_ms, requests);
        Self {
            build,
            variant,
            round,
            requests,
            errors,
            correct,
            achieved_rps: requests as f64 / phase.window_s.max(1e-3),
            p50_us: phase.served.p50_us,
            p99_us: phase.served.p99_us,
            own_us_per_request: build.processes().iter().filter_map(|p| cpu.get(*p)).sum(),
            cpu_us_per_request: cpu,
            peak_rss_mib: own_memory(build, memory),
            shedding: Some(Shedding {
                goodput_rps: phase.goodput_rps,
                ok: phase.ok,
                shed: phase.shed,
                refused_p50_us: phase.refused.p50_us,
            }),
        }
    }
}

/// The build's own processes' entries of `memory`.
fn own_memory(build: Build, memory: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    build.processes().iter().filter_map(|p| memory.get(*p).map(|mib| ((*p).to_owned(), *mib))).collect()
}

/// A summary's row up to the p99 columns: the means in `unit`, B − A with
/// its standard error, the rounds B was lower, and each variant's p99.
fn summary_cells(m: &Summary, unit: &str) -> String {
    let se = m.standard_error.map_or("–".to_owned(), |se| format!("{se:.0} {unit}"));
    let t = m.t().map_or(String::new(), |t| format!(" ({t:+.1} se)"));
    format!(
        "| {} | {:.0} {unit} | {:.0} {unit} | {:+.0} {unit} ({:+.1} %){t} | {se} | {} of {} | {} | {} |",
        m.build.name(),
        m.mean[0],
        m.mean[1],
        m.mean_difference,
        m.change() * 100.0,
        m.b_lower,
        m.differences.len(),
        fmt_us(m.p99_us[0]),
        fmt_us(m.p99_us[1]),
    )
}

/// The report: what was compared, every measurement, and per build the verdict.
pub fn render(r: &AbReport) -> String {
    let mut s = String::new();
    let [a, b] = &r.names;
    let _ = writeln!(s, "# A/B: {a} against {b}\n");
    for (i, name) in r.names.iter().enumerate() {
        let env: Vec<String> = r.env[i].iter().map(|(k, v)| format!("`{k}={v}`")).collect();
        let env = if env.is_empty() { "no extra environment".to_owned() } else { env.join(", ") };
        let _ = writeln!(s, "- **{name}**: binaries in `{}`, {env}", r.bins[i]);
    }
    if r.overload {
        let _ = writeln!(
            s,
            "\nEach measurement starts the build fresh (launcher, new databases), sets up a pool, then offers the \
             default mix at {:.0} rps (open model, past the peak) for a {WARMUP_S:.0} s warm-up and a {:.0} s \
             window. Goodput: answers that are neither `503 overloaded` nor errors, per second of the window; \
             p99: of the requests served (timed from their intended send), the refusals apart. Rounds alternate \
             the order (A B, B A, ...); the pool is checked after each window.\n",
            r.rate, r.duration_s
        );
        let _ = writeln!(
            s,
            "| build | mean goodput, {a} | {b} | {b} − {a} | standard error | rounds {b} lower | served p99 {a} | {b} | shed {a} | {b} |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
        for m in &r.summaries {
            let shed = |v: usize| {
                let (shed, all) = r
                    .measurements
                    .iter()
                    .filter(|x| x.build == m.build && x.variant == v && x.correct)
                    .filter_map(|x| x.shedding.as_ref().map(|sh| (sh.shed, x.requests)))
                    .fold((0, 0), |(s, a), (sh, n)| (s + sh, a + n));
                format!("{:.0} %", 100.0 * shed as f64 / all.max(1) as f64)
            };
            let _ = writeln!(s, "{} {} | {} |", summary_cells(m, "rps"), shed(0), shed(1));
        }
    } else {
        let _ = writeln!(
            s,
            "\nEach measurement starts the build fresh (launcher, new databases), sets up a pool, warms up {WARMUP_S:.0} s, \
             then measures {:.0} s of the default mix at {:.0} rps (open model). Rounds alternate the order (A B, B A, ...). \
             \"Own CPU\" is utime+stime of the build's own processes over the window, per request.\n",
            r.duration_s, r.rate
        );
        let _ = writeln!(
            s,
            "| build | mean own CPU / request, {a} | {b} | {b} − {a} | standard error | rounds {b} lower | p99 {a} | p99 {b} |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        for m in &r.summaries {
            let _ = writeln!(s, "{}", summary_cells(m, "µs"));
        }
    }
    if r.summaries.iter().any(|m| m.peak_rss_mib.iter().any(|v| !v.is_empty())) {
        let _ = writeln!(
            s,
            "\nPeak resident memory (`VmHWM`) of each own process at the end of the window, mean of the rounds:\n"
        );
        let _ = writeln!(s, "| build | process | {a} | {b} | {b} − {a} |");
        let _ = writeln!(s, "|---|---|---|---|---|");
        for m in &r.summaries {
            for (name, a_mib) in &m.peak_rss_mib[0] {
                let Some(b_mib) = m.peak_rss_mib[1].get(name) else { continue };
                let _ = writeln!(
                    s,
                    "| {} | {name} | {a_mib:.1} MiB | {b_mib:.1} MiB | {:+.1} MiB |",
                    m.build.name(),
                    b_mib - a_mib
                );
            }
        }
    }
    let _ = writeln!(s, "\n## Measurements\n");
    let _ = writeln!(
        s,
        "| build | round | variant | requests | errors | check | answered rps | goodput rps | shed | p50 | p99 | own CPU / request | postgres / request |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for m in &r.measurements {
        let pg = m.cpu_us_per_request.get("postgres").copied().unwrap_or(0.0);
        let (goodput, shed) = m
            .shedding
            .as_ref()
            .map_or(("–".to_owned(), "–".to_owned()), |x| (format!("{:.1}", x.goodput_rps), x.shed.to_string()));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.1} | {goodput} | {shed} | {} | {} | {:.0} µs | {:.0} µs |",
            m.build.name(),
            m.round + 1,
            r.names[m.variant.min(1)],
            m.requests,
            m.errors,
            if m.correct { "passed" } else { "FAILED" },
            m.achieved_rps,
            fmt_us(m.p50_us as f64),
            fmt_us(m.p99_us as f64),
            m.own_us_per_request,
            pg
        );
    }
    let _ = writeln!(
        s,
        "\nEvery process's CPU per request ({GENERATOR}, {}, the backing services) is in results.json. \
         Command: `{}`.",
        procs::OTHER,
        r.command
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(build: Build, round: usize, variant: usize, own: f64, correct: bool) -> Measurement {
        Measurement {
            build,
            variant,
            round,
            requests: 1000,
            errors: 0,
            correct,
            achieved_rps: 250.0,
            p50_us: 4000,
            p99_us: 10_000,
            own_us_per_request: own,
            cpu_us_per_request: BTreeMap::new(),
            peak_rss_mib: BTreeMap::from([("monolith".to_owned(), own / 20.0)]),
            shedding: None,
        }
    }

    #[test]
    fn the_summary_pairs_each_round_and_gives_the_mean_difference_and_its_standard_error() {
        let ms = [
            m(Build::Monolith, 0, 0, 800.0, true),
            m(Build::Monolith, 0, 1, 700.0, true),
            m(Build::Monolith, 1, 1, 760.0, true),
            m(Build::Monolith, 1, 0, 820.0, true),
            m(Build::Microservices, 0, 0, 1200.0, true),
        ];
        let s = Summary::of(Build::Monolith, &ms).expect("two rounds");
        assert_eq!(s.differences, [-100.0, -60.0]);
        assert_eq!(s.mean, [810.0, 730.0]);
        assert!((s.mean_difference + 80.0).abs() < 1e-9);
        // sd of (-100, -60) = 28.28; / sqrt(2) = 20.
        assert!((s.standard_error.expect("n = 2") - 20.0).abs() < 1e-9);
        assert!((s.t().expect("se > 0") + 4.0).abs() < 1e-9);
        assert_eq!(s.b_lower, 2);
        assert!((s.change() + 80.0 / 810.0).abs() < 1e-12);
        // Peak memory: the mean over the paired rounds, per variant.
        assert!((s.peak_rss_mib[0]["monolith"] - 810.0 / 20.0).abs() < 1e-9);
        assert!((s.peak_rss_mib[1]["monolith"] - 730.0 / 20.0).abs() < 1e-9);
        // A round with only one variant measured is no pair.
        assert!(Summary::of(Build::Microservices, &ms).is_none());
    }

    #[test]
    fn an_incorrect_measurement_leaves_its_round_out() {
        let ms = [
            m(Build::Monolith, 0, 0, 800.0, true),
            m(Build::Monolith, 0, 1, 100.0, false),
            m(Build::Monolith, 1, 1, 760.0, true),
            m(Build::Monolith, 1, 0, 820.0, true),
        ];
        let s = Summary::of(Build::Monolith, &ms).expect("one round");
        assert_eq!(s.differences, [-60.0]);
        assert_eq!(s.standard_error, None);
    }

    #[test]
    fn with_overload_the_figure_is_the_goodput_and_the_report_says_so() {
        let shed = |goodput_rps: f64, shed: u64| Shedding { goodput_rps, ok: 1000 - shed, shed, refused_p50_us: 1500 };
        let mut a = m(Build::Monolith, 0, 0, 800.0, true);
        a.shedding = Some(shed(1500.0, 500));
        let mut b = m(Build::Monolith, 0, 1, 700.0, true);
        b.shedding = Some(shed(1700.0, 250));
        let s = Summary::of(Build::Monolith, &[a.clone(), b.clone()]).expect("a pair");
        assert_eq!(s.mean, [1500.0, 1700.0]);
        assert_eq!(s.differences, [200.0]);
        assert_eq!(s.b_lower, 0);
        let report = AbReport {
            names: ["A".into(), "B".into()],
            bins: ["a".into(), "b".into()],
            env: [vec![], vec![("MONOLITH_MAX_IN_FLIGHT".into(), "8".into())]],
            rate: 4000.0,
            duration_s: 15.0,
            rounds: 1,
            overload: true,
            command: "loadtest ab --overload".into(),
            measurements: vec![a, b],
            summaries: vec![s],
        };
        let md = render(&report);
        assert!(
            md.contains(
                "| monolith | 1500 rps | 1700 rps | +200 rps (+13.3 %) | – | 0 of 1 | 10.0ms | 10.0ms | 50 % | 25 % |"
            ),
            "{md}"
        );
        assert!(md.contains("past the peak"), "{md}");
        assert!(!md.contains("mean own CPU"), "{md}");
    }

    #[test]
    fn environment_flags_are_key_value() {
        assert_eq!(key_value("TOKIO_WORKER_THREADS=1"), Ok(("TOKIO_WORKER_THREADS".into(), "1".into())));
        assert_eq!(key_value("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(key_value("=1").is_err());
        assert!(key_value("NOVALUE").is_err());
    }
}
