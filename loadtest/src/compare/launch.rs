//! Starting and stopping a build for one run of a comparison, with the
//! local run command (`scripts/run-local`), and the one release build
//! before all of them.
//!
//! Why it exists: every run must start from the same state (fresh
//! databases, warm binaries, nothing left over from the previous run), and
//! on ports that nobody else on the machine uses. `run-local` already knows
//! how to create and migrate the databases, start the processes and the
//! edge, and drain them on SIGTERM; this module only fills in its knobs:
//! `TWINSHOP_DB_SUFFIX` (a fresh set of databases per run), free ports for
//! every listener (`EDGE_PORT`, `USER_HTTP_PORT`, ...), its own
//! `EVENTS_NAMESPACE`, and `TWINSHOP_SKIP_BUILD=1` (the binaries were built
//! once, up front). The databases are dropped after the run.
//!
//! Processes are signalled by pid only: `run-local` gets SIGTERM and stops
//! its children itself; if it has not exited after the drain time, its
//! process group (which `compare` created for it) gets SIGKILL.

use std::{
    collections::BTreeMap,
    fs::File,
    net::TcpListener,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use rand::{Rng as _, SeedableRng as _, rngs::SmallRng};
use tokio::process::{Child, Command};

use super::procs;

/// Which build a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Build {
    Monolith,
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

    /// The processes of the build, by command name.
    pub fn processes(self) -> &'static [&'static str] {
        match self {
            Self::Monolith => &["monolith"],
            Self::Microservices => &["user-service", "payment-service", "order-service"],
        }
    }
}

/// Where [`Ports::free`] picks from: below Linux's default ephemeral range
/// (32768–60999), above the well-known and the local run's ports.
pub const PORT_RANGE: std::ops::Range<u16> = 20_000..32_000;

/// Postgres is reached over plain TCP on loopback, by the builds (through
/// run-local's `PG_URL_PARAMS`), pgbench, psql and `migrate` alike: TLS
/// there buys nothing and, with sqlx 0.9.0 (no `TCP_NODELAY`), makes every
/// new connection wait on Nagle and delayed ACKs.
pub const PG_URL_PARAMS: &str = "?sslmode=disable";

/// `{pg}/{database}` with [`PG_URL_PARAMS`], `pg` being the server's base URL.
pub fn database_url(pg: &str, database: &str) -> String {
    format!("{pg}/{database}{PG_URL_PARAMS}")
}

/// The ports one run listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports {
    pub edge: u16,
    /// `(variable, port)` for every service port.
    pub services: Vec<(&'static str, u16)>,
}

impl Ports {
    /// Free ports for the edge and every service port: random ports in
    /// [`PORT_RANGE`], below the kernel's ephemeral range, each checked by
    /// binding it (all held until all are chosen, so none repeats). A port
    /// from `bind(:0)` would come from the ephemeral range, where an
    /// outgoing connection (to Postgres, say) can take it before the
    /// service binds it.
    pub fn free() -> Result<Self> {
        const VARS: [&str; 8] = [
            "USER_HTTP_PORT",
            "USER_INTERNAL_PORT",
            "PAYMENT_HTTP_PORT",
            "PAYMENT_INTERNAL_PORT",
            "ORDER_HTTP_PORT",
            "ORDER_INTERNAL_PORT",
            "MONOLITH_HTTP_PORT",
            "MONOLITH_INTERNAL_PORT",
        ];
        let mut rng = SmallRng::from_os_rng();
        let mut held: Vec<TcpListener> = Vec::new();
        let mut ports: Vec<u16> = Vec::new();
        for _ in 0..1000 {
            if ports.len() > VARS.len() {
                break;
            }
            let port = rng.random_range(PORT_RANGE);
            if ports.contains(&port) {
                continue;
            }
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
                held.push(listener);
                ports.push(port);
            }
        }
        ensure!(ports.len() > VARS.len(), "no {} free ports in {PORT_RANGE:?}", VARS.len() + 1);
        drop(held);
        Ok(Self { edge: ports[0], services: VARS.iter().copied().zip(ports[1..].iter().copied()).collect() })
    }

    pub fn get(&self, var: &str) -> Option<u16> {
        self.services.iter().find(|(v, _)| *v == var).map(|(_, p)| *p)
    }
}

/// What a comparison needs from the environment to start builds.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The workspace root (where `scripts/run-local` is).
    pub root: PathBuf,
    /// `postgres://user@host:port` (no database).
    pub pg: String,
    /// Broker namespace of every run of this comparison.
    pub namespace: String,
    /// `RUST_LOG` of the services.
    pub rust_log: String,
    /// Where each run's log goes.
    pub log_dir: PathBuf,
}

