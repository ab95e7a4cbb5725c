//! One point of the scaling lab: the throughput at the SLO of the system
//! as it is shaped now, with what it cost in CPU and memory.
//!
//! The search is the loadtest's, as `loadtest compare` runs it: a
//! closed-model step estimates the capacity, open-model steps climb a
//! ladder of fractions of it (stopping at the first that misses the SLO),
//! then [`math::refinement`] bisects between the highest passing and the
//! lowest failing rate; [`math::slo_throughput`] is the figure. CPU is
//! sampled at the edges of each measured window ([`Watch`], per process
//! name), resident memory of the scaled replicas at the end of the point.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use serde::Serialize;
use sqlx::Connection as _;
use twinshop_client::Client;
use twinshop_launcher::{
    ProcessId, Service, System,
    processes::{Resident, resident},
};
use twinshop_loadtest::{
    Model, StepConfig, StepResult, UserPool, WindowEdge,
    compare::{
        GENERATOR,
        math::{level_rate, per_unit, refinement, slo_throughput},
        procs::{self, Scope, Watch, cpu_delta_ms},
    },
    run_step_observed,
    setup::Product,
};

use super::{SLO_P99_US, Shape, Timing, mix, priority, replicas, scaled, speed::Probe};

/// One measured step, as the report needs it.
#[derive(Debug, Clone, Serialize)]
pub struct StepLine {
    /// `closed 32 users` or `open 120 rps`.
    pub model: String,
    pub offered_rps: Option<f64>,
    pub achieved_rps: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub meets_slo: bool,
    /// Orders placed (confirmed, rejected or pending) in the window.
    pub placed: u64,
    pub window_s: f64,
    /// CPU per process name in the window, ms.
    pub cpu_ms: BTreeMap<String, f64>,
    /// The CPU µs a fixed unit of work took in the window (the mean of
    /// [`speed`](super::speed)'s runs): the machine's speed while it was
    /// measured.
    pub unit_us: Option<f64>,
}

impl StepLine {
    fn of(step: &StepResult, Window { cpu_ms, unit_us }: Window) -> Self {
        Self {
            model: step.model.describe(),
            offered_rps: step.offered_rps,
            achieved_rps: step.achieved_rps(),
            p99_ms: step.latency().p99_us as f64 / 1e3,
            errors: step.summary.overall.errors,
            meets_slo: step.meets_slo(SLO_P99_US),
            placed: step.orders.confirmed + step.orders.rejected + step.orders.pending,
            window_s: step.window_s,
            cpu_ms,
            unit_us,
        }
    }

    /// Cores the processes named `name` used on average in the window.
    pub fn cores(&self, name: &str) -> f64 {
        self.cpu_ms.get(name).copied().unwrap_or(0.0) / 1e3 / self.window_s.max(1e-3)
    }
}

/// One shape of the scaled service, measured.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub shape: Shape,
    /// The quota of each replica in service, read back from the kernel.
    pub quota_in_force: Vec<f64>,
    /// The closed-model step's served rate (answers below 400 per second).
    pub peak_rps: f64,
    /// The highest offered rate that met the SLO (0: none did).
    pub slo_rps: f64,
    /// The p99 of that step.
    pub slo_p99_ms: Option<f64>,
    /// CPU µs per placed order at that step, per process name.
    pub cpu_us_per_order: BTreeMap<String, f64>,
    /// Resident memory of each scaled replica at the end of the point, MiB.
    pub rss_mib: Vec<f64>,
    /// The part of it that is the replica's own (heap, stacks, buffers:
    /// `RssAnon`), MiB; the rest is mapped code, shared by replicas of one
    /// binary on one machine.
    pub anon_mib: Vec<f64>,
    /// What the scaled replicas hold in PostgreSQL at the end of the point.
    pub db: Option<DbFootprint>,
    /// Resident memory of every service process of the build, MiB.
    pub build_rss_mib: f64,
    /// The names of the build's service processes (for CPU per order).
    pub services: Vec<String>,
    /// The scaled process's name.
    pub scaled: String,
    pub steps: Vec<StepLine>,
    /// Whether the lab's priority held for the open-model steps ([`priority`]).
    pub prioritised: bool,
}

impl Point {
    /// The step the figure comes from.
    pub fn slo_step(&self) -> Option<&StepLine> {
        self.steps
            .iter()
            .filter(|s| s.meets_slo)
            .max_by(|a, b| a.offered_rps.unwrap_or(0.0).total_cmp(&b.offered_rps.unwrap_or(0.0)))
    }

    /// The closed-model step (the scaled processes at full load).
    pub fn peak_step(&self) -> Option<&StepLine> {
        self.steps.iter().find(|s| s.offered_rps.is_none())
    }

    /// Resident memory of the scaled replicas together.
    pub fn scaled_rss_mib(&self) -> f64 {
        self.rss_mib.iter().sum()
    }

    /// MiB of the scaled replicas per 100 requests/s at the SLO.
    pub fn mib_per_100_rps(&self) -> Option<f64> {
        (self.slo_rps > 0.0).then(|| self.scaled_rss_mib() / self.slo_rps * 100.0)
    }

