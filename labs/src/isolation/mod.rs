//! `lab run isolation`: failure domains, measured (seed 1.1 and 1.2).
//!
//! The same fault in the same area, under the same steady probes, against
//! each build, every process under the memory and CPU limits of its
//! Kubernetes manifest (cgroups, through the launcher):
//!
//! - **A memory leak in the user area** (the stats consumer and its
//!   requests keep what they allocate). In the monolith the one process is
//!   OOM-killed and every endpoint group fails until it is back; in the
//!   microservices only the user service dies: the catalog, the wallet and
//!   order reads keep answering, and placing an order fails fast with
//!   `503 dependency_unavailable`.
//! - **A CPU burn in the user area** (a noisy neighbour). Inside the
//!   monolith it eats the CPU quota the other areas share, and their p99
//!   rises; across processes each service has its own quota.
//!
//! Measured per endpoint group: availability during the fault, time to
//! detect (the first failure after the fault began), time to recover.

pub mod report;

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, Result, ensure};
use serde::Serialize;
use serde_json::json;
use twinshop_client::{Address, Client, Method, NewUser, OrderItem};
use twinshop_launcher::{Backoff, Build, EventKind, LogTarget, Plan, ProcessId, RestartPolicy, Service, System};

use crate::{
    common::{LabArgs, LabOutcome, say},
    manifests,
    probe::{self, Probes, Sample},
};

/// The runaway loop: more spinning threads than any process's CPU quota,
/// so only the quota limits what it takes.
pub const BURN: f64 = 2.0;

/// Seconds after each switch of the burn that belong to neither window:
/// the switch itself is a request to the burning process, and its threads
/// take a moment to start and stop.
pub const SETTLE: f64 = 0.5;

/// The endpoint groups, and the area that serves each.
pub const GROUPS: [(&str, &str); 5] = [
    ("catalog", "order"),
    ("wallet", "payment"),
    ("order reads", "order"),
    ("profile", "user"),
    ("place order", "order → user → payment"),
];

/// One build's run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub build: &'static str,
    /// `(service, memory MiB, cpu cores)` from the manifests.
    pub limits: Vec<(String, u64, f64)>,
    pub samples: Vec<Sample>,
    /// When the leak was switched on, the OOM kill, and the process ready again.
    pub leak_on: f64,
    pub killed: Option<f64>,
    pub back: Option<f64>,
    /// The process the kernel killed, and how the launcher saw it end.
    pub victim: String,
    pub exit: String,
    /// The burn, switched on and off several times: the calm windows and
    /// the burn windows the p99s are measured in (`[from, to)` seconds,
    /// each without its first [`SETTLE`] seconds after a switch).
    pub calm: Vec<(f64, f64)>,
    pub burn: Vec<(f64, f64)>,
    /// Cores the burning process used while it burned, and its quota.
    pub burn_used: f64,
    pub quota: f64,
}

fn plan(build: Build, args: &LabArgs, logs: &std::path::Path) -> Result<Plan> {
    let mut plan = match build {
        Build::Microservices => Plan::microservices(),
        Build::Monolith => Plan::monolith(),
    }
    .bin_dir(&args.bin_dir)
    .logs(LogTarget::Dir(logs.to_path_buf()))
    .restart(RestartPolicy::OnExit(Backoff {
        initial: Duration::from_secs(2),
        max: Duration::from_secs(2),
        reset_after: Duration::from_secs(10),
    }));
    let services: &[Service] = match build {
        Build::Microservices => &[Service::User, Service::Payment, Service::Order],
        Build::Monolith => &[Service::Monolith],
    };
    for s in services {
        plan = plan.limits(*s, manifests::limits(*s)?).env(*s, format!("{}FAULTS_ENABLED", s.env_prefix()), "true");
    }
    Ok(plan)
}

