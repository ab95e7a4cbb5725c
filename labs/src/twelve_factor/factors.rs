//! The twelve checks. Each returns a [`Row`]; a check that cannot run is a
//! failed row that says why, never a pass.

use std::{collections::BTreeMap, path::Path, sync::Arc, time::Duration};

use anyhow::{Context as _, Result, bail, ensure};
use sqlx::{Connection as _, PgConnection};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use twinshop_client::{Client, OrderItem, internal::UserDirectory};
use twinshop_launcher::{Build, ProcessId, Service, System, plan::Backing};

use super::{
    Row,
    copy::{self, Copy, Output},
    parity,
};
use crate::{
    common::LabArgs,
    faults::{
        rolling,
        workload::{self, History, Workload},
    },
    identity,
};

/// The factors, in the seed's order (2.2).
pub const ORDER: [&str; 12] = [
    "I. Codebase",
    "II. Dependencies",
    "III. Config",
    "IV. Backing services",
    "V. Build, release, run",
    "VI. Processes",
    "VII. Port binding",
    "VIII. Concurrency",
    "IX. Disposability",
    "X. Dev/prod parity",
    "XI. Logs",
    "XII. Admin processes",
];

const BINARIES: [&str; 5] = ["user-service", "payment-service", "order-service", "monolith", "twinshop-launch"];

/// I: every binary says the same commit, and it is a commit of this repository.
pub fn codebase(bin_dir: &Path, root: &Path) -> Row {
    let check = || -> Result<(bool, String)> {
        let ids: Vec<(&str, identity::Identity)> =
            BINARIES.iter().map(|b| Ok((*b, identity::of_binary(&bin_dir.join(b))?))).collect::<Result<_>>()?;
        let commits: std::collections::BTreeSet<&str> = ids.iter().map(|(_, i)| i.commit.as_str()).collect();
        let commit = ids[0].1.commit.clone();
        let known = std::process::Command::new("git")
            .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
            .current_dir(root)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let one = commits.len() == 1 && commit != "unknown";
        Ok((
            one && known,
            format!(
                "{} binaries (--version): commit{} {}; {}",
                ids.len(),
                if commits.len() == 1 { "" } else { "s" },
                commits.iter().map(|c| identity::short(c)).collect::<Vec<_>>().join(", "),
                if known { "a commit of this repository (git cat-file)" } else { "not a commit of this repository" }
            ),
        ))
    };
    Row::of(ORDER[0], "every binary's --version names the same commit, and git knows it", check())
}

/// II: the lock file is complete (`cargo metadata --locked`).
pub fn dependencies(root: &Path) -> Row {
    let check = || -> Result<(bool, String)> {
        let out = std::process::Command::new("cargo")
            .args(["metadata", "--locked", "--format-version", "1"])
            .current_dir(root)
            .output()
            .context("running cargo metadata")?;
        if !out.status.success() {
            return Ok((
                false,
                format!("cargo metadata --locked failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
            ));
        }
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).context("cargo metadata's JSON")?;
        let packages = meta["packages"].as_array().map_or(0, Vec::len);
        let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
        let locked = lock.matches("[[package]]").count();
        Ok((
            packages > 0,
            format!(
                "cargo metadata --locked: {packages} packages resolved from Cargo.lock ({locked} entries), nothing to add"
            ),
        ))
    };
    Row::of(ORDER[1], "the dependencies are declared and locked: cargo metadata --locked succeeds", check())
}