    /// What one replica holds on its own, on average: its private pages
    /// and the private pages of the database server processes behind its
    /// connections, MiB.
    pub fn footprint_per_replica_mib(&self) -> Option<f64> {
        let db = self.db?;
        let own: f64 = self.anon_mib.iter().sum();
        (self.shape.replicas > 0).then(|| (own + db.backend_anon_mib) / f64::from(self.shape.replicas))
    }

    /// The replicas' own pages and their connections' server processes
    /// together, per 100 requests/s at the SLO.
    pub fn footprint_per_100_rps(&self) -> Option<f64> {
        let held = self.anon_mib.iter().sum::<f64>() + self.db?.backend_anon_mib;
        (self.slo_rps > 0.0).then(|| held / self.slo_rps * 100.0)
    }

    /// MiB of every service process per 100 requests/s at the SLO.
    pub fn build_mib_per_100_rps(&self) -> Option<f64> {
        (self.slo_rps > 0.0).then(|| self.build_rss_mib / self.slo_rps * 100.0)
    }

    /// CPU µs per order of the scaled processes, and of all service processes.
    pub fn cpu_per_order(&self) -> (Option<f64>, Option<f64>) {
        if self.cpu_us_per_order.is_empty() {
            return (None, None);
        }
        let scaled = self.cpu_us_per_order.get(&self.scaled).copied();
        let all = self.services.iter().filter_map(|s| self.cpu_us_per_order.get(s)).sum::<f64>();
        (scaled, Some(all))
    }

    /// Share of their quota the scaled processes used at full load.
    pub fn peak_saturation(&self) -> Option<f64> {
        let step = self.peak_step()?;
        Some(step.cores(&self.scaled) / self.shape.total_cores())
    }
}

/// What to watch: the scaled replicas in service (one name), the build's
/// other services, the edge, the backing services and the generator.
fn watch(system: &System, shape: Shape) -> Result<(Watch, Vec<String>)> {
    let service = scaled(system.build());
    let mut w = Watch::default();
    let mut services = Vec::new();
    for p in system.processes() {
        let in_service = p.id.service != service || p.id.replica <= shape.replicas;
        if in_service && let Some(pid) = p.pid {
            w.add_scoped(p.id.service.binary(), Some(pid), true, Scope::Own);
            if !services.contains(&p.id.service.binary().to_owned()) {
                services.push(p.id.service.binary().to_owned());
            }
        }
    }
    w.add("edge (nginx)", system.edge().and_then(|e| e.supervisor().pid()), true);
    for (name, port) in [("postgres", 5432), ("redis", 6379), ("rabbitmq", 5672)] {
        w.add(name, procs::listener_pid(port), false);
    }
    w.add_scoped(GENERATOR, Some(std::process::id()), true, Scope::Own);
    Ok((w, services))
}

/// What was watched in a step's window besides the load's own figures.
#[derive(Debug, Default)]
struct Window {
    /// CPU per process name, ms.
    cpu_ms: BTreeMap<String, f64>,
    /// The speed probe's mean CPU µs per unit of work.
    unit_us: Option<f64>,
}

/// One step, with CPU per process sampled at the edges of its window, and
/// the machine's speed inside it.
async fn step(
    load: Load<'_>,
    config: &StepConfig,
    watch: &Watch,
    probe: Option<&Probe>,
) -> Result<(StepResult, Window)> {
    let (mut before, mut after) = (None, None);
    let result = run_step_observed(load.target, load.pool.clone(), load.catalog.clone(), config, |edge| match edge {
        WindowEdge::Start => before = Some((watch.sample(), Instant::now())),
        WindowEdge::End => after = Some((watch.sample(), Instant::now())),
    })
    .await?;
    let Some(((b, from), (a, to))) = before.zip(after) else { return Ok((result, Window::default())) };
    Ok((result, Window { cpu_ms: cpu_delta_ms(&b, &a), unit_us: probe.and_then(|p| p.mean_us(from, to)) }))
}

/// Where the steps go and whom they act as: the edge, the pool's users
/// and the catalog they order from.
#[derive(Debug, Clone, Copy)]
pub struct Load<'a> {
    pub target: &'a Client,
    pub pool: &'a Arc<UserPool>,
    pub catalog: &'a Arc<Vec<Product>>,
}

