//! `twinshop-launch`: runs either build as local processes behind the edge
//! (what `make run` and `make run-monolith` use; `scripts/run-local` execs
//! it). It builds nothing unless given `--build`: the Makefile builds the
//! release binaries first.
//!
//! Like `scripts/run-local` always did, it checks the backing services
//! first (`scripts/check-services` says plainly what is missing), installs
//! nginx from the distribution when missing, keeps the databases named
//! `twinshop_user` etc. (created if missing, migrated every time, never
//! dropped), honours the same variables (`EDGE_PORT`, `TWINSHOP_DB_SUFFIX`,
//! `PG_URL_BASE`, `PG_URL_PARAMS`, `AMQP_URL`, every service's own), prints
//! the URL, interleaves prefixed logs, and drains everything on Ctrl-C.
//!
//! Like every twinshop binary it knows its build (`--version`, its first
//! line): the platform's `build_info.rs`, included by path because the
//! launcher does not link the platform.

// `install`/`current` are for the platform's telemetry; unused here.
#[allow(dead_code)]
#[path = "../../../platform/src/build_info.rs"]
mod build_info;

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use twinshop_launcher::{
    Build, DatabaseMode, LogTarget, Plan, PortChoice, RestartPolicy, Service, System,
    plan::{EdgePlan, workspace_root},
};

/// Run twinshop as local processes behind the nginx edge.
#[derive(Debug, Parser)]
#[command(name = "twinshop-launch", version = version())]
struct Args {
    /// The monolith instead of the user, payment and order services.
    #[arg(long)]
    monolith: bool,
    /// Replicas per service behind the edge, e.g. `order=2,payment=3`.
    #[arg(long, default_value = "")]
    replicas: String,
    /// The edge's port.
    #[arg(long, env = "EDGE_PORT", default_value_t = 8080)]
    port: u16,
    /// Jaeger's UI as a browser reaches it (e.g. `http://localhost:16686`):
    /// the storefront links each request's trace id there. Empty: no links.
    #[arg(long, env = "JAEGER_UI_URL", default_value = "")]
    jaeger_ui_url: String,
    /// Where the service binaries are (default: the repository's target/release).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The repository (dev/keys, deploy/edge, scripts/); default: found from this binary.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Appended to the database names (`_run3`: twinshop_user_run3).
    #[arg(long, env = "TWINSHOP_DB_SUFFIX", default_value = "")]
    db_suffix: String,
    /// Fresh throwaway databases and broker namespace, removed at the end.
    #[arg(long)]
    fresh_databases: bool,
    /// With --fresh-databases: keep them at the end.
    #[arg(long, requires = "fresh_databases")]
    keep_databases: bool,
    /// Each process in its own network namespace with its own address.
    #[arg(long)]
    namespaces: bool,
    /// Restart a process that exits (with a backoff), as a kubelet would.
    #[arg(long)]
    restart: bool,
    /// One log file per process in this directory instead of prefixed lines on stdout.
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Seconds each process may drain on stop before SIGKILL.
    #[arg(long, default_value_t = 25)]
    drain_secs: u64,
    /// Skip scripts/check-services.
    #[arg(long)]
    no_check: bool,
    /// Build the release binaries first (`cargo build --release --bins` in the repository).
    #[arg(long)]
    build: bool,
    /// Where to list the started processes for Prometheus (file-based
    /// service discovery; `scripts/prometheus` reads it), removed at the end.
    /// Default: target/prometheus/twinshop.json in the repository.
    #[arg(long)]
    prometheus_targets: Option<PathBuf>,
}

/// This build's identity, read here (in the binary's own crate) so that
/// another release recompiles this file only.
const BUILD: build_info::BuildInfo = crate::build_info!();

/// `0.1.0 (commit …, release …, profile …)`, for clap (which keeps a
/// `&'static str`).
fn version() -> &'static str {
    BUILD.to_string().leak()
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

fn find_root(given: Option<PathBuf>) -> PathBuf {
    let is_root = |d: &Path| d.join("deploy/edge/twinshop.conf.template").is_file();
    let from_exe = std::env::current_exe().ok().and_then(|e| e.parent()?.parent()?.parent().map(Path::to_path_buf));
    given
        .into_iter()
        .chain(from_exe)
        .chain(std::env::current_dir().ok())
        .find(|d| is_root(d))
        .unwrap_or_else(workspace_root)
}

fn parse_replicas(text: &str) -> Result<BTreeMap<Service, u16>> {
    let mut out = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, n) = part.split_once('=').with_context(|| format!("--replicas: {part:?} is not service=N"))?;
        let service = Service::parse(name.trim()).with_context(|| format!("--replicas: unknown service {name:?}"))?;
        let n: u16 = n.trim().parse().with_context(|| format!("--replicas: {n:?} is not a number"))?;
        if n == 0 {
            bail!("--replicas: {name} needs at least 1");
        }
        out.insert(service, n);
    }
    Ok(out)
}