/// X: the same major versions of Postgres, Redis and RabbitMQ everywhere.
pub async fn parity(root: &Path, backing: &Backing) -> Row {
    let check = async {
        let redis_port: u16 = backing.redis.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(6379);
        let local = parity::local(&backing.postgres, redis_port).await?;
        let declared = parity::declared(root)?;
        let mut ok = true;
        let mut parts = Vec::new();
        for service in parity::SERVICES {
            let here = local.get(service).and_then(|v| parity::major(v));
            let there: Vec<(String, Option<u32>)> =
                declared.iter().filter(|((_, s), _)| *s == service).map(|((src, _), m)| (src.clone(), *m)).collect();
            let agree = here.is_some() && !there.is_empty() && there.iter().all(|(_, m)| *m == here);
            ok &= agree;
            let others: Vec<String> =
                there.iter().map(|(src, m)| format!("{src} {}", m.map_or("?".into(), |m| m.to_string()))).collect();
            parts.push(format!(
                "{service} {} (local {}; {})",
                if agree { "agrees" } else { "DIFFERS" },
                local.get(service).map_or("?", String::as_str),
                others.join(", ")
            ));
        }
        anyhow::Ok((ok, parts.join("; ")))
    };
    Row::of(
        ORDER[9],
        "the local run, both compose files and the k8s base use the same major versions of Postgres, Redis and RabbitMQ",
        check.await,
    )
}

/// The decoys of the config check: files a program might read its
/// configuration from, each setting variables the launcher leaves unset to
/// values that do not parse (a process that read them would exit 64).
fn decoys(dir: &Path, prefix: &str) -> Result<Vec<String>> {
    let t = format!("{prefix}REQUEST_TIMEOUT_MS");
    let files = [
        (".env".to_owned(), format!("{t}=not-a-number\nSHUTDOWN_TIMEOUT=never\n")),
        ("config.toml".to_owned(), format!("{t} = \"not-a-number\"\n")),
        ("config.yaml".to_owned(), format!("{t}: not-a-number\n")),
        ("twinshop.toml".to_owned(), format!("{t} = \"not-a-number\"\n")),
        (".config/twinshop/config.toml".to_owned(), format!("{t} = \"not-a-number\"\n")),
        ("settings.json".to_owned(), format!("{{\"{t}\": \"not-a-number\"}}\n")),
    ];
    for (name, text) in &files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
    }
    Ok(files.into_iter().map(|(n, _)| n).collect())
}

fn first_service(build: Build) -> Service {
    build.services()[0]
}

/// The checks that need the running build, and the stdout/stderr of the
/// config check's copy (for the logs row).
pub async fn running(system: &System, args: &LabArgs) -> Result<(Vec<Row>, Option<Output>)> {
    let url = system.url().context("no edge")?;
    let client = Client::builder().timeout(Duration::from_secs(10)).build(&url)?;
    let mut rows = Vec::new();
    let (config, output) = match config(system).await {
        Ok((passed, evidence, output)) => ((passed, evidence), Some(output)),
        Err(e) => ((false, format!("could not check: {e:#}")), None),
    };
    rows.push(Row {
        factor: ORDER[2],
        checked: "a missing variable stops the process with exit 64 naming it; started in an empty folder (and HOME) that holds config files saying otherwise, it reads none of them".into(),
        evidence: config.1,
        passed: config.0,
    });
    rows.push(Row::of(
        ORDER[3],
        "another Redis attached by its URL alone: a copy of the process with only that variable changed uses it",
        backing(system, &client).await,
    ));
    rows.push(Row::of(
        ORDER[4],
        "the build is stamped with its release identity; every running process reports the identity of its binary, with its own configuration joined at run time",
        build_release_run(system).await,
    ));
    rows.push(Row::of(
        ORDER[5],
        "a token issued by one replica is accepted by the other; an order placed through one replica is read through the other after the first was SIGKILLed",
        processes(system, &client).await,
    ));
    rows.push(Row::of(
        ORDER[6],
        "each process owns its listening sockets (its ports from the environment) and serves HTTP on them itself",
        port_binding(system).await,
    ));
    rows.push(Row::of(
        ORDER[7],
        "scaled out by process: requests through the edge are served by both replicas",
        concurrency(system, &client).await,
    ));
    rows.push(Row::of(
        ORDER[8],
        "under load, one replica of each service is SIGTERMed and replaced: it drains and exits 0, its successor is ready fast, no request fails",
        disposability(system, &client, args).await,
    ));
    rows.push(Row::of(
        ORDER[11],
        "the binary's one-off `migrate` against a fresh database applies the migrations and exits 0; run again, it changes nothing",
        admin(system).await,
    ));
    Ok((rows, output))
}