/// A shopper with money and one confirmed order, for the probes.
async fn shopper(shop: &Client) -> Result<(twinshop_client::Bearer, uuid::Uuid)> {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let new = NewUser {
        email: format!("iso-{run}@labs.example"),
        password: "correct horse battery staple".into(),
        name: "Iso".into(),
        address: Some(Address {
            line1: "1 Iso St".into(),
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: "DE".into(),
        }),
    };
    let (_, user) = shop.sign_up(&new).await?;
    for i in 0..5 {
        user.top_up(1_000_000, Some(&format!("iso-{i}"))).await?;
    }
    let order = user.place_order(&[OrderItem::new("sku-chocolate", 1)], Some("iso-first")).await?;
    Ok((user.bearer().clone(), order.id))
}

fn probes(shop: &Client, bearer: twinshop_client::Bearer, order: uuid::Uuid) -> Probes {
    let p = Probes::new();
    let every = Duration::from_millis(100);
    let c = shop.clone();
    p.spawn(
        "catalog",
        every,
        Arc::new(move || {
            let c = c.clone();
            Box::pin(async move { c.get("/v1/products").send().await })
        }),
    );
    let (c, b) = (shop.clone(), bearer.clone());
    p.spawn(
        "wallet",
        every,
        Arc::new(move || {
            let (c, b) = (c.clone(), b.clone());
            Box::pin(async move { c.get("/v1/wallet").bearer(&b).send().await })
        }),
    );
    let (c, b) = (shop.clone(), bearer.clone());
    p.spawn(
        "order reads",
        every,
        Arc::new(move || {
            let (c, b) = (c.clone(), b.clone());
            Box::pin(async move { c.get(format!("/v1/orders/{order}")).bearer(&b).send().await })
        }),
    );
    let (c, b) = (shop.clone(), bearer.clone());
    p.spawn(
        "profile",
        every,
        Arc::new(move || {
            let (c, b) = (c.clone(), b.clone());
            Box::pin(async move { c.get("/v1/users/me").bearer(&b).send().await })
        }),
    );
    let (c, b) = (shop.clone(), bearer);
    p.spawn(
        "place order",
        Duration::from_millis(200),
        Arc::new(move || {
            let (c, b) = (c.clone(), b.clone());
            Box::pin(async move {
                let key = uuid::Uuid::now_v7().to_string();
                c.post("/v1/orders")
                    .bearer(&b)
                    .idempotency_key(Some(&key))
                    .json(&json!({"items": [{"product_id": "sku-chocolate", "quantity": 1}]}))
                    .send()
                    .await
            })
        }),
    );
    p
}

async fn set_faults(system: &System, build: Build, flags: serde_json::Value) -> Result<()> {
    let id = match build {
        Build::Microservices => ProcessId::new(Service::User, 1),
        Build::Monolith => ProcessId::new(Service::Monolith, 1),
    };
    let internal = Client::new(&system.process(id)?.internal_url())?;
    let r = internal.request(Method::PUT, "/faults/user").json(&flags).send().await?;
    ensure!(r.status().is_success(), "setting fault flags: {} {:?}", r.status(), r.text());
    Ok(())
}

async fn run_build(build: Build, args: &LabArgs) -> Result<Run> {
    let logs = args.out.join("logs").join(build.name());
    let _ = std::fs::remove_dir_all(&logs);
    let plan = plan(build, args, &logs)?;
    let limits: Vec<(String, u64, f64)> = plan
        .limits
        .iter()
        .map(|(s, l)| (s.name().to_owned(), l.memory_bytes.unwrap_or(0) >> 20, l.cpu_cores.unwrap_or(0.0)))
        .collect();
    let system = System::start(plan).await.context("starting the build")?;
    let result = experiment(&system, build, args, limits).await;
    system.stop().await.context("stopping")?;
    result
}