/// Measures the system as it is shaped now.
pub async fn measure(
    system: &System,
    load: Load<'_>,
    shape: Shape,
    timing: &Timing,
    seed: u64,
    probe: Option<&Probe>,
) -> Result<Point> {
    let target = load.target;
    let service = scaled(system.build());
    let (watch, services) = watch(system, shape)?;
    let config = |model: Model, secs: f64| {
        let mut c = StepConfig::new(target.base_url(), model);
        c.label = format!("{} {}", shape.describe(), model.describe());
        c.group = shape.describe();
        c.duration = Duration::from_secs_f64(secs);
        c.warmup = Duration::from_secs_f64(timing.warmup_s);
        c.mix = mix();
        c.seed = seed;
        c.request_timeout = Duration::from_secs(5);
        c.progress = false;
        c.check = false;
        c
    };
    let mut results: Vec<StepResult> = Vec::new();
    let mut lines = Vec::new();
    let users = (timing.peak_users_per_quarter as f64 * shape.total_cores() / 0.25).round().max(1.0) as usize;
    let (peak, cpu) = step(load, &config(Model::Closed { users }, timing.peak_s), &watch, probe).await?;
    // What was served, not what was answered: past the process's in-flight
    // bound a step is answered fast with `503 overloaded`, which is no
    // capacity (a replica resized in place keeps the bound it started with).
    let overall = &peak.summary.overall;
    let peak_rps = overall.throughput_rps * overall.ok as f64 / overall.count.max(1) as f64;
    lines.push(StepLine::of(&peak, cpu));
    // Full load grew the pools: their new database backends get the lab's priority too.
    let prioritised = priority::claim(system, &replicas(service)).await;
    for level in timing.levels {
        let rate = level_rate(peak_rps, *level);
        let (r, cpu) = step(load, &config(Model::Open { rate }, timing.step_s), &watch, probe).await?;
        let missed = !r.meets_slo(SLO_P99_US);
        lines.push(StepLine::of(&r, cpu));
        results.push(r);
        // Higher rates would miss it too, and only pile up queues.
        if missed {
            break;
        }
    }
    for _ in 0..timing.refines {
        let refs: Vec<&StepResult> = results.iter().collect();
        let Some(rate) = refinement(&refs, SLO_P99_US, 0.04) else { break };
        // Let the queues the failing step left behind drain.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (r, cpu) = step(load, &config(Model::Open { rate }, timing.step_s), &watch, probe).await?;
        lines.push(StepLine::of(&r, cpu));
        results.push(r);
    }
    let refs: Vec<&StepResult> = results.iter().collect();
    let slo_rps = slo_throughput(&refs, SLO_P99_US);
    let best = lines.iter().rfind(|l| l.meets_slo && l.offered_rps == Some(slo_rps));
    let cpu_us_per_order = best.map(|l| per_unit(&l.cpu_ms, l.placed)).unwrap_or_default();
    let slo_p99_ms = best.map(|l| l.p99_ms);
    let mut quota_in_force = Vec::new();
    let (mut rss_mib, mut anon_mib) = (Vec::new(), Vec::new());
    for r in 1..=shape.replicas {
        let id = ProcessId::new(service, r);
        quota_in_force.push(system.cgroup(id).and_then(|g| g.cpu_quota()).unwrap_or(0.0));
        let pid = system.process(id)?.pid.with_context(|| format!("{id} is not running"))?;
        let mem = resident(pid).unwrap_or(Resident { total: 0, anon: 0, file: 0 });
        rss_mib.push(mib(mem.total));
        anon_mib.push(mib(mem.anon));
    }
    let build_rss_mib = mib(system
        .processes()
        .iter()
        .filter(|p| p.id.service != service || p.id.replica <= shape.replicas)
        .filter_map(|p| p.pid.and_then(resident))
        .map(|m| m.total)
        .sum::<u64>());
    let db = match db_footprint(system, service).await {
        Ok(db) => Some(db),
        Err(e) => {
            crate::common::say(&format!("    (could not read the database connections: {e:#})"));
            None
        }
    };
    Ok(Point {
        shape,
        quota_in_force,
        peak_rps,
        slo_rps,
        slo_p99_ms,
        cpu_us_per_order,
        rss_mib,
        anon_mib,
        db,
        build_rss_mib,
        services,
        scaled: service.binary().to_owned(),
        steps: lines,
        prioritised,
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// What a scaled service's replicas hold in PostgreSQL: each connection is
/// a server process of its own, with private memory, counted against the
/// server's `max_connections`. A replica opens its pools' connections
/// whatever it is scaled for: an order-service replica one pool, a
/// monolith replica one per area.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DbFootprint {
    /// Connections open from the scaled replicas together.
    pub connections: u64,
    /// The private memory (`RssAnon`) of the server processes behind them, MiB.
    pub backend_anon_mib: f64,
}

/// The connections of `service`'s replicas to the build's databases, found
/// by the application name each pool sets (`order`; `monolith-<schema>`).
async fn db_footprint(system: &System, service: Service) -> Result<DbFootprint> {
    let (names, mut conn) = priority::build_databases(system).await?;
    let application = service.name();
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = ANY($1) \
         AND (application_name = $2 OR application_name LIKE $2 || '-%')",
    )
    .bind(&names)
    .bind(application)
    .fetch_all(&mut conn)
    .await
    .context("listing the replicas' connections")?;
    let _ = conn.close().await;
    let anon: u64 = pids.iter().filter_map(|p| u32::try_from(*p).ok()).filter_map(resident).map(|m| m.anon).sum();
    Ok(DbFootprint { connections: pids.len() as u64, backend_anon_mib: mib(anon) })
}
