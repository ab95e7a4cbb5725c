//! `lab run faults`: nothing lost, whatever dies (docs/design.md §6), shown
//! the way Jepsen shows it. A steady workload of careful clients runs while
//! a nemesis kills, pauses, cuts and slows processes and restarts the
//! backing services; every answer the clients got is recorded; after the
//! last heal and a settle period a checker holds the whole history to the
//! invariants (acknowledged orders kept, one charge per order, money
//! conserved, nothing pending, stats exact, outboxes drained). Then, on two
//! replicas of everything, a rolling restart under load (0 failed requests)
//! and the idempotency lease following its holder (killed: the retry gets
//! the final answer within 2 s; paused: no second effect).
//!
//! # Layout
//! [`workload`] (the clients and their history), [`nemesis`] (the faults),
//! [`snapshot`] (reading the end state), [`checker`] (the invariants and
//! their self-test), [`rolling`] (rolling restart, leases), [`logs`] (what
//! an operator saw), [`report`].

pub mod checker;
pub mod logs;
pub mod nemesis;
pub mod report;
pub mod rolling;
pub mod snapshot;
pub mod workload;

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, Result};
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use twinshop_client::Client;
use twinshop_launcher::{Backoff, Build, LogTarget, Plan, ProcessId, RestartPolicy, Service, System};

use self::{
    checker::{Expected, Finding, Snapshot},
    nemesis::Injected,
    workload::{History, Operation, Workload},
};
use crate::{
    backing::Backing,
    common::{LabArgs, LabOutcome, say},
    proxy::DelayProxy,
};

/// Shoppers with plenty of money, and a few with little (so some orders
/// are rejected for insufficient funds: the checker must see every kind).
const RICH: usize = 20;
const POOR: usize = 4;

/// Everything one build's run produced.
#[derive(Debug, Clone, Serialize)]
pub struct BuildRun {
    pub build: &'static str,
    pub operations: Vec<Operation>,
    pub attempts: Vec<workload::Attempt>,
    pub injected: Vec<Injected>,
    pub findings: Vec<Finding>,
    pub snapshot_orders: usize,
    /// The checker's self-test on a copy of this run's own data.
    pub self_test: Vec<(String, bool, String)>,
    pub self_test_clean: bool,
    pub rolling: Option<rolling::Rolling>,
    pub leases: Vec<rolling::LeaseCase>,
    pub logs: logs::LogSummary,
    pub duration_s: f64,
    pub rate: f64,
}

/// Runs the lab (or its self-test) on each build asked for.
pub async fn run(args: &LabArgs) -> Result<LabOutcome> {
    let started_at = crate::common::now_rfc3339();
    let started = Instant::now();
    let mut runs = Vec::new();
    for build in args.builds.list() {
        say(&format!(
            "== faults lab, {} ({})",
            build.name(),
            if args.self_test {
                "self-test"
            } else if args.quick {
                "quick"
            } else {
                "full"
            }
        ));
        runs.push(Box::pin(run_build(build, args)).await.with_context(|| format!("the {} run", build.name()))?);
    }
    let doc = report::document(&runs, args, &started_at, started.elapsed().as_secs_f64());
    let passed = report::passed(&runs, args.self_test);
    for r in &runs {
        report::checks(r, args.self_test).print(&format!("{}:", r.build));
    }
    let files = crate::common::write_report(&args.out, &runs, &doc)?;
    Ok(LabOutcome { passed, files: Some(files) })
}

/// The restart policy of the lab's processes: back 2 s after any exit, as
/// a kubelet restarts a container (with a fixed, short pause).
fn restart_policy() -> RestartPolicy {
    RestartPolicy::OnExit(Backoff {
        initial: Duration::from_secs(2),
        max: Duration::from_secs(2),
        reset_after: Duration::from_secs(10),
    })
}