/// III.
async fn config(system: &System) -> Result<(bool, String, Output)> {
    let service = first_service(system.build());
    let p = system.process(ProcessId::new(service, 1))?;
    let prefix = service.env_prefix();
    let env = copy::env_of(p.pid.context("not running")?)?;
    let dir = copy::empty_dir(&format!("config-{}", service.name()))?;
    let variable = format!("{prefix}DATABASE_URL");
    let missing =
        copy::run_once(&p.program, &[], &copy::changed(&env, &[(variable.clone(), String::new())]), &dir).await?;
    let missing_ok = missing.code == Some(64) && missing.stderr.contains(&variable);
    let names = decoys(&dir, prefix)?;
    let home = dir.display().to_string();
    let t = Instant::now();
    let copy = Copy::start(&p, prefix, &[("HOME".into(), home)], &dir).await;
    let (started_ok, started) = match copy {
        Ok(c) => {
            let ready = t.elapsed().as_secs_f64();
            let output = c.stop().await?;
            (output.code == Some(0), (format!("ready in {ready:.1} s, exited {:?} on SIGTERM", output.code), output))
        }
        Err(e) => (
            false,
            (format!("did not start: {e:#}"), Output { stdout_lines: vec![], stderr: String::new(), code: None }),
        ),
    };
    let _ = std::fs::remove_dir_all(&dir);
    let evidence = format!(
        "without {variable}: exit {:?}, stderr {:?}; in an empty folder as cwd and HOME holding {} (each setting {prefix}REQUEST_TIMEOUT_MS to a value that does not parse): {}",
        missing.code,
        missing.stderr.trim(),
        names.join(", "),
        started.0
    );
    Ok((missing_ok && started_ok, evidence, started.1))
}

/// IV.
async fn backing(system: &System, client: &Client) -> Result<(bool, String)> {
    let service = first_service(system.build());
    let p = system.process(ProcessId::new(service, 1))?;
    let port = twinshop_launcher::ports::free_port()?;
    let mut redis = tokio::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting a second redis-server")?;
    let result = async {
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            ensure!(Instant::now() < deadline, "the second Redis did not open its port");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let variable = format!("{}REDIS_URL", service.env_prefix());
        let dir = copy::empty_dir("backing")?;
        let copy = Copy::start(&p, service.env_prefix(), &[(variable.clone(), format!("redis://127.0.0.1:{port}"))], &dir).await?;
        let before = dbsize(port)?;
        // A user lookup goes through the cache: the user service's internal
        // lookup; in the monolith, an order's (the lookup is in-process).
        let (user, session) = client
            .sign_up(&workload_user("backing"))
            .await
            .context("signing up")?;
        let used = match system.build() {
            Build::Microservices => {
                let dir = UserDirectory::new(&copy.internal_url)?;
                dir.user(user.id).await?.is_some()
            }
            Build::Monolith => {
                session.top_up(10_000, Some("backing-setup")).await?;
                let products = client.products().await?;
                let own = Client::builder().timeout(Duration::from_secs(10)).build(&copy.public_url)?;
                own.as_user(session.bearer().clone())
                    .place_order(&[OrderItem::new(products[0].id.clone(), 1)], Some("backing-order"))
                    .await
                    .is_ok()
            }
        };
        let after = dbsize(port)?;
        let running = identity::of_process(&copy.internal_url).await?;
        let original = identity::of_process(&p.internal_url()).await?;
        let stopped = copy.stop().await?;
        let _ = std::fs::remove_dir_all(&dir);
        let ok = used && after > before && running.identity == original.identity && stopped.code == Some(0);
        anyhow::Ok((
            ok,
            format!(
                "a copy of {} with {variable} alone pointing at a second Redis (127.0.0.1:{port}): a lookup answered ({used}), the second Redis went from {before} to {after} keys; same binary and release ({})",
                p.id, running.identity.release
            ),
        ))
    }
    .await;
    let _ = redis.kill().await;
    result
}

