//! `lab run scaling`: scaling up and scaling out, measured (seed 4.2, and
//! factor 8 of seed 2.2, concurrency: scale out via the process model).
//!
//! Two cores cannot show scaling if every process may use both, so the
//! scaled process gets a CPU quota through the launcher's cgroups (a
//! quarter of a core by default) and becomes the bottleneck. For each build
//! the lab scales one thing, on the same workload (the loadtest's default
//! mix, open model) and with the same figure (the throughput at the SLO,
//! found by the loadtest's own search, [`point`]):
//!
//! - **microservices**: the order service (user and payment uncapped, one
//!   each): 1, 2, 3 replicas of [`SHARE`] core behind the edge (scale out),
//!   and one replica given [`VERTICAL`] cores (scale up);
//! - **monolith**: the same, with the whole monolith as the unit.
//!
//! One system per build is started with [`MAX_REPLICAS`] replicas of the
//! scaled service, each in its own cgroup; a point is then set up as
//! Kubernetes would: scaling out starts a new replica and adds it to the
//! edge once ready (`kubectl scale`, the endpoints controller), scaling in
//! takes it out of the edge and stops it, and scaling up changes the
//! running process's quota in place (`InPlacePodVerticalScaling`). What
//! each point measures: throughput at the SLO and its p99, CPU per order
//! (of the scaled processes and of the whole build), and the resident
//! memory of the scaled processes per unit of throughput. The pool's
//! correctness check runs after the last point: no state lived in a
//! replica that was stopped.
//!
//! On a machine shared with other work the lab claims CPU priority for its
//! processes ([`priority`]), so that the quota stays the only limit.

pub mod point;
pub mod priority;
pub mod report;
pub mod rounds;
pub mod speed;

use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::Serialize;
use twinshop_client::Client;
use twinshop_launcher::{Build, Limits, LogTarget, Plan, ProcessId, Service, System};
use twinshop_loadtest::{
    CheckReport, Mix, UserPool, check_pool_settled, fetch_catalog,
    setup::{SetupConfig, wallet_budget},
};

use crate::common::{LabArgs, LabOutcome, say};

/// The CPU quota of one replica on the scale-out axis, in cores.
pub const SHARE: f64 = 0.25;

/// The quotas of one instance on the scale-up axis, in cores.
pub const VERTICAL: [f64; 3] = [SHARE, 0.5, 1.0];

/// The replica counts on the scale-out axis.
pub const MAX_REPLICAS: u16 = 3;

/// The SLO a step must meet: p99 of all requests at most this, no errors.
/// Wider than `loadtest compare`'s 25 ms on purpose: a process under a CFS
/// quota that spends its share early in a 100 ms period waits up to 75 ms
/// for the next one (at a quarter core), so a tighter p99 would measure
/// throttling, not capacity; a quarter of a second still marks the knee,
/// where queues start to grow.
pub const SLO_P99_US: u64 = 250_000;

/// One configuration of the scaled service: how many replicas, each with
/// how many cores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Shape {
    pub replicas: u16,
    pub cores_each: f64,
}

impl Shape {
    /// The cores all replicas may use together.
    pub fn total_cores(&self) -> f64 {
        f64::from(self.replicas) * self.cores_each
    }

    /// `2 × 0.25 core`.
    pub fn describe(&self) -> String {
        format!("{} × {} core", self.replicas, self.cores_each)
    }

    /// On the scale-out axis (the base point is on both).
    pub fn is_horizontal(&self) -> bool {
        self.cores_each == SHARE
    }

    /// On the scale-up axis.
    pub fn is_vertical(&self) -> bool {
        self.replicas == 1
    }
}

/// The points of a run, in the order they are measured: out first (so the
/// first replica's memory is not yet that of a bigger instance), then up.
///
/// The quick variant measures one and two replicas twice each, in the
/// order A B B A, and its figures are the means of the two: whatever
/// drifts over a run, in either direction (measured: a quarter-core
/// monolith read 98 then 79 rps in one run, 75 then 96 in another), weighs
/// on both shapes alike and cancels out of their ratio, and each figure
/// averages two short searches. That is one round; [`rounds`] decides
/// whether the run needs another.
pub fn shapes(quick: bool) -> Vec<Shape> {
    if quick {
        let (one, two) = (Shape { replicas: 1, cores_each: SHARE }, Shape { replicas: 2, cores_each: SHARE });
        return vec![one, two, two, one];
    }
    let out = (1..=MAX_REPLICAS).map(|replicas| Shape { replicas, cores_each: SHARE });
    let up = VERTICAL.iter().skip(1).map(|&cores_each| Shape { replicas: 1, cores_each });
    out.chain(up).collect()
}