async fn experiment(system: &System, build: Build, args: &LabArgs, limits: Vec<(String, u64, f64)>) -> Result<Run> {
    let shop = Client::builder().timeout(Duration::from_secs(3)).build(&system.url().context("no edge")?)?;
    let (bearer, order) = shopper(&shop).await?;
    let p = probes(&shop, bearer, order);
    let victim = match build {
        Build::Microservices => ProcessId::new(Service::User, 1),
        Build::Monolith => ProcessId::new(Service::Monolith, 1),
    };
    // The burn alternates with calm `cycles` times, so that a slow moment
    // of the machine lands in both kinds of window alike.
    let (warm, leak_kib, cycles, calm_s, burn_s) =
        if args.quick { (3.0, 4096, 4, 3.0, 3.0) } else { (8.0, 1024, 6, 5.0, 5.0) };
    tokio::time::sleep(Duration::from_secs_f64(warm)).await;

    // The leak: on until the kernel kills the process; back by the restart policy.
    say(&format!("  memory leak in the user area ({leak_kib} KiB a call)"));
    let leak_on = p.now();
    set_faults(system, build, json!({ "leak_kib": leak_kib })).await?;
    let name = victim.to_string();
    let exited = system
        .events()
        .wait_for(Duration::from_secs(120), |e| e.process == name && matches!(e.kind, EventKind::Exited(_)))
        .await
        .context("the leaking process was never killed")?;
    let killed = p.now();
    let exit = match &exited.kind {
        EventKind::Exited(info) => info.reason(),
        _ => "?".into(),
    };
    say(&format!("  {name} ended: {exit}"));
    system.supervisor(victim)?.wait_ready(Duration::from_secs(60)).await?;
    let back = p.now();
    tokio::time::sleep(Duration::from_secs(if args.quick { 4 } else { 8 })).await;

    // The burn: a noisy neighbour in the user area, on and off.
    say(&format!(
        "  CPU burn in the user area ({BURN} cores of spinning threads, more than any quota), {cycles} times {burn_s} s"
    ));
    let pid = system.process(victim)?.pid.context("the burning process has no pid")?;
    let (mut calm, mut burn, mut burned_cpu, mut burned_s) = (Vec::new(), Vec::new(), 0.0, 0.0);
    for _ in 0..cycles {
        let calm_from = p.now() + SETTLE;
        tokio::time::sleep(Duration::from_secs_f64(SETTLE + calm_s)).await;
        let switched_on = p.now();
        calm.push((calm_from, switched_on));
        set_faults(system, build, json!({ "burn_cores": BURN })).await?;
        let (cpu_before, measured_from) = (twinshop_launcher::processes::cpu_time(pid).unwrap_or_default(), p.now());
        let burn_from = measured_from + SETTLE;
        tokio::time::sleep(Duration::from_secs_f64(SETTLE + burn_s)).await;
        let cpu_after = twinshop_launcher::processes::cpu_time(pid).unwrap_or_default();
        let burn_to = p.now();
        set_faults(system, build, json!({})).await?;
        burn.push((burn_from, burn_to));
        burned_cpu += cpu_after.saturating_sub(cpu_before).as_secs_f64();
        burned_s += burn_to - measured_from;
    }
    let burn_used = burned_cpu / burned_s.max(f64::EPSILON);
    let quota = system.plan().limits.get(&victim.service).and_then(|l| l.cpu_cores).unwrap_or(0.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    p.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(Run {
        build: build.name(),
        limits,
        samples: p.samples(),
        leak_on,
        killed: Some(killed),
        back: Some(back),
        victim: name,
        exit,
        calm,
        burn,
        burn_used,
        quota,
    })
}

/// Runs the lab on each build asked for.
pub async fn run(args: &LabArgs) -> Result<LabOutcome> {
    let started_at = crate::common::now_rfc3339();
    let started = tokio::time::Instant::now();
    let mut runs = Vec::new();
    for build in args.builds.list() {
        say(&format!("== isolation lab, {}", build.name()));
        runs.push(run_build(build, args).await.with_context(|| format!("the {} run", build.name()))?);
    }
    let checks = report::checks(&runs);
    checks.print("isolation:");
    let doc = report::document(&runs, &checks, args, &started_at, started.elapsed().as_secs_f64());
    let files = crate::common::write_report(&args.out, &runs, &doc)?;
    Ok(LabOutcome { passed: checks.all_passed(), files: Some(files) })
}

/// The outage window of a run: from the kill until the process is ready again.
pub fn outage(r: &Run) -> (f64, f64) {
    (r.killed.unwrap_or(r.leak_on), r.back.unwrap_or(r.leak_on))
}

/// Availability of `group` during the outage.
pub fn outage_availability(r: &Run, group: &str) -> Option<f64> {
    let (from, to) = outage(r);
    probe::availability(&r.samples, group, from, to)
}