fn dbsize(port: u16) -> Result<u64> {
    let out = std::process::Command::new("redis-cli").args(["-p", &port.to_string(), "DBSIZE"]).output()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().context("redis-cli DBSIZE")
}

fn workload_user(label: &str) -> twinshop_client::NewUser {
    let run = uuid::Uuid::now_v7().simple().to_string();
    twinshop_client::NewUser {
        email: format!("{label}-{run}@twelve-factor.example"),
        password: "correct horse battery staple".into(),
        name: "Twelve".into(),
        address: Some(twinshop_client::Address {
            line1: "12 Factor Street".into(),
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: "DE".into(),
        }),
    }
}

/// V.
async fn build_release_run(system: &System) -> Result<(bool, String)> {
    let mut ok = true;
    let mut fingerprints = std::collections::BTreeSet::new();
    let mut release = String::new();
    let procs = system.processes();
    for p in &procs {
        let binary = identity::of_binary(&p.program)?;
        let running = identity::of_process(&p.internal_url()).await?;
        ok &= binary == running.identity && binary.release != "unknown" && binary.commit != "unknown";
        fingerprints.insert(running.fingerprint);
        release = running.identity.release;
    }
    // Replicas of one service differ in their ports: one build, several configs.
    ok &= fingerprints.len() == procs.len();
    Ok((
        ok,
        format!(
            "{} processes: build_info on /metrics = their binary's --version (release {}); {} distinct config fingerprints (config_info) on one build",
            procs.len(),
            identity::short(&release),
            fingerprints.len()
        ),
    ))
}

/// VI.
async fn processes(system: &System, client: &Client) -> Result<(bool, String)> {
    let (first, order) = match system.build() {
        Build::Microservices => (Service::User, Service::Order),
        Build::Monolith => (Service::Monolith, Service::Monolith),
    };
    let at = |id: ProcessId| -> Result<Client> { Ok(client.at(&system.process(id)?.public_url())?) };
    let new = workload_user("stateless");
    client.register(&new).await?;
    let session = at(ProcessId::new(first, 1))?.authenticate(&new.email, &new.password).await?;
    let bearer = session.bearer().clone();
    let me_elsewhere = at(ProcessId::new(first, 2))?.as_user(bearer.clone()).me().await.is_ok();
    client.as_user(bearer.clone()).top_up(10_000, Some("stateless-setup")).await?;
    let products = client.products().await?;
    let placed = at(ProcessId::new(order, 1))?
        .as_user(bearer.clone())
        .place_order(&[OrderItem::new(products[0].id.clone(), 1)], Some("stateless-order"))
        .await?;
    let victim = ProcessId::new(order, 1);
    system.kill(victim).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let read = at(ProcessId::new(order, 2))?.as_user(bearer.clone()).order(placed.id).await;
    let kept = read.as_ref().is_ok_and(|o| o.id == placed.id && o.total_cents == placed.total_cents);
    system.start_process(victim).await.context("starting the killed replica again")?;
    Ok((
        me_elsewhere && kept,
        format!(
            "token from {}-1 accepted by {}-2: {me_elsewhere}; order {} placed through {victim}, {victim} SIGKILLed, read through {}-2: {}",
            first.name(),
            first.name(),
            placed.id,
            order.name(),
            if kept { "the same order" } else { "missing" }
        ),
    ))
}

/// The inodes of the TCP sockets listening on `port` (`/proc/net/tcp*`).
fn listening_inodes(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEX_IP:HEX_PORT, st 0A is LISTEN, inode is field 9.
            let local_port = f.get(1).and_then(|a| a.rsplit(':').next()).and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port)
                && f.get(3) == Some(&"0A")
                && let Some(inode) = f.get(9)
            {
                out.push((*inode).to_owned());
            }
        }
    }
    out
}

/// Whether process `pid` holds socket `inode`.
fn holds(pid: u32, inode: &str) -> bool {
    let want = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.flatten().any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == want)))
        .unwrap_or(false)
}