/// A running build.
#[derive(Debug)]
pub struct Running {
    pub build: Build,
    pub base_url: String,
    pub ports: Ports,
    child: Child,
    /// `run-local`'s pid: the root of every process of the build.
    pub pid: u32,
    databases: Vec<String>,
    pub started_in: Duration,
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

impl Launcher {
    /// Starts `build` with fresh databases (suffix `suffix`) on free ports,
    /// and waits until the edge answers `GET /v1/products`.
    pub async fn start(&self, build: Build, suffix: &str) -> Result<Running> {
        ensure!(suffix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "bad suffix");
        let ports = Ports::free()?;
        let log_path = self.log_dir.join(format!("run{suffix}-{}.log", build.name()));
        let log = File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let mut cmd = Command::new(self.root.join("scripts/run-local"));
        if build == Build::Monolith {
            cmd.arg("--monolith");
        }
        cmd.current_dir(&self.root)
            .env("EDGE_PORT", ports.edge.to_string())
            .env("TWINSHOP_DB_SUFFIX", suffix)
            .env("TWINSHOP_SKIP_BUILD", "1")
            .env("EVENTS_NAMESPACE", &self.namespace)
            .env("RUST_LOG", &self.rust_log)
            .env("PG_URL_BASE", &self.pg)
            .env("PG_URL_PARAMS", PG_URL_PARAMS)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating the log file")?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(false);
        for (var, port) in &ports.services {
            cmd.env(var, port.to_string());
        }
        // Whatever run-local would pick for these from the environment must
        // not come from the caller's shell: every run uses its own.
        for var in ["USER_DATABASE_URL", "PAYMENT_DATABASE_URL", "ORDER_DATABASE_URL", "MONOLITH_DATABASE_URL"] {
            cmd.env_remove(var);
        }
        for var in ["ORDER_USER_SERVICE_URL", "ORDER_PAYMENT_GRPC_URL"] {
            cmd.env_remove(var);
        }
        let started = Instant::now();
        let mut child = cmd.spawn().context("starting scripts/run-local")?;
        let pid = child.id().context("run-local exited at once")?;
        let databases = match build {
            Build::Monolith => vec![format!("twinshop_monolith{suffix}")],
            Build::Microservices => ["user", "payment", "order"].map(|a| format!("twinshop_{a}{suffix}")).to_vec(),
        };
        let base_url = format!("http://127.0.0.1:{}", ports.edge);
        let deadline = started + Duration::from_secs(120);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("run-local exited ({status}) before the edge was ready; see {}", log_path.display());
            }
            if edge_ready(ports.edge).await {
                break;
            }
            if Instant::now() > deadline {
                let running = Running { build, base_url, ports, child, pid, databases, started_in: started.elapsed() };
                running.stop(&self.pg).await;
                bail!("{} was not ready within 120 s; see {}", build.name(), log_path.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Running { build, base_url, ports, child, pid, databases, started_in: started.elapsed() })
    }

    /// The environment a binary's `migrate` needs (for the pgbench databases).
    pub fn migrate_env(&self, build_var_prefix: &str, database: &str) -> Result<BTreeMap<String, String>> {
        let key = |f: &str| {
            std::fs::read_to_string(self.root.join("dev/keys").join(f)).with_context(|| format!("reading dev/keys/{f}"))
        };
        let mut env = BTreeMap::from([
            ("JWT_PRIVATE_KEY".to_owned(), key("jwt-private.pem")?),
            ("JWT_PUBLIC_KEY".to_owned(), key("jwt-public.pem")?),
            ("EVENTS_NAMESPACE".to_owned(), self.namespace.clone()),
            ("RUST_LOG".to_owned(), "warn".to_owned()),
        ]);
        let p = build_var_prefix;
        env.insert(format!("{p}_DATABASE_URL"), database_url(&self.pg, database));
        env.insert(format!("{p}_REDIS_URL"), "redis://127.0.0.1:6379".to_owned());
        env.insert(format!("{p}_AMQP_URL"), super::broker::amqp_url());
        env.insert("ORDER_USER_SERVICE_URL".to_owned(), "http://127.0.0.1:9".to_owned());
        env.insert("ORDER_PAYMENT_GRPC_URL".to_owned(), "http://127.0.0.1:9".to_owned());
        Ok(env)
    }
}

async fn edge_ready(port: u16) -> bool {
    let url = format!("http://127.0.0.1:{port}");
    let Ok(client) = twinshop_client::Client::builder().timeout(Duration::from_millis(500)).build(&url) else {
        return false;
    };
    client.get("/v1/products").send().await.is_ok_and(|r| r.status().as_u16() == 200)
}

impl Running {
    /// SIGTERM to run-local (which drains and stops everything it
    /// started), SIGKILL to its process group if it is still there after
    /// 30 s; then the run's databases are dropped.
    pub async fn stop(mut self, pg: &str) {
        signal("-TERM", &self.pid.to_string()).await;
        let exited = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        if !matches!(exited, Ok(Ok(_))) {
            eprintln!("compare  run-local {} did not stop within 30 s: killing its process group", self.pid);
            signal("-KILL", &format!("-{}", self.pid)).await;
            let _ = self.child.wait().await;
        }
        for db in &self.databases {
            drop_database(pg, db).await;
        }
    }
}

async fn signal(sig: &str, target: &str) {
    let _ = Command::new("kill").args([sig, "--", target]).stderr(Stdio::null()).status().await;
}

/// `DROP DATABASE IF EXISTS … WITH (FORCE)`, best effort (a leftover
/// throwaway database is reported, never fatal).
pub async fn drop_database(pg: &str, db: &str) {
    let sql = format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)");
    let done =
        Command::new("psql").args([&database_url(pg, "postgres"), "-qtAc", &sql]).stdout(Stdio::null()).status().await;
    if !matches!(done, Ok(s) if s.success()) {
        eprintln!("compare  could not drop the database {db}; drop it by hand");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let p = Ports::free().expect("ports");
        let mut all: Vec<u16> = p.services.iter().map(|(_, port)| *port).chain([p.edge]).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 9);
        assert!(all.iter().all(|port| PORT_RANGE.contains(port)), "{all:?}");
        assert!(p.get("USER_INTERNAL_PORT").is_some());
    }
}
