//! The database ceiling: how many orders per second Postgres alone could
//! take on this machine, running exactly the SQL and the transaction
//! boundaries of one placed order in each build (the pgbench scripts in
//! `loadtest/pgbench/`, embedded here).
//!
//! Why it exists: "microservices reach 0.6× the monolith" means little
//! without the bound both live under. Each build's throughput is reported
//! as a fraction of its own ceiling, and the ceilings' ratio is the
//! structural bound on micro/mono (what splitting the database alone
//! costs, before any network hop).
//!
//! Method, per comparison, in throwaway databases (created, migrated with
//! the measured binaries' own `migrate` subcommand as the launcher runs it,
//! seeded, dropped afterwards, with the events namespace that migration
//! declared on RabbitMQ):
//! - **monolith**: one pgbench, one database, the whole order per script
//!   run: its transactions per second are orders per second (the better
//!   of 4 and 8 clients in full mode).
//! - **microservices**: the order's transactions go to three databases, and
//!   one pgbench connects to one database, so three run at once (the order,
//!   payment and user database's share of one order per script run). Run
//!   unthrottled, the fastest would steal CPU from the slowest, so the
//!   slowest's rate is only a lower bound. The ceiling is then searched by
//!   bisection: all three are throttled to the same rate R (`pgbench -R`)
//!   and R holds when each achieves at least 95 % of it; the highest R that
//!   held is the ceiling (with zero bisection steps, `--quick`, it is the
//!   unthrottled lower bound, and the report says so).
//!
//! pgbench runs on the same 2 cores as Postgres, as the services would.

use std::{path::Path, process::Stdio};

use anyhow::{Context as _, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use tokio::process::Command;
use twinshop_launcher::{
    LogTarget, Service, broker,
    databases::{self, database_url},
};

use super::{
    launch::Setup,
    procs::{self, OTHER, Scope, Watch, cpu_delta_ms},
};

const SEED_COMMON: &str = include_str!("../../pgbench/seed-common.sql");
const SEED_MONOLITH: &str = include_str!("../../pgbench/seed-monolith.sql");
const SEED_MICRO_PAYMENT: &str = include_str!("../../pgbench/seed-micro-payment.sql");
const MONOLITH: &str = include_str!("../../pgbench/monolith-place-order.sql");
const MICRO_ORDER: &str = include_str!("../../pgbench/micro-order.sql");
const MICRO_PAYMENT: &str = include_str!("../../pgbench/micro-payment.sql");
const MICRO_USER: &str = include_str!("../../pgbench/micro-user.sql");

/// How long and how hard to measure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CeilingConfig {
    pub duration_s: f64,
    /// Bisection steps for the microservices' joint ceiling.
    pub bisect: usize,
    /// Try 4 and 8 clients (the order database's; the others get half) and
    /// keep the better; otherwise 8 only.
    pub sweep_clients: bool,
}

impl CeilingConfig {
    /// The client counts to try.
    pub fn clients(&self) -> &'static [u32] {
        if self.sweep_clients { &[4, 8] } else { &[8] }
    }
}

/// One pgbench invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PgbenchRun {
    pub script: String,
    pub clients: u32,
    /// `-R`, scripts per second; `None` unthrottled.
    pub rate: Option<f64>,
    /// Scripts per second achieved.
    pub tps: f64,
}

/// One build's ceiling, in orders per second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ceiling {
    pub orders_per_s: f64,
    /// Database transactions per placed order (as in the scripts).
    pub transactions_per_order: u32,
    /// `true` when only a lower bound was measured.
    pub lower_bound: bool,
    /// CPU (cores, averaged over the runs) that neither Postgres nor
    /// pgbench took: other work on the machine competing with the measurement.
    pub other_cores: f64,
    pub method: String,
    pub runs: Vec<PgbenchRun>,
}

/// Both ceilings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ceilings {
    pub monolith: Ceiling,
    pub microservices: Ceiling,
    pub config: CeilingConfig,
}

