//! `loadtest compare`: the monolith and the microservices, on one machine,
//! against the same backing services, measured side by side.
//!
//! Why it exists: it is the one command an architect runs to learn what
//! splitting the shop into services costs and where that cost goes. It
//! composes the rest of the crate: builds are started and stopped by the
//! launcher, as for `make run` and the labs ([`launch`] says with which
//! plan), load is offered by the same engine and steps as `loadtest run`
//! ([`crate::step`]), CPU and memory of the pids the launcher reports come
//! from `/proc` ([`procs`]), the database ceiling from pgbench
//! ([`ceiling`]), the hop cost from direct probes ([`hops`]); [`math`] turns
//! the results into the headline, [`report`] gathers it and [`render`]
//! writes it.
//!
//! # The sequence
//!
//! 1. the plan and its time budget are printed; the release binaries are
//!    built once (waiting for any other cargo on the machine first), unless
//!    `--no-build` or another build's binaries are measured (`--bin-dir`);
//! 2. **peak**: a fresh monolith, closed-model steps; the highest achieved
//!    rate is the monolith's peak;
//! 3. **runs**, interleaved monolith, microservices, monolith, ... (at
//!    least three each in full mode); each run starts its build on fresh
//!    databases and free ports, sets up a pool of users (not measured),
//!    then: open-model mix steps at 25/50/70/85/100 % of the monolith's peak
//!    (the same rates for both builds), one refining step between the
//!    highest passing and the lowest failing one (full mode), a place-only
//!    step at a fixed rate (CPU per placed order), and a place-only
//!    closed-model step (placed orders per second at most, against the
//!    database ceiling); the overload step ([`overload`]: twice the peak,
//!    the recovery after it and a login flood, written to `overload.md`); a
//!    correctness check after every step; memory at the end; then the
//!    build stops, and its databases and its events
//!    namespace on RabbitMQ are removed;
//! 4. **hop probes** on the last microservices run, before it stops, each
//!    interleaved with the same probe against the bare-framework floor
//!    ([`crate::floor`]);
//! 5. **trace map**: each build once more with its spans exported to the
//!    generator ([`traced`], [`tracemap`]): where a placed order's time goes
//!    at 25, 50 and 70 % of the peak, waits apart from work;
//! 6. **ceilings**: pgbench on throwaway databases, nothing else running;
//! 7. the report: JSON, Markdown and HTML, headline first.

pub mod ab;
pub mod ceiling;
pub mod hops;
pub mod launch;
pub mod mapview;
pub mod math;
pub mod overload;
pub mod plan;
pub mod procs;
pub mod render;
pub mod report;
pub mod sched;
pub mod traced;
pub mod tracemap;

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use serde_json::json;

use self::{
    launch::{Build, Running, Setup},
    plan::{Plan, fmt_minutes},
    procs::{Watch, cpu_delta_ms},
    report::{CompareReport, Peak, RunRecord},
};
use twinshop_client::Client;
use twinshop_launcher::Service;

use crate::{
    engine::Model,
    mix::Mix,
    setup::{Product, SetupConfig, UserPool, fetch_catalog, wallet_budget},
    step::{StepConfig, StepResult, WindowEdge, run_step_observed},
};

/// `loadtest compare` flags.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// A smoke run of a few minutes: one repeat, short steps, no refinement.
    #[arg(long)]
    pub quick: bool,
    /// Runs of each build (interleaved A B A B ...); default 3, quick 1.
    #[arg(long)]
    pub repeats: Option<usize>,
    /// Where results.json, report.md, report.html and the run logs go.
    #[arg(long, default_value = "loadtest-compare")]
    pub out: PathBuf,
    /// Measure an already running monolith at this base URL (no start/stop;
    /// with --micro-url).
    #[arg(long, requires = "micro_url")]
    pub mono_url: Option<String>,
    /// Measure already running microservices at this base URL (with --mono-url).
    #[arg(long, requires = "mono_url")]
    pub micro_url: Option<String>,
    /// Do not build the release binaries first (they must exist).
    #[arg(long)]
    pub no_build: bool,
    /// Where the service binaries are: default the workspace's
    /// target/release (built first unless --no-build); another build's
    /// binaries are measured as they are (its pgbench ceiling still runs
    /// this checkout's SQL: --no-ceiling if that build's schema differs).
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Skip the pgbench database ceilings.
    #[arg(long)]
    pub no_ceiling: bool,
    #[command(flatten)]
    pub system: SystemArgs,
    /// Measure nothing: recompute the headline of an earlier comparison's
    /// results.json and write its reports into --out.
    #[arg(long, conflicts_with_all = ["quick", "mono_url"])]
    pub from: Option<PathBuf>,
}

