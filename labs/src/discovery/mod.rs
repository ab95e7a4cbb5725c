//! `lab run discovery`: server-side vs client-side service discovery
//! (seed 4.3), measured on the spread of Charge calls over payment replicas.
//!
//! One system: a user service, four payment replicas (each in its own
//! network namespace with its own address, all on port 9082, as pods; the
//! fourth held back until the "add" step) and four order replicas, one per
//! way of finding payment:
//! - **L4** (`order-1`): one address, an nginx `stream` proxy that picks a
//!   replica per TCP connection, as kube-proxy does for a ClusterIP. gRPC
//!   keeps one HTTP/2 connection, so every call lands on one replica.
//! - **L7** (`order-2`): one address, the launcher's nginx `grpc_pass`
//!   balancer, which picks per request.
//! - **DNS** (`order-3`): dnsmasq answers one A record per replica (a
//!   headless Service); the order service resolves, re-resolves on the TTL
//!   and balances per call (`platform::discovery`).
//! - **etcd** (`order-4`): each payment replica registers itself with a
//!   lease; the order service watches the prefix and balances per call.
//!
//! Per mode: steady placements through that order replica; each payment
//! replica's own `grpc_server_handled_total` gives the spread; then the
//! busiest replica is SIGKILLed (errors, and when calls stop going to it)
//! and the fourth started (when it gets its first call).

pub mod report;
pub mod tools;

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use anyhow::{Context as _, Result};
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use twinshop_client::{Client, OrderItem, UserClient};
use twinshop_launcher::{LogTarget, Plan, PortChoice, ProcessId, Service, System};

use crate::{
    common::{LabArgs, LabOutcome, say},
    faults::workload,
};

/// How one order replica finds payment.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Mode {
    pub key: &'static str,
    pub title: &'static str,
    /// Its order replica.
    pub order: u16,
    /// Client-side: the order service picks the replica (it has per-endpoint metrics).
    pub client_side: bool,
}

pub const MODES: [Mode; 4] = [
    Mode { key: "l4", title: "server-side L4 (nginx stream, a ClusterIP)", order: 1, client_side: false },
    Mode { key: "l7", title: "server-side L7 (nginx grpc_pass)", order: 2, client_side: false },
    Mode { key: "dns", title: "client-side DNS (dnsmasq, a headless Service)", order: 3, client_side: true },
    Mode { key: "etcd", title: "client-side registry (etcd)", order: 4, client_side: true },
];

/// The payment replicas' internal port (the same in every namespace).
const PAYMENT_PORT: u16 = 9082;
/// Placements per second through the order replica under test.
const RATE: f64 = 25.0;
/// The registry lease the payment replicas take.
pub const REGISTRY_TTL_S: u64 = 5;
/// Payment replicas serving from the start; one more is added per mode.
const REPLICAS: u16 = 3;

/// One sample of the timeline: seconds since the kill step began, and the
/// counters then (`payment-N` → its Charges; `order→payment-N` → the order
/// replica's calls to it, client-side modes only).
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub at: f64,
    pub counters: BTreeMap<String, f64>,
}

/// What one mode showed.
#[derive(Debug, Clone, Serialize)]
pub struct ModeRun {
    pub mode: Mode,
    /// Charges each replica served during the spread step (its own metric).
    pub spread: BTreeMap<String, f64>,
    pub spread_s: f64,
    /// Placements during the spread step, and those not answered 201.
    pub placed: usize,
    pub failed: usize,
    /// The replica killed, and its address.
    pub killed: String,
    pub killed_address: String,
    /// Seconds (on the timeline) of the kill, of the fourth replica being
    /// ready (before the balancer, DNS or registry knew of it), and of the end.
    pub kill_at: f64,
    pub added_at: f64,
    pub end_at: f64,
    /// Placements between the kill and the add, by answer.
    pub kill_answers: BTreeMap<String, usize>,
    pub timeline: Vec<Sample>,
}

/// Everything the lab measured.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub modes: Vec<ModeRun>,
    pub rate: f64,
    pub registry_ttl_s: u64,
    pub self_test: bool,
}

fn payment(replica: u16) -> ProcessId {
    ProcessId::new(Service::Payment, replica)
}

