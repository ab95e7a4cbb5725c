//! Starting and stopping a build for one run of a comparison, with the
//! launcher (`twinshop_launcher`), and the one release build before all of
//! them.
//!
//! Why it exists: every run must start from the same state (fresh
//! databases, its own events namespace, warm binaries, nothing left over
//! from the previous run) on ports nobody else on the machine uses, and its
//! processes must be measured by their pids, not guessed by name. The
//! launcher does all of that, as for `make run`, the tests and the labs;
//! this module only says which plan a run uses ([`Setup::plan`]) and what
//! of the running system a comparison reads: its base URL, its pids, its
//! services' internal ports. Stopping drains every process and removes the
//! run's databases and RabbitMQ queues.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use tokio::process::Command;
use twinshop_launcher::{
    LogTarget, Plan, ProcessId, Service, System,
    plan::{Backing, EdgePlan},
};

use super::procs;

/// Which build a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Build {
    /// The three areas in one process.
    Monolith,
    /// user, payment and order as separate processes behind the edge.
    Microservices,
}

impl Build {
    /// The short name used in reports and charts.
    pub fn name(self) -> &'static str {
        match self {
            Self::Monolith => "monolith",
            Self::Microservices => "microservices",
        }
    }

    /// The processes of the build, by binary (and command) name: the names
    /// of their rows in the CPU and memory tables.
    pub fn processes(self) -> &'static [&'static str] {
        match self {
            Self::Monolith => &["monolith"],
            Self::Microservices => &["user-service", "payment-service", "order-service"],
        }
    }

    /// The launcher's name for the same build.
    pub fn launcher(self) -> twinshop_launcher::Build {
        match self {
            Self::Monolith => twinshop_launcher::Build::Monolith,
            Self::Microservices => twinshop_launcher::Build::Microservices,
        }
    }
}

/// Where a comparison's builds come from and what they run against.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The workspace root: `dev/keys` (JWT keys) and `deploy/edge` (the edge's templates).
    pub root: PathBuf,
    /// The service binaries (`target/release`, or an older build's).
    pub bin_dir: PathBuf,
    /// Postgres (reached as `?sslmode=disable`, see [`Backing`]), Redis and RabbitMQ.
    pub backing: Backing,
    /// `RUST_LOG` of the services.
    pub rust_log: String,
    /// More environment for every process of every run (`--env`).
    pub env: Vec<(String, String)>,
    /// Where each run's logs go (a directory per run, a file per process).
    pub log_dir: PathBuf,
}

impl Setup {
    /// The backing services: Postgres at `pg` (a server URL without a
    /// database), Redis and RabbitMQ on this machine (`AMQP_URL` overrides
    /// RabbitMQ's, as for `make run`).
    pub fn backing(pg: &str) -> Backing {
        let mut backing = Backing { postgres: pg.trim_end_matches('/').to_owned(), ..Backing::default() };
        if let Ok(amqp) = std::env::var("AMQP_URL") {
            backing.amqp = amqp;
        }
        backing
    }

    /// The plan of one run of `build`: this setup's binaries and backing
    /// services, fresh databases and events namespace (removed at the
    /// end), free ports, the edge on 127.0.0.1, one replica each, no
    /// restarts, logs in `<log_dir>/<label>/`.
    pub fn plan(&self, build: Build, label: &str) -> Plan {
        let plan = Plan::new(build.launcher())
            .bin_dir(&self.bin_dir)
            .logs(LogTarget::Dir(self.log_dir.join(label)))
            .env_all("RUST_LOG", &self.rust_log);
        let mut plan = self.env.iter().fold(plan, |plan, (k, v)| plan.env_all(k, v));
        plan.backing = self.backing.clone();
        plan.keys_dir = self.root.join("dev/keys");
        plan.edge = Some(EdgePlan::at(&self.root));
        plan
    }

    /// Starts `build` for the run `label` and waits until the edge answers.
    pub async fn start(&self, build: Build, label: &str) -> Result<Running> {
        self.start_with(build, label, &[]).await
    }

    /// [`Setup::start`] with more environment for every process (the
    /// traced runs' telemetry settings).
    pub async fn start_with(&self, build: Build, label: &str, env: &[(String, String)]) -> Result<Running> {
        let started = Instant::now();
        let plan = env.iter().fold(self.plan(build, label), |plan, (k, v)| plan.env_all(k, v));
        let system = System::start(plan).await.with_context(|| {
            format!("starting {}; see the logs in {}", build.name(), self.log_dir.join(label).display())
        })?;
        let base_url = system.url().context("the plan has an edge")?;
        Ok(Running { build, base_url, system, started_in: started.elapsed() })
    }
}