impl Ceilings {
    /// micro / mono: the structural bound.
    pub fn ratio(&self) -> f64 {
        if self.monolith.orders_per_s > 0.0 {
            self.microservices.orders_per_s / self.monolith.orders_per_s
        } else {
            0.0
        }
    }
}

/// Reads `tps = 1234.5 (without initial connection time)` from pgbench's output.
pub fn parse_tps(output: &str) -> Option<f64> {
    output.lines().find_map(|l| l.trim().strip_prefix("tps = ")?.split_whitespace().next()?.parse().ok())
}

/// Whether every throttled run kept up with its rate (95 % of it).
pub fn kept_up(runs: &[PgbenchRun]) -> bool {
    runs.iter().all(|r| r.rate.is_some_and(|rate| r.tps >= 0.95 * rate))
}

/// The next rate to try: halfway between the highest that held and the
/// lowest that did not.
pub fn bisect(held: f64, failed: f64) -> f64 {
    ((held + failed) / 2.0).round()
}

/// What `<binary> migrate` needs for `service` with database `db`: the
/// variables the binary requires (its peers' addresses are never used).
fn migrate_env(setup: &Setup, service: Service, db: &str, namespace: &str) -> Result<Vec<(String, String)>> {
    let key = |f: &str| {
        let path = setup.root.join("dev/keys").join(f);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let p = service.env_prefix();
    Ok(vec![
        ("JWT_PRIVATE_KEY".to_owned(), key("jwt-private.pem")?),
        ("JWT_PUBLIC_KEY".to_owned(), key("jwt-public.pem")?),
        ("EVENTS_NAMESPACE".to_owned(), namespace.to_owned()),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
        (format!("{p}DATABASE_URL"), database_url(&setup.backing, db)),
        (format!("{p}REDIS_URL"), setup.backing.redis.clone()),
        (format!("{p}AMQP_URL"), setup.backing.amqp.clone()),
        ("ORDER_USER_SERVICE_URL".to_owned(), "http://127.0.0.1:9".to_owned()),
        ("ORDER_PAYMENT_GRPC_URL".to_owned(), "http://127.0.0.1:9".to_owned()),
    ])
}

/// A throwaway database: created, migrated by the service's own `migrate`, seeded.
async fn prepare(setup: &Setup, ns: &str, db: &str, service: Service, seeds: &[&str], dir: &Path) -> Result<()> {
    databases::create_if_missing(&setup.backing, db).await?;
    let bin = setup.bin_dir.join(service.binary());
    ensure!(bin.is_file(), "{} is missing: build the release binaries first", bin.display());
    let logs = LogTarget::Dir(dir.to_path_buf());
    databases::migrate(&bin, &migrate_env(setup, service, db, ns)?, &logs, &format!("migrate-{db}")).await?;
    for (i, seed) in seeds.iter().enumerate() {
        let file = dir.join(format!("seed-{db}-{i}.sql"));
        std::fs::write(&file, seed).with_context(|| format!("writing {}", file.display()))?;
        let status = Command::new("psql")
            .args([&database_url(&setup.backing, db), "-qX", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(&file)
            .stdout(Stdio::null())
            .status()
            .await
            .context("running psql (is postgresql-client installed?)")?;
        ensure!(status.success(), "seeding {db} failed");
    }
    Ok(())
}

/// One pgbench run of `script` (a file in `dir`) against `db`.
async fn pgbench(
    backing: &twinshop_launcher::plan::Backing,
    db: &str,
    dir: &Path,
    script: &str,
    clients: u32,
    rate: Option<f64>,
    secs: f64,
) -> Result<PgbenchRun> {
    let mut cmd = Command::new("pgbench");
    cmd.args(["-n", "-M", "prepared", "-c", &clients.to_string(), "-j", "1"])
        .args(["-T", &format!("{}", secs.ceil().max(1.0) as u64)])
        .arg("-f")
        .arg(dir.join(script))
        .arg(database_url(backing, db));
    if let Some(r) = rate {
        cmd.args(["-R", &format!("{r:.0}")]);
    }
    let out = cmd.output().await.context("running pgbench (install postgresql-client)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("pgbench {script} on {db} failed: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
    }
    let tps = parse_tps(&text).with_context(|| format!("pgbench printed no tps: {text}"))?;
    Ok(PgbenchRun { script: script.to_owned(), clients, rate, tps })
}

/// Postgres and the pgbench processes we run (reaped children), for the
/// machine's other load during a measurement.
fn watch() -> Watch {
    let mut w = Watch::default();
    w.add("postgres", procs::listener_pid(5432), false);
    w.add_scoped("pgbench", Some(std::process::id()), false, Scope::Reaped);
    w
}

/// Cores of other work per second of `secs` between two samples.
fn other_cores(before: &procs::Sample, after: &procs::Sample, secs: f64) -> f64 {
    cpu_delta_ms(before, after).get(OTHER).copied().unwrap_or(0.0) / 1e3 / secs.max(1e-3)
}

/// Measures both ceilings in throwaway databases (named as the launcher's
/// fresh ones, so a crashed comparison's are dropped by the next start),
/// migrated under the events namespace `loadtest_pgb<tag>`.
pub async fn measure(setup: &Setup, tag: &str, config: CeilingConfig, dir: &Path) -> Result<Ceilings> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in [
        ("monolith-place-order.sql", MONOLITH),
        ("micro-order.sql", MICRO_ORDER),
        ("micro-payment.sql", MICRO_PAYMENT),
        ("micro-user.sql", MICRO_USER),
    ] {
        std::fs::write(dir.join(name), text).with_context(|| format!("writing {name}"))?;
    }
    let dbs = ["mono", "user", "payment", "order"].map(|d| databases::fresh_name(&format!("pgb_{d}")));
    let namespace = format!("loadtest_pgb{tag}");
    let result = measure_in(setup, &namespace, &dbs, config, dir).await;
    for db in &dbs {
        if let Err(e) = databases::drop_database(&setup.backing, db).await {
            eprintln!("compare  could not drop the database {db}; drop it by hand ({e:#})");
        }
    }
    if let Err(e) = broker::delete_namespace(&setup.backing.amqp, &namespace).await {
        eprintln!("compare  could not delete the RabbitMQ namespace {namespace} ({e:#})");
    }
    result
}

async fn measure_in(
    setup: &Setup,
    namespace: &str,
    dbs: &[String; 4],
    config: CeilingConfig,
    dir: &Path,
) -> Result<Ceilings> {
    let [mono_db, user_db, payment_db, order_db] = dbs;
    let (ns, pg) = (namespace, &setup.backing);
    prepare(setup, ns, mono_db, Service::Monolith, &[SEED_COMMON, SEED_MONOLITH], dir).await?;
    prepare(setup, ns, user_db, Service::User, &[SEED_COMMON], dir).await?;
    prepare(setup, ns, payment_db, Service::Payment, &[SEED_COMMON, SEED_MICRO_PAYMENT], dir).await?;
    prepare(setup, ns, order_db, Service::Order, &[SEED_COMMON], dir).await?;
    let secs = config.duration_s;

    let watch = watch();
    let mut mono_runs = Vec::new();
    let mut mono_others = Vec::new();
    for &c in config.clients() {
        eprintln!("ceiling  monolith: pgbench, one database, {c} clients, {secs:.0} s");
        let before = watch.sample();
        mono_runs.push(pgbench(pg, mono_db, dir, "monolith-place-order.sql", c, None, secs).await?);
        mono_others.push(other_cores(&before, &watch.sample(), secs));
    }
    let best = mono_runs.iter().map(|r| r.tps).fold(0.0, f64::max);
    let monolith = Ceiling {
        orders_per_s: best,
        transactions_per_order: 7,
        lower_bound: false,
        other_cores: mono_others.iter().sum::<f64>() / mono_others.len().max(1) as f64,
        method: format!(
            "one pgbench, unthrottled, the best of {:?} clients: scripts per second = orders per second",
            config.clients()
        ),
        runs: mono_runs,
    };

    let micro = |clients: u32, rate: Option<f64>| async move {
        let half = (clients / 2).max(2);
        let (o, p, u) = tokio::join!(
            pgbench(pg, order_db, dir, "micro-order.sql", clients, rate, secs),
            pgbench(pg, payment_db, dir, "micro-payment.sql", half, rate, secs),
            pgbench(pg, user_db, dir, "micro-user.sql", half, rate, secs),
        );
        Ok::<_, anyhow::Error>(vec![o?, p?, u?])
    };
    let mut others = Vec::new();
    let mut runs = Vec::new();
    // The unthrottled runs: the slowest database's rate is a lower bound.
    let (mut held, mut failed, mut clients) = (0.0, 0.0, 8);
    for &c in config.clients() {
        eprintln!("ceiling  microservices: three pgbench at once (order, payment, user), {c} clients, {secs:.0} s");
        let before = watch.sample();
        let tried = micro(c, None).await?;
        others.push(other_cores(&before, &watch.sample(), secs));
        let slowest = tried.iter().map(|r| r.tps).fold(f64::INFINITY, f64::min);
        if slowest > held {
            (held, clients) = (slowest, c);
            failed = tried.iter().map(|r| r.tps).fold(0.0, f64::max).max(held * 1.05);
        }
        runs.extend(tried);
    }
    for _ in 0..config.bisect {
        let rate = bisect(held, failed);
        eprintln!("ceiling  microservices: all three throttled to {rate:.0}/s");
        let before = watch.sample();
        let tried = micro(clients, Some(rate)).await?;
        others.push(other_cores(&before, &watch.sample(), secs));
        if kept_up(&tried) {
            held = rate;
        } else {
            failed = rate;
        }
        runs.extend(tried);
    }
    let microservices = Ceiling {
        orders_per_s: held,
        transactions_per_order: 7,
        lower_bound: config.bisect == 0,
        other_cores: others.iter().sum::<f64>() / others.len().max(1) as f64,
        method: if config.bisect == 0 {
            format!(
                "three pgbench at once ({clients}/{h}/{h} clients), unthrottled: the slowest database's rate \
                 (a lower bound)",
                h = (clients / 2).max(2)
            )
        } else {
            format!(
                "three pgbench at once ({clients}/{h}/{h} clients); the highest common rate (-R) all three \
                 sustained (≥ 95 %), after {} bisection steps from the unthrottled run",
                config.bisect,
                h = (clients / 2).max(2)
            )
        },
        runs,
    };
    Ok(Ceilings { monolith, microservices, config })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tps_is_read_from_pgbench_output() {
        let out = "number of failed transactions: 0 (0.000%)\nlatency average = 11.410 ms\n\
                   initial connection time = 31.178 ms\ntps = 701.164684 (without initial connection time)\n";
        assert_eq!(parse_tps(out), Some(701.164684));
        assert_eq!(parse_tps("nothing"), None);
    }

    #[test]
    fn a_throttled_run_holds_when_every_database_keeps_up() {
        let run = |rate, tps| PgbenchRun { script: "s".into(), clients: 1, rate: Some(rate), tps };
        assert!(kept_up(&[run(700.0, 690.0), run(700.0, 668.0)]));
        assert!(!kept_up(&[run(700.0, 690.0), run(700.0, 600.0)]));
        assert!(!kept_up(&[PgbenchRun { rate: None, ..run(1.0, 1.0) }]));
        assert_eq!(bisect(600.0, 800.0), 700.0);
    }

    #[test]
    fn the_scripts_use_no_variable_pgbench_would_misread() {
        // pgbench reads `:name` as a variable anywhere in a command; a
        // literal like '07:00' would become an undefined variable "00".
        for script in [MONOLITH, MICRO_ORDER, MICRO_PAYMENT, MICRO_USER] {
            for (i, _) in script.match_indices(':') {
                let next = script[i + 1..].chars().next().unwrap_or(' ');
                let prev = script[..i].chars().last().unwrap_or(' ');
                if next.is_ascii_alphanumeric() && prev != ':' && next != ':' {
                    let name: String = script[i + 1..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
                    assert!(["u", "o", "e", "l"].contains(&name.as_str()), "unexpected variable :{name}");
                }
            }
        }
        assert_eq!(MONOLITH.matches("COMMIT;").count(), 5);
    }
}