/// What the builds run against and with, for `compare` and `ab` alike.
#[derive(Debug, Clone, Args)]
pub struct SystemArgs {
    /// Postgres for the throwaway databases and pgbench (trust auth).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pub pg: String,
    /// RUST_LOG of the services it starts (the product default).
    #[arg(long, default_value = "info")]
    pub rust_log: String,
    /// The workspace root (dev/keys, deploy/edge); default: found from the current directory.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// More environment for every process it starts, in every run
    /// (KEY=VALUE, repeatable; e.g. `TOKIO_WORKER_THREADS=1`, or a service's
    /// own setting under its prefix: `ORDER_MAX_IN_FLIGHT=8`).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = ab::key_value)]
    pub env: Vec<(String, String)>,
}

impl SystemArgs {
    /// The workspace root: given, or found from the current directory.
    fn root(&self) -> Result<PathBuf> {
        match &self.root {
            Some(r) => Ok(r.clone()),
            None => find_root(),
        }
    }

    /// A setup of these backing services running the binaries in `bin_dir`.
    fn setup(&self, root: &Path, bin_dir: PathBuf, log_dir: PathBuf) -> Setup {
        Setup {
            root: root.to_path_buf(),
            bin_dir,
            backing: Setup::backing(&self.pg),
            rust_log: self.rust_log.clone(),
            env: self.env.clone(),
            log_dir,
        }
    }
}

/// The ports of the backing services on this machine.
const POSTGRES_PORT: u16 = 5432;
const REDIS_PORT: u16 = 6379;
const RABBITMQ_PORT: u16 = 5672;

/// The generator's own name in CPU tables.
pub const GENERATOR: &str = "generator (loadtest)";