/// A running build.
#[derive(Debug)]
pub struct Running {
    /// Which build.
    pub build: Build,
    /// The edge's base URL.
    pub base_url: String,
    /// The launcher's handle on it.
    pub system: System,
    /// From the start (databases, migrations, processes, edge) until ready.
    pub started_in: Duration,
}

impl Running {
    /// The pid of `service`'s (only) process.
    pub fn pid(&self, service: Service) -> Option<u32> {
        self.system.process(ProcessId::new(service, 1)).ok()?.pid
    }

    /// The pid of the edge's nginx master (its workers are its children).
    pub fn edge_pid(&self) -> Option<u32> {
        self.system.edge()?.supervisor().pid()
    }

    /// `http://127.0.0.1:<internal port>` of `service`.
    pub fn internal_url(&self, service: Service) -> Option<String> {
        self.system.process(ProcessId::new(service, 1)).ok().map(|p| p.internal_url())
    }

    /// Drains every process, then drops the run's databases and deletes its
    /// events namespace from RabbitMQ; what could not be removed is said.
    pub async fn stop(self) {
        let name = self.build.name();
        match self.system.stop().await {
            Ok(report) => {
                for problem in &report.problems {
                    eprintln!("compare  stopping {name}: {problem}");
                }
            }
            Err(e) => eprintln!("compare  stopping {name}: {e:#}"),
        }
    }
}

/// Waits until no other cargo or rustc runs (this machine builds one thing
/// at a time), then builds the release binaries once.
pub async fn build_release(root: &Path, wait_at_most: Duration) -> Result<Duration> {
    let started = Instant::now();
    let mut said = false;
    loop {
        let busy = other_builds();
        if busy.is_empty() {
            break;
        }
        ensure!(started.elapsed() < wait_at_most, "another build is still running after {wait_at_most:?}: {busy:?}");
        if !said {
            eprintln!("compare  waiting for another build to finish ({})", busy.join(", "));
            said = true;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    eprintln!("compare  building the release binaries (cargo build --release --bins)...");
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--bins"])
        .current_dir(root)
        .status()
        .await
        .context("running cargo (is it on PATH?)")?;
    ensure!(status.success(), "cargo build --release --bins failed ({status})");
    Ok(started.elapsed())
}

/// `cargo`/`rustc` processes that are not our own ancestors (a `cargo run`
/// that started us is not a build).
fn other_builds() -> Vec<String> {
    let procs = procs::all_processes();
    let mut ancestors = std::collections::HashSet::new();
    let mut pid = std::process::id();
    for _ in 0..64 {
        ancestors.insert(pid);
        match procs.get(&pid) {
            Some(s) if s.ppid != 0 => pid = s.ppid,
            _ => break,
        }
    }
    procs
        .values()
        .filter(|s| (s.comm == "cargo" || s.comm == "rustc") && !ancestors.contains(&s.pid))
        .map(|s| format!("{} {}", s.comm, s.pid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_plan_is_fresh_and_reaches_postgres_in_plain_tcp() {
        let setup = Setup {
            root: PathBuf::from("/repo"),
            bin_dir: PathBuf::from("/old/release"),
            backing: Setup::backing("postgres://postgres@127.0.0.1:5432/"),
            rust_log: "warn".into(),
            env: vec![("ORDER_MAX_IN_FLIGHT".into(), "8".into())],
            log_dir: PathBuf::from("/out/logs"),
        };
        let plan = setup.plan(Build::Microservices, "run_mi0");
        assert_eq!(plan.build, twinshop_launcher::Build::Microservices);
        assert_eq!(plan.bin_dir, PathBuf::from("/old/release"));
        assert_eq!(plan.databases, twinshop_launcher::DatabaseMode::Fresh { keep: false });
        assert_eq!(plan.events_namespace, None, "a namespace of its own, deleted at the end");
        assert_eq!(plan.logs, LogTarget::Dir(PathBuf::from("/out/logs/run_mi0")));
        assert_eq!(plan.env_all.get("RUST_LOG").map(String::as_str), Some("warn"));
        assert_eq!(
            plan.env_all.get("ORDER_MAX_IN_FLIGHT").map(String::as_str),
            Some("8"),
            "--env reaches every process"
        );
        assert_eq!(plan.keys_dir, PathBuf::from("/repo/dev/keys"));
        assert_eq!(
            twinshop_launcher::databases::database_url(&plan.backing, "twinshop_order_x"),
            "postgres://postgres@127.0.0.1:5432/twinshop_order_x?sslmode=disable"
        );
        assert_eq!(Build::Monolith.launcher().services().len(), Build::Monolith.processes().len());
        assert_eq!(Build::Microservices.launcher().services().len(), Build::Microservices.processes().len());
    }
}