/// Runs the lab.
pub async fn run(args: &LabArgs) -> Result<LabOutcome> {
    let started_at = crate::common::now_rfc3339();
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("twinshop-discovery-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let hosts = dir.join("hosts");
    let (etcd, etcd_url) = tools::etcd(&dir).await?;
    let (dnsmasq, dns_port) = tools::dnsmasq(&dir, &hosts)?;
    let l4_port = twinshop_launcher::ports::free_port()?;
    let prefix = format!("/twinshop-lab-{}/", std::process::id());
    let logs = args.out.join("logs");
    let _ = std::fs::remove_dir_all(&logs);
    let mut plan = Plan::microservices()
        .bin_dir(&args.bin_dir)
        .namespaces(true)
        .replicas(Service::Payment, REPLICAS + 1)
        .replicas(Service::Order, 4)
        .logs(LogTarget::Dir(logs.clone()))
        .env(Service::Payment, "PAYMENT_ETCD_ENDPOINTS", &etcd_url)
        .env(Service::Payment, "PAYMENT_REGISTRY_PREFIX", &prefix)
        .env(Service::Payment, "PAYMENT_REGISTRY_TTL_SECS", REGISTRY_TTL_S.to_string());
    // Every replica on the README's ports, in its own namespace.
    plan.ports = PortChoice::Classic { overrides: BTreeMap::new() };
    let l4_url = format!("http://127.0.0.1:{l4_port}");
    let order = |m: u16| ProcessId::new(Service::Order, m);
    plan = plan.process_env(order(1), "ORDER_PAYMENT_GRPC_URL", &l4_url);
    if args.self_test {
        // The deliberately broken setting: every order replica behind the L4 proxy.
        for m in 2..=4 {
            plan = plan.process_env(order(m), "ORDER_PAYMENT_GRPC_URL", &l4_url);
        }
    } else {
        plan = plan
            .process_env(order(3), "ORDER_PAYMENT_DISCOVERY", "dns")
            .process_env(order(3), "ORDER_PAYMENT_GRPC_URL", format!("http://{}:{PAYMENT_PORT}", tools::PAYMENT_NAME))
            .process_env(order(3), "ORDER_DNS_SERVER", format!("127.0.0.1:{dns_port}"))
            .process_env(order(4), "ORDER_PAYMENT_DISCOVERY", "etcd")
            .process_env(order(4), "ORDER_ETCD_ENDPOINTS", &etcd_url)
            .process_env(order(4), "ORDER_REGISTRY_PREFIX", &prefix);
    }
    say("== discovery lab: starting 1 user, 4 payment and 4 order replicas, each in its own namespace");
    let system = System::start(plan).await.context("starting the microservices")?;
    let outcome = async {
        let l4 = tools::L4::start(l4_port, &upstreams(&system, 1..=REPLICAS)?, LogTarget::Dir(logs)).await?;
        let measured = measure(&system, &l4, &hosts, args).await;
        l4.stop().await;
        measured
    }
    .await;
    let _ = system.stop().await;
    drop((etcd, dnsmasq));
    let modes = outcome?;
    let _ = std::fs::remove_dir_all(&dir);
    let results = Results { modes, rate: RATE, registry_ttl_s: REGISTRY_TTL_S, self_test: args.self_test };
    let checks = report::checks(&results);
    checks.print("discovery:");
    let doc = report::document(&results, &checks, args, &started_at, started.elapsed().as_secs_f64());
    let files = crate::common::write_report(&args.out, &results, &doc)?;
    // The self-test passes when the broken setting makes the checks fail.
    let passed = if args.self_test { !checks.all_passed() } else { checks.all_passed() };
    if args.self_test {
        say(&format!(
            "discovery self-test: the checks {} with every order behind the L4 proxy",
            if passed { "failed, as they must," } else { "passed (they must not)" }
        ));
    }
    Ok(LabOutcome { passed, files: Some(files) })
}

fn address(system: &System, id: ProcessId) -> Result<Ipv4Addr> {
    Ok(system.process(id)?.address)
}

fn upstreams(system: &System, replicas: impl IntoIterator<Item = u16>) -> Result<Vec<String>> {
    replicas.into_iter().map(|r| Ok(format!("{}:{PAYMENT_PORT}", address(system, payment(r))?))).collect()
}

async fn measure(system: &System, l4: &tools::L4, hosts: &Path, args: &LabArgs) -> Result<Vec<ModeRun>> {
    // The fourth replica waits outside every balancer until a mode adds it.
    system.take_out(payment(REPLICAS + 1)).await?;
    system.stop_process(payment(REPLICAS + 1)).await?;
    for r in 1..=REPLICAS {
        tools::dns_record(hosts, r, Some(address(system, payment(r))?))?;
    }
    let edge = Client::builder().timeout(Duration::from_secs(5)).build(&system.url().context("no edge")?)?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let shoppers = workload::shoppers(&edge, 16, 1_000_000, &format!("{run}d")).await?;
    let product = edge.products().await?.into_iter().next().context("the catalog is empty")?;
    let mut runs = Vec::new();
    for mode in MODES {
        say(&format!("== discovery lab: {}", mode.title));
        let url = system.process(ProcessId::new(Service::Order, mode.order))?.public_url();
        let base = Client::builder().timeout(Duration::from_secs(5)).build(&url)?;
        let users: Vec<UserClient> = shoppers.iter().map(|s| base.as_user(s.client.bearer())).collect();
        let item = OrderItem { product_id: product.id.clone(), quantity: 1 };
        runs.push(run_mode(system, l4, hosts, args, mode, Arc::new(users), item).await?);
    }
    Ok(runs)
}

/// Placements at [`RATE`] until stopped: `(seconds since start, answer)`.
#[derive(Debug, Clone, Default)]
struct Load(Arc<Mutex<Vec<(f64, String)>>>);

impl Load {
    fn start(users: Arc<Vec<UserClient>>, item: OrderItem, epoch: Instant, stop: CancellationToken) -> Self {
        let load = Self::default();
        let answers = load.0.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE));
            let mut i = 0usize;
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let (users, item, answers) = (users.clone(), item.clone(), answers.clone());
                i += 1;
                tokio::spawn(async move {
                    let at = epoch.elapsed().as_secs_f64();
                    let user = &users[i % users.len()];
                    let answer = match user.place_order(&[item], None).await {
                        Ok(_) => "201".to_owned(),
                        Err(e) => e.status().map_or_else(
                            || "no answer".to_owned(),
                            |s| format!("{} {}", s.as_u16(), e.code().unwrap_or_default()),
                        ),
                    };
                    answers.lock().unwrap_or_else(PoisonError::into_inner).push((at, answer));
                });
            }
        });
        load
    }

    fn between(&self, from: f64, to: f64) -> Vec<String> {
        let answers = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        answers.iter().filter(|(at, _)| *at >= from && *at < to).map(|(_, a)| a.clone()).collect()
    }
}