/// Runs a whole comparison; the exit code says whether every run stayed correct.
pub async fn run(args: CompareArgs) -> Result<std::process::ExitCode> {
    if let Some(from) = &args.from {
        let text = std::fs::read_to_string(from).with_context(|| format!("reading {}", from.display()))?;
        let report: CompareReport =
            serde_json::from_str(&text).with_context(|| format!("{} is not a compare results file", from.display()))?;
        return finish(&args.out, report.recomputed());
    }
    let started = Instant::now();
    let repeats = args.repeats.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let plan = if args.quick { Plan::quick(repeats) } else { Plan::full(repeats) };
    eprintln!("{}", plan.describe());
    let root = args.system.root()?;
    let out = args.out.clone();
    let log_dir = out.join("logs");
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let tag = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() % 0xffffff);
    let release = root.join("target/release");
    let setup = args.system.setup(&root, args.bin_dir.clone().unwrap_or_else(|| release.clone()), log_dir);
    let given = args.mono_url.clone().zip(args.micro_url.clone());
    let mut notes = Vec::new();
    if given.is_none() && !args.no_build {
        if setup.bin_dir == release {
            let took = launch::build_release(&root, Duration::from_secs(30 * 60)).await?;
            eprintln!("compare  release binaries ready in {:.0} s", took.as_secs_f64());
        } else {
            eprintln!("compare  measuring the binaries in {} as they are (no build)", setup.bin_dir.display());
        }
    }
    if given.is_none() && setup.bin_dir != release {
        notes.push(format!("The builds ran the binaries in {}.", setup.bin_dir.display()));
    }

    // 2. The monolith's peak, on its own fresh instance.
    let (peak, mut hops) = (find_peak(&setup, &plan, given.as_ref()).await?, None);
    eprintln!("compare  monolith peak: {:.0} rps (closed model)", peak.rps);
    if peak.rps < 10.0 {
        bail!("the monolith's peak is {:.1} rps: nothing to compare (see the logs in {})", peak.rps, out.display());
    }

    // 3. Interleaved runs.
    let mut runs = Vec::new();
    for round in 0..plan.repeats {
        for build in [Build::Monolith, Build::Microservices] {
            let last_micro = build == Build::Microservices && round + 1 == plan.repeats;
            eprintln!(
                "compare  run {}/{}: {} (round {}), {} elapsed",
                runs.len() + 1,
                2 * plan.repeats,
                build.name(),
                round + 1,
                fmt_minutes(started.elapsed().as_secs_f64())
            );
            let label = format!("run{}-{}", round + 1, build.name());
            let url = given.as_ref().map(|(m, s)| if build == Build::Monolith { m.clone() } else { s.clone() });
            match one_run(&setup, &plan, build, round, &label, url, peak.rps, last_micro).await {
                Ok((record, probed)) => {
                    hops = hops.or(probed);
                    runs.push(record);
                }
                Err(e) => {
                    eprintln!("compare  the run failed: {e:#}");
                    runs.push(RunRecord::failed(build, round, &format!("{e:#}")));
                }
            }
        }
    }

    // 4b. The trace map, from runs of their own with spans exported.
    let trace_map = if plan.trace_map && given.is_none() {
        eprintln!("compare  trace map, {} elapsed", fmt_minutes(started.elapsed().as_secs_f64()));
        match traced::run(&setup, &plan, peak.rps).await {
            Ok(map) => Some(map),
            Err(e) => {
                eprintln!("compare  the trace map could not be drawn: {e:#}");
                notes.push(format!("The trace map could not be drawn: {e:#}."));
                None
            }
        }
    } else {
        None
    };

    // 5. The database ceilings.
    let ceilings = if args.no_ceiling {
        notes.push("The database ceilings were skipped (--no-ceiling).".to_owned());
        None
    } else {
        match ceiling::measure(&setup, &tag, plan.ceiling, &out.join("pgbench")).await {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("compare  the database ceilings could not be measured: {e:#}");
                notes.push(format!("The database ceilings could not be measured: {e:#}."));
                None
            }
        }
    };
    if given.is_some() {
        notes.push(
            "The builds were given as URLs: they were not restarted between runs (databases not fresh), and \
             processes were found by name where exactly one had it."
                .to_owned(),
        );
    }
    let mut report =
        CompareReport::new(plan, command_line(), peak, runs, ceilings, hops, notes, started.elapsed().as_secs_f64());
    report.trace_map = trace_map;
    finish(&out, report)
}

/// Writes the reports and prints the headline.
fn finish(out: &Path, report: CompareReport) -> Result<std::process::ExitCode> {
    let files = render::write(out, &report)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", report.headline_text())?;
    writeln!(stdout, "reports: {}, {}, {}", files.json.display(), files.markdown.display(), files.html.display())?;
    Ok(if report.all_correct() { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) })
}

/// The workspace root: the nearest ancestor of the current directory with
/// the edge's template and the development keys.
fn find_root() -> Result<PathBuf> {
    let here = std::env::current_dir()?;
    here.ancestors()
        .find(|d| d.join("deploy/edge/twinshop.conf.template").is_file() && d.join("dev/keys").is_dir())
        .map(Path::to_path_buf)
        .context(
            "deploy/edge and dev/keys not found above the current directory: run from the workspace or pass --root",
        )
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().collect();
    args.join(" ")
}

/// A running build, or one given by URL, and the processes to watch.
struct Deployed {
    base_url: String,
    running: Option<Running>,
    watch: Watch,
}