/// The plan of a build on the lab's backing services. The microservices'
/// order → payment link goes through the delaying proxy; the monolith's
/// database link does.
fn plan(build: Build, args: &LabArgs, backing: &Backing, proxy: &DelayProxy, logs: &Path, replicas: u16) -> Plan {
    let mut plan = match build {
        Build::Microservices => Plan::microservices(),
        Build::Monolith => Plan::monolith(),
    }
    .bin_dir(&args.bin_dir)
    .namespaces(true)
    .restart(restart_policy())
    .logs(LogTarget::Dir(logs.to_path_buf()));
    plan.backing = backing.for_launcher();
    let proxied = format!("127.0.0.1:{}", proxy.addr().port());
    match build {
        Build::Microservices => {
            plan = plan.env(Service::Order, "ORDER_PAYMENT_GRPC_URL", format!("http://{proxied}"));
            for s in [Service::User, Service::Payment, Service::Order] {
                plan = plan.replicas(s, replicas);
            }
        }
        Build::Monolith => {
            plan.backing.postgres = format!("postgres://postgres@{proxied}");
            plan = plan.replicas(Service::Monolith, replicas);
        }
    }
    plan
}

/// Points the proxy at what it stands in front of.
fn aim(proxy: &DelayProxy, system: &System, backing: &Backing) -> Result<()> {
    match system.build() {
        Build::Microservices => {
            let p = system.process(ProcessId::new(Service::Payment, 1))?;
            proxy.set_target(SocketAddr::from((p.address, p.internal_port)));
        }
        Build::Monolith => proxy.set_target(SocketAddr::from((Ipv4Addr::LOCALHOST, backing.postgres.port))),
    }
    Ok(())
}

async fn run_build(build: Build, args: &LabArgs) -> Result<BuildRun> {
    let started = Instant::now();
    let label = if build == Build::Monolith { "mono" } else { "micro" };
    let backing =
        Backing::start(label, build == Build::Microservices).await.context("the lab's own backing services")?;
    let result = with_backing(build, args, &backing, started).await;
    backing.stop().await;
    result
}

async fn with_backing(build: Build, args: &LabArgs, backing: &Backing, started: Instant) -> Result<BuildRun> {
    let logs_dir = args.out.join("logs").join(build.name());
    let _ = std::fs::remove_dir_all(&logs_dir);
    let proxy = DelayProxy::start(0, None).await?;
    if build == Build::Monolith {
        aim_monolith_early(&proxy, backing);
    }
    let system = System::start(plan(build, args, backing, &proxy, &logs_dir, 1)).await.context("starting the build")?;
    aim(&proxy, &system, backing)?;
    let outcome = faults_phase(&system, build, args, backing, &proxy).await;
    let stopped = system.stop().await;
    let (operations, attempts, injected, snapshot, expected, history_rate) = outcome?;
    stopped.context("stopping the build")?;
    let findings = checker::check(&snapshot, &expected);
    let (self_test_clean, self_test) = checker::self_test(&snapshot, &expected);
    let self_test = self_test.into_iter().map(|(n, c, s)| (n.to_owned(), c, s)).collect();
    let logs = logs::summarize(&logs_dir, &injected);

    // Two replicas of everything: rolling restart and leases.
    let (rolling, leases) = if args.self_test {
        (None, Vec::new())
    } else {
        let dir = args.out.join("logs").join(format!("{}-replicas", build.name()));
        let _ = std::fs::remove_dir_all(&dir);
        let system =
            System::start(plan(build, args, backing, &proxy, &dir, 2)).await.context("starting two replicas")?;
        if build == Build::Microservices {
            // With two payment replicas order reaches them through the
            // internal balancer: the proxy stays out of the way here.
            let p = system.process(ProcessId::new(Service::Payment, 1))?;
            proxy.set_target(SocketAddr::from((p.address, p.internal_port)));
        }
        let result = replicas_phase(&system, args).await;
        let stopped = system.stop().await;
        let out = result?;
        stopped.context("stopping the replicas")?;
        (Some(out.0), out.1)
    };
    Ok(BuildRun {
        build: build.name(),
        operations,
        attempts,
        injected,
        findings,
        snapshot_orders: snapshot.orders.len(),
        self_test,
        self_test_clean,
        rolling,
        leases,
        logs,
        duration_s: started.elapsed().as_secs_f64(),
        rate: history_rate,
    })
}