/// VII.
async fn port_binding(system: &System) -> Result<(bool, String)> {
    let procs = system.processes();
    let mut owned = 0;
    for p in &procs {
        let pid = p.pid.context("not running")?;
        for port in [p.http_port, p.internal_port] {
            if listening_inodes(port).iter().any(|inode| holds(pid, inode)) {
                owned += 1;
            }
        }
    }
    let catalog = match system.build() {
        Build::Microservices => Service::Order,
        Build::Monolith => Service::Monolith,
    };
    let p = system.process(ProcessId::new(catalog, 1))?;
    let direct = Client::builder().timeout(Duration::from_secs(5)).build(&p.public_url())?;
    let answered = direct.products().await.is_ok();
    Ok((
        owned == procs.len() * 2 && answered,
        format!(
            "{owned} of {} listening sockets held by their own process (/proc/net/tcp inode in /proc/PID/fd); {} answers GET /v1/products on {} itself: {answered}",
            procs.len() * 2,
            p.id,
            p.public_url()
        ),
    ))
}

/// `http_requests_total` of route `/v1/products` at `internal_url`.
async fn product_requests(internal_url: &str) -> Result<f64> {
    let client = Client::builder().timeout(Duration::from_secs(5)).build(internal_url)?;
    let text = client.get("/metrics").send().await?.text().into_owned();
    Ok(text
        .lines()
        .filter(|l| l.starts_with("http_requests_total{") && l.contains("route=\"/v1/products\""))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum())
}

/// VIII.
async fn concurrency(system: &System, client: &Client) -> Result<(bool, String)> {
    let service = match system.build() {
        Build::Microservices => Service::Order,
        Build::Monolith => Service::Monolith,
    };
    let ids = [ProcessId::new(service, 1), ProcessId::new(service, 2)];
    let mut before = Vec::new();
    for id in ids {
        before.push(product_requests(&system.process(id)?.internal_url()).await?);
    }
    let n = 40;
    for _ in 0..n {
        client.products().await?;
    }
    let mut served = Vec::new();
    for (id, b) in ids.iter().zip(before) {
        served.push((id.to_string(), product_requests(&system.process(*id)?.internal_url()).await? - b));
    }
    let ok = served.iter().all(|(_, s)| *s > 0.0) && served.iter().map(|(_, s)| s).sum::<f64>() >= f64::from(n);
    Ok((
        ok,
        format!(
            "{n} GET /v1/products through the edge: {} (http_requests_total of each process)",
            served.iter().map(|(id, s)| format!("{id} served {s:.0}")).collect::<Vec<_>>().join(", ")
        ),
    ))
}