/// The processes of `build` to account for: for a run the launcher
/// started, by the pids it reports.
fn watch_for(build: Build, running: Option<&Running>, base_url: &str) -> Watch {
    let procs = procs::all_processes();
    let mut w = Watch::default();
    match running {
        Some(r) => {
            for &service in build.launcher().services() {
                w.add_scoped(service.binary(), r.pid(service), true, procs::Scope::Own);
            }
            w.add("edge (nginx)", r.edge_pid(), true);
        }
        None => {
            for comm in build.processes() {
                w.add(comm, procs::find_unique(&procs, comm), true);
            }
            let port = base_url.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse::<u16>().ok());
            let edge = port.and_then(procs::listener_pid).filter(|p| procs.get(p).is_some_and(|s| s.comm == "nginx"));
            w.add("edge (nginx)", edge, true);
        }
    }
    w.add("postgres", procs::listener_pid(POSTGRES_PORT), false);
    w.add("redis", procs::listener_pid(REDIS_PORT), false);
    if build == Build::Microservices {
        w.add("rabbitmq", procs::listener_pid(RABBITMQ_PORT), false);
    }
    w.add_scoped(GENERATOR, Some(std::process::id()), true, procs::Scope::Own);
    w
}

async fn start(setup: &Setup, build: Build, label: &str, url: Option<String>) -> Result<Deployed> {
    match url {
        Some(base_url) => {
            let watch = watch_for(build, None, &base_url);
            Ok(Deployed { base_url, running: None, watch })
        }
        None => {
            let running = setup.start(build, label).await?;
            eprintln!(
                "compare  {} up in {:.1} s at {}",
                build.name(),
                running.started_in.as_secs_f64(),
                running.base_url
            );
            let watch = watch_for(build, Some(&running), &running.base_url);
            Ok(Deployed { base_url: running.base_url.clone(), running: Some(running), watch })
        }
    }
}

/// A step config of this plan.
fn step_config(
    plan: &Plan,
    base_url: &str,
    build: Build,
    label: String,
    model: Model,
    mix: Mix,
    secs: f64,
) -> StepConfig {
    let mut c = StepConfig::new(base_url, model);
    c.label = label;
    c.group = build.name().to_owned();
    c.duration = Duration::from_secs_f64(secs);
    c.warmup = Duration::from_secs_f64(plan.warmup_s);
    c.mix = mix;
    c.seed = 0x7717_5409 ^ (secs as u64);
    c
}

/// Runs one step, sampling CPU right at the window's edges, and records
/// the CPU per process (ms, µs per request, µs per placed order) in `extra`.
async fn measured_step(
    target: &Client,
    pool: &Arc<UserPool>,
    catalog: &Arc<Vec<Product>>,
    config: &StepConfig,
    watch: &Watch,
    kind: &str,
) -> Result<StepResult> {
    let (mut before, mut after) = (None, None);
    let mut step = run_step_observed(target, pool.clone(), catalog.clone(), config, |edge| match edge {
        WindowEdge::Start => before = Some(watch.sample()),
        WindowEdge::End => after = Some(watch.sample()),
    })
    .await?;
    let cpu = match (before, after) {
        (Some(b), Some(a)) => cpu_delta_ms(&b, &a),
        _ => BTreeMap::new(),
    };
    let placed = step.orders.confirmed + step.orders.rejected + step.orders.pending;
    step.extra.insert("kind".to_owned(), json!(kind));
    step.extra.insert("placed_orders".to_owned(), json!(placed));
    step.extra.insert("cpu_us_per_request".to_owned(), json!(math::per_unit(&cpu, step.summary.overall.count)));
    step.extra.insert("cpu_us_per_order".to_owned(), json!(math::per_unit(&cpu, placed)));
    step.extra.insert("cpu_ms".to_owned(), json!(cpu));
    Ok(step)
}