/// Every payment replica's Charges, and the order replica's calls per
/// payment endpoint (client-side modes).
async fn snapshot(mode: Mode, clients: &Clients) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (r, client) in &clients.payments {
        if let Some(v) = tools::counter(client, "grpc_server_handled_total", &[r#"grpc_method="Charge""#]).await {
            out.insert(format!("payment-{r}"), v);
        }
    }
    if mode.client_side {
        for (r, addr) in &clients.addresses {
            let endpoint = format!(r#"endpoint="http://{addr}:{PAYMENT_PORT}""#);
            let labels = [r#"link="payment""#, endpoint.as_str()];
            if let Some(v) = tools::counter(&clients.order, "discovery_calls_total", &labels).await {
                out.insert(format!("order→payment-{r}"), v);
            }
        }
    }
    out
}

struct Clients {
    payments: Vec<(u16, Client)>,
    addresses: Vec<(u16, Ipv4Addr)>,
    order: Client,
}

async fn run_mode(
    system: &System,
    l4: &tools::L4,
    hosts: &Path,
    args: &LabArgs,
    mode: Mode,
    users: Arc<Vec<UserClient>>,
    item: OrderItem,
) -> Result<ModeRun> {
    let (spread_s, kill_s, add_s) = if args.quick { (10.0, 4.0, 4.0) } else { (20.0, 8.0, 8.0) };
    let all = REPLICAS + 1;
    let mut clients = Clients {
        payments: Vec::new(),
        addresses: Vec::new(),
        order: Client::new(&system.process(ProcessId::new(Service::Order, mode.order))?.internal_url())?,
    };
    for r in 1..=all {
        let info = system.process(payment(r))?;
        let client = Client::builder().timeout(Duration::from_millis(500)).build(&info.internal_url())?;
        clients.payments.push((r, client));
        clients.addresses.push((r, info.address));
    }
    let epoch = Instant::now();
    let stop = CancellationToken::new();
    let load = Load::start(users, item, epoch, stop.clone());
    // Warm-up: connections made, endpoints discovered.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = snapshot(mode, &clients).await;
    let from = epoch.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(spread_s)).await;
    let after = snapshot(mode, &clients).await;
    let to = epoch.elapsed().as_secs_f64();
    let spread: BTreeMap<String, f64> = (1..=REPLICAS)
        .map(|r| {
            let k = format!("payment-{r}");
            let d = after.get(&k).copied().unwrap_or(0.0) - before.get(&k).copied().unwrap_or(0.0);
            (k, d)
        })
        .collect();
    let answers = load.between(from, to);
    let (placed, failed) = (answers.len(), answers.iter().filter(|a| *a != "201").count());
    let busiest = (1..=REPLICAS)
        .max_by(|a, b| spread[&format!("payment-{a}")].total_cmp(&spread[&format!("payment-{b}")]))
        .unwrap_or(1);
    let killed_address = address(system, payment(busiest))?;

    // The timeline: counters every 250 ms while one replica dies and one arrives.
    let timeline = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let sampling = CancellationToken::new();
    let t0 = Instant::now();
    let sampler = async {
        loop {
            let at = t0.elapsed().as_secs_f64();
            let counters = snapshot(mode, &clients).await;
            timeline.lock().unwrap_or_else(PoisonError::into_inner).push(Sample { at, counters });
            tokio::select! {
                () = sampling.cancelled() => break,
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    };
    let steps = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let kill_at = t0.elapsed().as_secs_f64();
        let kill_from = epoch.elapsed().as_secs_f64();
        say(&format!("  {}: SIGKILL payment-{busiest} ({killed_address})", mode.key));
        system.kill(payment(busiest)).await?;
        if mode.key == "dns" {
            // What the endpoints controller of a headless Service does.
            tools::dns_record(hosts, busiest, None)?;
        }
        tokio::time::sleep(Duration::from_secs_f64(kill_s)).await;
        let kill_to = epoch.elapsed().as_secs_f64();
        let fourth = payment(all);
        say(&format!("  {}: starting payment-{all}", mode.key));
        system.start_process(fourth).await?;
        let added_at = t0.elapsed().as_secs_f64();
        match mode.key {
            "l4" => l4.set(&upstreams(system, (1..=all).filter(|r| *r != busiest))?).await?,
            "l7" => drop(system.put_back(fourth).await?),
            "dns" => tools::dns_record(hosts, all, Some(address(system, fourth)?))?,
            _ => {} // etcd: it registers itself.
        }
        tokio::time::sleep(Duration::from_secs_f64(add_s)).await;
        Ok::<_, anyhow::Error>((kill_at, added_at, kill_from, kill_to))
    };
    let (steps, ()) = tokio::join!(
        async {
            let r = steps.await;
            sampling.cancel();
            r
        },
        sampler
    );
    stop.cancel();
    let (kill_at, added_at, kill_from, kill_to) = steps?;
    let end_at = t0.elapsed().as_secs_f64();
    let mut kill_answers = BTreeMap::new();
    for a in load.between(kill_from, kill_to) {
        *kill_answers.entry(a).or_default() += 1;
    }

    // Back to three replicas for the next mode.
    system.start_process(payment(busiest)).await?;
    system.take_out(payment(all)).await?;
    system.stop_process(payment(all)).await?;
    tools::dns_record(hosts, all, None)?;
    tools::dns_record(hosts, busiest, Some(killed_address))?;
    l4.set(&upstreams(system, 1..=REPLICAS)?).await?;
    let timeline = std::mem::take(&mut *timeline.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(ModeRun {
        mode,
        spread,
        spread_s: to - from,
        placed,
        failed,
        killed: format!("payment-{busiest}"),
        killed_address: killed_address.to_string(),
        kill_at,
        added_at,
        end_at,
        kill_answers,
        timeline,
    })
}