/// How long each part of a point takes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Timing {
    /// The closed-model step that estimates the capacity.
    pub peak_s: f64,
    /// Its concurrent users per quarter core of the scaled service: enough
    /// to keep it busy, not so many that requests queue for a database
    /// connection until they time out.
    pub peak_users_per_quarter: usize,
    /// Each open-model step's window, and its warm-up.
    pub step_s: f64,
    pub warmup_s: f64,
    /// The open-model ladder, as fractions of the closed-model peak. Low
    /// rungs: under a CFS quota the p99 reaches the SLO well below the
    /// closed-model peak (at about 60 % of it for the microservices, whose
    /// requests cross the capped replica and two more processes).
    pub levels: &'static [f64],
    /// Refinement steps after the ladder (the loadtest's bisection).
    pub refines: usize,
    /// Users in the pool.
    pub users: usize,
    /// A rate no point will reach, to fund the pool's wallets.
    pub rps_bound: f64,
}

impl Timing {
    /// The orders one pool user may place over the whole run, at most.
    pub fn orders_per_user(&self, points: usize) -> f64 {
        let steps = self.levels.len() + self.refines;
        let seconds = points as f64 * (self.peak_s + steps as f64 * (self.warmup_s + self.step_s));
        self.rps_bound * seconds * mix().place_share() / self.users.max(1) as f64
    }

    pub fn new(quick: bool) -> Self {
        if quick {
            Self {
                peak_s: 4.0,
                peak_users_per_quarter: 6,
                step_s: 5.0,
                warmup_s: 1.0,
                // Up to the peak itself: a ladder that stops below the knee
                // caps the figure there, for one shape and not the other.
                levels: &[0.45, 0.65, 0.85, 1.0],
                refines: 2,
                // At the quick points' 40 to 80 orders/s, a user places one
                // every 1.5 to 3 s, not one or two a second (30 users did),
                // so fewer requests wait on the same wallet row: closer to
                // the full run's pool, and cheap to set up (about 2.5 s).
                users: 120,
                rps_bound: 400.0,
            }
        } else {
            Self {
                peak_s: 8.0,
                peak_users_per_quarter: 6,
                step_s: 12.0,
                warmup_s: 3.0,
                levels: &[0.35, 0.5, 0.65, 0.8, 0.95],
                refines: 2,
                users: 200,
                rps_bound: 2000.0,
            }
        }
    }
}

/// One build's run.
#[derive(Debug, Clone, Serialize)]
pub struct BuildRun {
    pub build: String,
    /// The scaled binary: `order-service` or `monolith`.
    pub scaled: String,
    pub points: Vec<point::Point>,
    /// The pool's correctness check after the last point.
    pub check: Option<CheckReport>,
    /// Whether the lab's processes ran with raised CPU priority throughout.
    pub priority: bool,
    /// The quick variant: what each round left known (empty for a full run).
    pub rounds: Vec<rounds::Round>,
}

/// Everything the lab measured.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub slo_p99_ms: f64,
    pub share: f64,
    pub timing: Timing,
    pub runs: Vec<BuildRun>,
    /// `uptime`'s load averages when the lab started (the machine is shared).
    pub load_before: String,
}

impl Results {
    /// The run of `build`, if it ran.
    pub fn run(&self, build: &str) -> Option<&BuildRun> {
        self.runs.iter().find(|r| r.build == build)
    }
}

/// The service each build scales.
pub fn scaled(build: Build) -> Service {
    match build {
        Build::Microservices => Service::Order,
        Build::Monolith => Service::Monolith,
    }
}

fn plan(build: Build, args: &LabArgs) -> Plan {
    let logs = args.out.join("logs").join(build.name());
    let _ = std::fs::remove_dir_all(&logs);
    Plan::new(build)
        .bin_dir(&args.bin_dir)
        .logs(LogTarget::Dir(logs))
        .replicas(scaled(build), MAX_REPLICAS)
        .limits(scaled(build), Limits::cpu(SHARE))
}

/// Every replica of the scaled service.
pub(crate) fn replicas(service: Service) -> Vec<ProcessId> {
    (1..=MAX_REPLICAS).map(|r| ProcessId::new(service, r)).collect()
}

/// Puts exactly `shape` into service: replicas started and in the edge,
/// the others out and stopped; every running replica's quota set. Returns
/// whether the lab's CPU priority holds for what now runs.
async fn reshape(system: &System, service: Service, shape: Shape) -> Result<bool> {
    for r in 1..=MAX_REPLICAS {
        let id = ProcessId::new(service, r);
        let running = system.process(id)?.pid.is_some();
        if r <= shape.replicas {
            system.set_cpu(id, shape.cores_each)?;
            if !running {
                system.start_process(id).await.with_context(|| format!("starting {id}"))?;
                system.put_back(id).await?;
            }
        } else if running {
            system.take_out(id).await?;
            system.stop_process(id).await.with_context(|| format!("stopping {id}"))?;
        }
    }
    Ok(priority::claim(system, &replicas(service)).await)
}