/// A pool funded for `orders` placements in all.
async fn setup_pool(target: &Client, plan: &Plan, orders: f64) -> Result<(Arc<UserPool>, Arc<Vec<Product>>)> {
    let catalog = fetch_catalog(target).await?;
    let users = plan.setup_users;
    let setup = SetupConfig { users, wallet_cents: wallet_budget(&catalog, orders / users as f64), concurrency: 4 };
    let pool = UserPool::setup(target, setup).await?;
    eprintln!("setup    {users} users in {:.1} s", pool.setup_time.as_secs_f64());
    Ok((Arc::new(pool), Arc::new(catalog)))
}

/// Closed-model steps on a fresh monolith: its peak.
async fn find_peak(setup: &Setup, plan: &Plan, given: Option<&(String, String)>) -> Result<Peak> {
    let url = given.map(|(m, _)| m.clone());
    let t = start(setup, Build::Monolith, "peak-monolith", url).await?;
    let result = async {
        let target = Client::builder().timeout(Duration::from_secs(10)).build(&t.base_url)?;
        // Closed steps run as fast as the server answers: fund for 3000 rps.
        let orders = 3000.0 * (plan.warmup_s + plan.peak_duration_s) * plan.peak_users.len() as f64 * 0.4;
        let (pool, catalog) = setup_pool(&target, plan, orders).await?;
        let mut steps = Vec::new();
        for users in &plan.peak_users {
            let model = Model::Closed { users: *users };
            let label = format!("monolith peak, closed {users} users");
            let config =
                step_config(plan, &t.base_url, Build::Monolith, label, model, Mix::default(), plan.peak_duration_s);
            steps.push(measured_step(&target, &pool, &catalog, &config, &t.watch, "peak").await?);
        }
        let rps = steps.iter().filter(|s| s.correct()).map(StepResult::achieved_rps).fold(0.0, f64::max);
        Ok::<_, anyhow::Error>(Peak { rps, steps })
    }
    .await;
    if let Some(r) = t.running {
        r.stop().await;
    }
    result
}

/// The hop probes, ours interleaved with the floor's (started here, as a
/// process of its own, and stopped after); without the floor binary, ours
/// alone, and the report says so.
async fn hop_probes(
    setup: &Setup,
    plan: &Plan,
    user: &str,
    payment: &str,
    pool: &UserPool,
    watch: &Watch,
) -> Result<hops::Hops> {
    let ids = pool.users.iter().take(50).map(|u| u.id).collect();
    let d = Duration::from_secs_f64(plan.hop_duration_s);
    // The floor's runtime as the callee's: the user service's worker threads.
    let workers = watch
        .roots
        .iter()
        .find(|(name, _, _)| name == Service::User.binary())
        .and_then(|(_, pid, _)| crate::floor::worker_threads_of(*pid));
    let floor = match crate::floor::FloorProcess::start(&setup.backing.redis, workers.as_deref()).await {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("hops     no floor to compare with: {e:#}");
            None
        }
    };
    let addrs = floor.as_ref().map(|f| (f.addrs, f.pid()));
    let probed = hops::probe(user, payment, addrs, ids, watch, plan.hop_rate, d, plan.hop_rounds).await;
    if let Some(f) = floor {
        f.stop().await;
    }
    probed
}

/// One run of one build: start, pool, steps, probes (maybe), memory, stop.
#[allow(clippy::too_many_arguments)]
async fn one_run(
    setup: &Setup,
    plan: &Plan,
    build: Build,
    round: usize,
    label: &str,
    url: Option<String>,
    peak: f64,
    probe_hops: bool,
) -> Result<(RunRecord, Option<hops::Hops>)> {
    let t = start(setup, build, label, url).await?;
    let started_in = t.running.as_ref().map(|r| r.started_in.as_secs_f64());
    let result = run_steps(setup, plan, build, round, &t, peak, probe_hops).await;
    if let Some(r) = t.running {
        r.stop().await;
    }
    let (mut record, hops) = result?;
    record.started_in_s = started_in;
    Ok((record, hops))
}