/// IX.
async fn disposability(system: &System, client: &Client, args: &LabArgs) -> Result<(bool, String)> {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let shoppers = workload::shoppers(client, 6, 100_000, &format!("{run}12f")).await?;
    let catalog = Arc::new(client.products().await?);
    let history = Arc::new(History::new());
    let wl = Workload { shoppers, catalog, history: history.clone() };
    let stop = CancellationToken::new();
    let driver =
        tokio::spawn(workload::drive(wl, 15.0, args.seed, stop.clone(), Instant::now() + Duration::from_secs(300)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut steps = Vec::new();
    let result = async {
        for &s in system.build().services() {
            let id = ProcessId::new(s, 1);
            steps.push((id, system.replace(id, None).await?));
        }
        anyhow::Ok(())
    }
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    driver.await.context("the workload")?;
    result?;
    let attempts = history.attempts();
    let failures = rolling::failures(&attempts);
    let failed: usize = failures.values().sum();
    let drained = steps.iter().all(|(_, s)| s.exit.as_ref().is_some_and(|e| e.code == Some(0) && e.expected));
    let slowest = steps.iter().map(|(_, s)| s.start_to_ready.as_secs_f64()).fold(0.0, f64::max);
    let parts: Vec<String> = steps
        .iter()
        .map(|(id, s)| {
            format!(
                "{id}: {} after {:.2} s, ready again in {:.2} s",
                s.exit.as_ref().map_or("?".into(), twinshop_launcher::ExitInfo::reason),
                s.stop.as_secs_f64(),
                s.start_to_ready.as_secs_f64()
            )
        })
        .collect();
    Ok((
        failed == 0 && drained && slowest < 10.0 && !attempts.is_empty(),
        format!("{}; {} requests under load, {failed} failed {failures:?}", parts.join("; "), attempts.len()),
    ))
}

/// XI: every line the processes wrote is a JSON object, and the copy of the
/// config check wrote JSON to stdout and nothing to stderr.
pub fn logs(dir: &Path, copy: Option<&Output>) -> Row {
    let check = || -> Result<(bool, String)> {
        let (mut files, mut lines, mut bad) = (0, 0, Vec::new());
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "log")
                || path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("edge"))
            {
                continue;
            }
            files += 1;
            for line in std::fs::read_to_string(&path)?.lines() {
                lines += 1;
                if !serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v.is_object()) && bad.len() < 3 {
                    bad.push(format!("{}: {line}", path.display()));
                }
            }
        }
        let Some(copy) = copy else { bail!("the config check's copy did not run") };
        let json_out =
            copy.stdout_lines.iter().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v.is_object()));
        let ok = files > 0
            && lines > 0
            && bad.is_empty()
            && json_out
            && !copy.stdout_lines.is_empty()
            && copy.stderr.is_empty();
        Ok((
            ok,
            format!(
                "{lines} lines in {files} process logs, {} not JSON{}; a copy's stdout: {} lines, all JSON objects: {json_out}; its stderr: {} bytes",
                bad.len(),
                if bad.is_empty() { String::new() } else { format!(" ({})", bad.join(" | ")) },
                copy.stdout_lines.len(),
                copy.stderr.len()
            ),
        ))
    };
    Row::of(
        ORDER[10],
        "every log line of every process is a JSON event, written to stdout (stderr stays empty)",
        check(),
    )
}

/// The applied migrations of the database at `url`, per schema.
async fn migrations(url: &str) -> Result<BTreeMap<String, i64>> {
    let mut db = PgConnection::connect(url).await?;
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT table_schema::text FROM information_schema.tables WHERE table_name = '_sqlx_migrations'",
    )
    .fetch_all(&mut db)
    .await?;
    let mut out = BTreeMap::new();
    for s in schemas {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM \"{s}\"._sqlx_migrations")))
            .fetch_one(&mut db)
            .await?;
        out.insert(s, n);
    }
    Ok(out)
}

/// XII.
async fn admin(system: &System) -> Result<(bool, String)> {
    let service = match system.build() {
        Build::Microservices => Service::Order,
        Build::Monolith => Service::Monolith,
    };
    let p = system.process(ProcessId::new(service, 1))?;
    let backing = &system.plan().backing;
    let name = format!("twinshop_12f_{}", uuid::Uuid::now_v7().simple());
    let mut admin_db = PgConnection::connect(&format!("{}/postgres", backing.postgres)).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin_db).await?;
    let url = format!("{}/{name}{}", backing.postgres, backing.postgres_params);
    let result = async {
        let env = copy::changed(
            &copy::env_of(p.pid.context("not running")?)?,
            &[(format!("{}DATABASE_URL", service.env_prefix()), url.clone())],
        );
        let dir = copy::empty_dir("admin")?;
        let first = copy::run_once(&p.program, &["migrate"], &env, &dir).await?;
        let applied = migrations(&url).await?;
        let again = copy::run_once(&p.program, &["migrate"], &env, &dir).await?;
        let still = migrations(&url).await?;
        let _ = std::fs::remove_dir_all(&dir);
        let total: i64 = applied.values().sum();
        anyhow::Ok((
            first.code == Some(0) && again.code == Some(0) && total > 0 && applied == still,
            format!(
                "`{} migrate` (the same binary and environment as {}) on a fresh database: exit {:?}, {total} migrations recorded {applied:?}; again: exit {:?}, {}",
                p.program.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                p.id,
                first.code,
                again.code,
                if applied == still { "nothing changed" } else { "CHANGED" }
            ),
        ))
    }
    .await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .execute(&mut admin_db)
        .await;
    result
}