/// The monolith's database link goes through the proxy from the start
/// (the launcher creates its database through it).
fn aim_monolith_early(proxy: &DelayProxy, backing: &Backing) {
    proxy.set_target(SocketAddr::from((Ipv4Addr::LOCALHOST, backing.postgres.port)));
}

type Phase = (Vec<Operation>, Vec<workload::Attempt>, Vec<Injected>, Snapshot, Expected, f64);

async fn faults_phase(
    system: &System,
    build: Build,
    args: &LabArgs,
    backing: &Backing,
    proxy: &DelayProxy,
) -> Result<Phase> {
    let url = system.url().context("no edge")?;
    let client = Client::builder().timeout(Duration::from_secs(5)).build(&url)?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let mut shoppers = workload::shoppers(&client, RICH, 100_000, &format!("{run}r")).await?;
    shoppers.extend(workload::shoppers(&client, POOR, 1_500, &format!("{run}p")).await?);
    let catalog = Arc::new(client.products().await?);
    let history = Arc::new(History::new());
    let wl = Workload { shoppers: shoppers.clone(), catalog: catalog.clone(), history: history.clone() };
    let rate = if args.quick { 15.0 } else { 25.0 };
    let stop = CancellationToken::new();
    let give_up = Instant::now() + Duration::from_secs(if args.quick { 300 } else { 900 });
    let driver = tokio::spawn(workload::drive(wl, rate, args.seed, stop.clone(), give_up));
    tokio::time::sleep(Duration::from_secs(if args.quick { 3 } else { 8 })).await;

    let injected = if args.self_test {
        tokio::time::sleep(Duration::from_secs(15)).await;
        Vec::new()
    } else {
        let faults = nemesis::schedule(build, args.quick);
        let targets = nemesis::Targets { system, backing, proxy };
        let gap = Duration::from_secs(if args.quick { 5 } else { 8 });
        nemesis::run(&faults, &targets, &history, gap).await?
    };
    // Cancel the last confirmed orders too, so every kind of record exists.
    tokio::time::sleep(Duration::from_secs(if args.quick { 3 } else { 8 })).await;
    stop.cancel();
    say("  waiting for every operation's definite answer");
    driver.await.context("the workload")?;

    let users: Vec<(uuid::Uuid, uuid::Uuid, i64)> =
        shoppers.iter().map(|s| (s.id, s.setup_top_up, s.initial_cents)).collect();
    let operations = history.operations();
    let expected = Expected::from_history(&users, &operations);
    say("  settling (events, sweeper), then checking");
    let amqp = backing.rabbitmq.as_ref().map(crate::backing::Instance::url);
    let deadline = Instant::now() + Duration::from_secs(90);
    let snapshot = loop {
        let s = snapshot::read(system, &shoppers, amqp.as_deref()).await?;
        let clean = checker::check(&s, &expected).iter().all(|f| f.violations.is_empty());
        if clean || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let mut injected = injected;
    let attempts = history.attempts();
    for f in &mut injected {
        f.recovered = attempts
            .iter()
            .filter(|a| a.kind == workload::OpKind::Place && a.outcome == workload::Outcome::Ok && a.at >= f.healed)
            .map(|a| a.at + a.latency_ms / 1e3)
            .reduce(f64::min);
    }
    Ok((operations, attempts, injected, snapshot, expected, rate))
}

async fn replicas_phase(system: &System, args: &LabArgs) -> Result<(rolling::Rolling, Vec<rolling::LeaseCase>)> {
    let url = system.url().context("no edge")?;
    let client = Client::builder().timeout(Duration::from_secs(5)).build(&url)?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let shoppers = workload::shoppers(&client, 10, 200_000, &format!("{run}roll")).await?;
    let catalog = Arc::new(client.products().await?);
    let history = Arc::new(History::new());
    let wl = Workload { shoppers, catalog: catalog.clone(), history };
    say("  rolling restart of every process under load");
    let rolling = rolling::rolling_restart(system, &wl, if args.quick { 15.0 } else { 25.0 }, args.seed).await?;
    say("  leases: the holder killed, then paused");
    let killed = rolling::lease_case(system, &client, &catalog, false).await?;
    let paused = rolling::lease_case(system, &client, &catalog, true).await?;
    Ok((rolling, vec![killed, paused]))
}