async fn run_steps(
    setup: &Setup,
    plan: &Plan,
    build: Build,
    round: usize,
    t: &Deployed,
    peak: f64,
    probe_hops: bool,
) -> Result<(RunRecord, Option<hops::Hops>)> {
    let target = Client::builder().timeout(Duration::from_secs(10)).build(&t.base_url)?;
    let mix = Mix::default();
    let per_step = plan.warmup_s + plan.duration_s;
    let open_orders: f64 = plan.levels.iter().map(|l| peak * l * per_step * mix.place_share()).sum::<f64>()
        + peak * per_step * mix.place_share()
        + peak * plan.place_level * (plan.warmup_s + plan.place_duration_s)
        + 2.0 * peak * (plan.warmup_s + plan.place_peak_duration_s);
    let open_orders = open_orders + overload::orders(plan, peak, mix.place_share());
    let (pool, catalog) = setup_pool(&target, plan, open_orders).await?;
    let name = build.name();
    let mut steps: Vec<StepResult> = Vec::new();
    for level in &plan.levels {
        let rate = math::level_rate(peak, *level);
        let label = format!("{name} #{} {:.0} % ({rate:.0} rps)", round + 1, level * 100.0);
        let config = step_config(plan, &t.base_url, build, label, Model::Open { rate }, mix, plan.duration_s);
        let mut step = measured_step(&target, &pool, &catalog, &config, &t.watch, "level").await?;
        step.extra.insert("level".to_owned(), json!(level));
        steps.push(step);
    }
    if plan.refine {
        let refs: Vec<&StepResult> = steps.iter().collect();
        if let Some(rate) = math::refinement(&refs, math::SLO_P99_US, 0.04) {
            let label = format!("{name} #{} refine ({rate:.0} rps)", round + 1);
            let config = step_config(plan, &t.base_url, build, label, Model::Open { rate }, mix, plan.duration_s);
            steps.push(measured_step(&target, &pool, &catalog, &config, &t.watch, "refine").await?);
        }
    }
    let place_only: Mix = "place=1".parse()?;
    let rate = math::level_rate(peak, plan.place_level);
    let label = format!("{name} #{} place-only ({rate:.0} orders/s)", round + 1);
    let config = step_config(plan, &t.base_url, build, label, Model::Open { rate }, place_only, plan.place_duration_s);
    steps.push(measured_step(&target, &pool, &catalog, &config, &t.watch, "place_cpu").await?);
    let users = plan.place_peak_users;
    let label = format!("{name} #{} place-only peak (closed {users} users)", round + 1);
    let model = Model::Closed { users };
    let config = step_config(plan, &t.base_url, build, label, model, place_only, plan.place_peak_duration_s);
    steps.push(measured_step(&target, &pool, &catalog, &config, &t.watch, "place_peak").await?);

    // Past the peak: shedding, recovery and the login throttle (overload.md).
    let sustained = math::slo_throughput(&report::slo_steps(&steps), math::SLO_P99_US);
    let rates = overload::Rates { peak, sustained };
    let overloaded = overload::run(&target, &pool, &catalog, &t.watch, plan, build, rates).await?;
    let out = setup.log_dir.parent().unwrap_or(&setup.log_dir);
    overload::write(out, &format!("run{}-{name}", round + 1), build, &overloaded)?;

    let hops = match (&t.running, probe_hops) {
        (Some(r), true) => match (r.internal_url(Service::User), r.internal_url(Service::Payment)) {
            (Some(user), Some(payment)) => Some(hop_probes(setup, plan, &user, &payment, &pool, &t.watch).await?),
            _ => None,
        },
        _ => None,
    };
    // The run's verdict: the whole pool once more, waiting longer for
    // effects still on their way (each check waits up to 10 s).
    eprintln!("check    final check of the run's pool");
    let final_check = crate::check::check_pool_settled(&target, &pool).await;
    let memory = t.watch.memory();
    Ok((RunRecord::new(build, round, steps, memory, Some(final_check)), hops))
}