async fn run_build(build: Build, args: &LabArgs, timing: &Timing, probe: Option<&speed::Probe>) -> Result<BuildRun> {
    let service = scaled(build);
    let system = System::start(plan(build, args)).await.context("starting the build")?;
    let mut prioritised = priority::claim(&system, &replicas(service)).await;
    let result = async {
        let target = Client::builder().timeout(Duration::from_secs(5)).build(&system.url().context("no edge")?)?;
        // The pool is set up with every replica at a full core: it is not measured.
        for r in 1..=MAX_REPLICAS {
            system.set_cpu(ProcessId::new(service, r), 1.0)?;
        }
        let catalog = fetch_catalog(&target).await?;
        let most_points = shapes(args.quick).len() * if args.quick { rounds::MAX_ROUNDS } else { 1 };
        let wallet_cents = wallet_budget(&catalog, timing.orders_per_user(most_points));
        let setup = SetupConfig { users: timing.users, wallet_cents, concurrency: 4 };
        let pool = std::sync::Arc::new(UserPool::setup(&target, setup).await.context("setting up the pool")?);
        let catalog = std::sync::Arc::new(catalog);
        say(&format!("  pool of {} users ready in {:.1} s", pool.users.len(), pool.setup_time.as_secs_f64()));
        // The setup's own events (registrations, top-ups) are still being
        // relayed and consumed: let them drain at a full core, or the first
        // point pays for them inside its quota.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let load = point::Load { target: &target, pool: &pool, catalog: &catalog };
        let mut points = Vec::new();
        let mut judged = Vec::new();
        loop {
            if args.quick {
                say(&format!("  round {}", judged.len() + 1));
            }
            for shape in shapes(args.quick) {
                prioritised &= reshape(&system, service, shape).await?;
                say(&format!("  {} {}", service.binary(), shape.describe()));
                let p = point::measure(&system, load, shape, timing, args.seed, probe).await?;
                say(&format!(
                    "    throughput at the SLO {:.0} rps (closed-model peak {:.0}), p99 {}, {:.0} MiB resident",
                    p.slo_rps,
                    p.peak_rps,
                    p.slo_p99_ms.map_or("-".into(), |v| format!("{v:.0} ms")),
                    p.scaled_rss_mib()
                ));
                prioritised &= p.prioritised;
                points.push(p);
            }
            if !args.quick {
                break;
            }
            let round = rounds::judge_points(judged.len() + 1, &points, report::OUT_1_TO_2);
            say(&format!("    {}", report::describe_round(&round)));
            judged.push(round);
            if !rounds::another(&judged) {
                break;
            }
        }
        // The check reads every user through the edge: not a measurement,
        // so the replicas get a full core for it (and the queues of the
        // last overloaded step time to drain).
        for r in 1..=MAX_REPLICAS {
            let id = ProcessId::new(service, r);
            if system.process(id)?.pid.is_some() {
                system.set_cpu(id, 1.0)?;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        say("  checking the pool (every wallet, every order)");
        let check = check_pool_settled(&target, &pool).await;
        Ok::<_, anyhow::Error>(BuildRun {
            build: build.name().to_owned(),
            scaled: service.binary().to_owned(),
            points,
            check: Some(check),
            priority: prioritised,
            rounds: judged,
        })
    }
    .await;
    system.stop().await.context("stopping")?;
    result
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Runs the lab (or, with `--self-test`, its checks on made-up results).
pub async fn run(args: &LabArgs) -> Result<LabOutcome> {
    if args.self_test {
        return report::self_test(args);
    }
    let started_at = crate::common::now_rfc3339();
    let started = tokio::time::Instant::now();
    let timing = Timing::new(args.quick);
    let load_before = load_average();
    say(&format!("scaling: load average {load_before} at the start (the machine is shared)"));
    let probe = speed::Probe::start();
    let mut runs = Vec::new();
    for build in args.builds.list() {
        say(&format!("== scaling lab, {}", build.name()));
        runs.push(
            run_build(build, args, &timing, probe.as_ref())
                .await
                .with_context(|| format!("the {} run", build.name()))?,
        );
    }
    let results = Results { slo_p99_ms: SLO_P99_US as f64 / 1e3, share: SHARE, timing, runs, load_before };
    let checks = report::checks(&results);
    checks.print("scaling:");
    let doc = report::document(&results, &checks, args, &started_at, started.elapsed().as_secs_f64());
    let files = crate::common::write_report(&args.out, &results, &doc)?;
    Ok(LabOutcome { passed: checks.all_passed(), files: Some(files) })
}

/// The mix every step offers (the loadtest's default).
pub fn mix() -> Mix {
    Mix::default()
}