/// The variables of the services this launcher passes on, and the port overrides.
fn passed_env() -> (BTreeMap<String, String>, BTreeMap<String, u16>) {
    let (mut env, mut ports) = (BTreeMap::new(), BTreeMap::new());
    let own = ["USER_", "PAYMENT_", "ORDER_", "MONOLITH_", "JWT_", "OTEL_"];
    for (key, value) in std::env::vars() {
        if key.ends_with("_HTTP_PORT") || key.ends_with("_INTERNAL_PORT") {
            if let Ok(port) = value.parse() {
                ports.insert(key, port);
            }
        } else if key.ends_with("_BIND_ADDRESS") || key.ends_with("_UPSTREAM") {
            // The launcher decides where processes listen and what the edge routes to.
        } else if own.iter().any(|p| key.starts_with(p))
            || ["RUST_LOG", "SHUTDOWN_TIMEOUT", "TOKIO_WORKER_THREADS"].contains(&key.as_str())
        {
            env.insert(key, value);
        }
    }
    (env, ports)
}

async fn run(args: Args) -> Result<()> {
    say(&format!("twinshop-launch {BUILD} starting"));
    let root = find_root(args.root.clone());
    let check = root.join("scripts/check-services");
    if !args.no_check && check.is_file() {
        let ok = std::process::Command::new(&check).status().context("running scripts/check-services")?;
        if !ok.success() {
            bail!("backing services missing (see above)");
        }
    }
    if args.build {
        say("building (release)...");
        let mut cargo = std::process::Command::new("cargo");
        cargo.args(["build", "--release", "--quiet", "--bins"]).current_dir(&root);
        // The binaries' release identity (crates/platform/src/build_info.rs):
        // the checkout's commit unless the caller set one.
        if std::env::var_os("TWINSHOP_COMMIT").is_none()
            && let Some(commit) = head_commit(&root)
        {
            cargo.env("TWINSHOP_COMMIT", commit);
        }
        let built = cargo.status().context("running cargo (is it on PATH?)")?;
        if !built.success() {
            bail!("cargo build --release --bins failed ({built})");
        }
    }
    twinshop_launcher::prereq::ensure("nginx", "nginx")?;
    if args.namespaces {
        twinshop_launcher::prereq::ensure("iptables", "iptables")?;
    }
    let (env, port_overrides) = passed_env();
    let build = if args.monolith { Build::Monolith } else { Build::Microservices };
    let mut plan = Plan::new(build)
        .bin_dir(args.bin_dir.clone().unwrap_or_else(|| root.join("target/release")))
        .namespaces(args.namespaces)
        .drain(Duration::from_secs(args.drain_secs))
        .logs(args.log_dir.clone().map_or(LogTarget::Stdout, LogTarget::Dir));
    plan.keys_dir = root.join("dev/keys");
    plan.ports = PortChoice::Classic { overrides: port_overrides };
    plan.edge = Some(EdgePlan {
        port: Some(args.port),
        all_addresses: true,
        jaeger_ui: args.jaeger_ui_url.clone(),
        ..EdgePlan::at(&root)
    });
    plan.env_all = env;
    if args.restart {
        plan.restart = RestartPolicy::on_exit();
    }
    if let Ok(pg) = std::env::var("PG_URL_BASE") {
        plan.backing.postgres = pg;
    }
    if let Ok(params) = std::env::var("PG_URL_PARAMS") {
        plan.backing.postgres_params = params;
    }
    if let Ok(amqp) = std::env::var("AMQP_URL") {
        plan.backing.amqp = amqp;
    }
    if args.fresh_databases {
        plan.databases = DatabaseMode::Fresh { keep: args.keep_databases };
        plan.events_namespace = std::env::var("EVENTS_NAMESPACE").ok();
    } else {
        plan.databases = DatabaseMode::Named { suffix: args.db_suffix.clone() };
        plan.events_namespace = Some(std::env::var("EVENTS_NAMESPACE").unwrap_or_else(|_| "twinshop".into()));
    }
    for (service, n) in parse_replicas(&args.replicas)? {
        plan = plan.replicas(service, n);
    }
    let logs = plan.logs.clone();
    let system = System::start(plan).await?;
    let url = format!("http://127.0.0.1:{}", args.port);
    say(&format!("twinshop ({}) is up: {url}  (Ctrl-C stops everything)", build.name()));
    for p in system.processes() {
        let ns = p.netns.map(|n| format!(" in {n}")).unwrap_or_default();
        logs.line(
            "launch",
            &format!("{} pid {:?} on {}:{}/{}{ns}", p.id, p.pid, p.address, p.http_port, p.internal_port),
        );
    }
    let targets = args.prometheus_targets.clone().unwrap_or_else(|| root.join("target/prometheus/twinshop.json"));
    match twinshop_launcher::prometheus::write_file_sd(&targets, build, &system.processes()) {
        Ok(()) => logs.line("launch", &format!("Prometheus targets in {} (scripts/prometheus)", targets.display())),
        Err(e) => logs.line("launch", &format!("could not write {}: {e}", targets.display())),
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    say("stopping (each process drains first)...");
    let _ = std::fs::remove_file(&targets);
    let report = system.stop().await?;
    for problem in &report.problems {
        logs.line("launch", &format!("cleanup: {problem}"));
    }
    say("stopped.");
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("twinshop-launch: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("twinshop-launch: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `git rev-parse HEAD` in `root`, when it is a git checkout.
fn head_commit(root: &Path) -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).current_dir(root).output().ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_parse_per_service() {
        let r = parse_replicas("order=2, payment=3").expect("parse");
        assert_eq!(r, BTreeMap::from([(Service::Payment, 3), (Service::Order, 2)]));
        assert!(parse_replicas("").expect("empty").is_empty());
        assert!(parse_replicas("shop=2").is_err());
        assert!(parse_replicas("order=0").is_err());
    }
}
