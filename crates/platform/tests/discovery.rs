//! Client-side discovery against the real thing: a real dnsmasq answering
//! several A records, a real etcd holding the registrations, and replicas
//! serving the real gRPC `Payments` server and HTTP user lookup (over an
//! in-memory provider) on one port each, at their own loopback addresses
//! (127.0.0.2, .3, ...), as pods at their own IPs.
//!
//! In both modes: calls spread over three replicas; one crashes (its
//! runtime is dropped: sockets close, nothing is revoked) and callers stop
//! using it after one failed call; discovery then forgets it (the record
//! is removed / the lease expires); a fourth appears and gets calls. In the
//! registry, a replica stopped gracefully leaves at once (lease revoked).

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::Router;
use twinshop_contracts::internal::{
    CallError, Charge, ChargeOutcome, Payments, Refund, RefundOutcome, UserCard, UserLookup,
};
use twinshop_platform::{
    discovery::{Balancer, dns, etcd},
    links::{InternalServer, Link, payments::BalancedPayments, user_lookup::BalancedUserLookup},
    shutdown::Shutdown,
};
use twinshop_testkit::{eventually, free_port};
use uuid::Uuid;

/// Calls per replica (a replica's own count of what it served).
type Counts = Arc<Mutex<BTreeMap<(IpAddr, &'static str), u32>>>;

fn count(counts: &Counts, ip: IpAddr, what: &'static str) {
    *counts.lock().unwrap_or_else(PoisonError::into_inner).entry((ip, what)).or_default() += 1;
}

fn counted(counts: &Counts, ip: IpAddr, what: &'static str) -> u32 {
    counts.lock().unwrap_or_else(PoisonError::into_inner).get(&(ip, what)).copied().unwrap_or(0)
}

/// The in-memory provider of both contracts at one replica.
struct Provider {
    ip: IpAddr,
    counts: Counts,
}

#[async_trait::async_trait]
impl Payments for Provider {
    async fn charge(&self, _: Uuid, _: Uuid, amount_cents: i64, _: Duration) -> Result<Charge, CallError> {
        count(&self.counts, self.ip, "charge");
        Ok(Charge { outcome: ChargeOutcome::Charged, balance_cents: 1_000 - amount_cents })
    }
    async fn refund(&self, _: Uuid, _: Duration) -> Result<Refund, CallError> {
        Ok(Refund { outcome: RefundOutcome::NotCharged, amount_cents: 0 })
    }
}

#[async_trait::async_trait]
impl UserLookup for Provider {
    async fn lookup(&self, user_id: Uuid, _: Duration) -> Result<Option<UserCard>, CallError> {
        count(&self.counts, self.ip, "lookup");
        Ok(Some(UserCard { id: user_id, name: "Ada".into(), address: None }))
    }
}

/// A replica on its own runtime: dropping the runtime is a crash.
struct Replica {
    ip: IpAddr,
    stop: Option<std::sync::mpsc::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Replica {
    /// Serves both contracts and `/readyz` at `ip:port`; registers in etcd
    /// when `registry` is given.
    fn start(ip: IpAddr, port: u16, counts: Counts, registry: Option<(String, String)>) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<bool>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
            let shutdown = Shutdown::new();
            rt.block_on(async {
                let provider = Arc::new(Provider { ip, counts });
                let mut internal = InternalServer::default();
                <dyn UserLookup as Link>::serve(provider.clone(), &mut internal);
                <dyn Payments as Link>::serve(provider, &mut internal);
                internal.route(Router::new().route("/readyz", axum::routing::get(|| async { "ready" })));
                let router = internal.into_router();
                let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, port)).await.expect("bind");
                tokio::spawn(async move { axum::serve(listener, router).await });
                if let Some((endpoints, prefix)) = registry {
                    let registration = etcd::Registration {
                        entries: vec![
                            ("payment", format!("http://{ip}:{port}")),
                            ("user", format!("http://{ip}:{port}")),
                        ],
                        prefix,
                        ttl: Duration::from_secs(2),
                    };
                    let channel = etcd::channel(&endpoints).expect("etcd channel");
                    shutdown.spawn(etcd::register(channel, registration, shutdown.clone()));
                }
                let _ = ready_tx.send(());
            });
            // true: graceful (revoke, then stop); false: crash (drop everything).
            let graceful = stopped.recv().unwrap_or(false);
            if graceful {
                rt.block_on(shutdown.drain(Duration::from_secs(3)));
            }
            drop(rt);
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).expect("replica started");
        Self { ip, stop: Some(stop), thread: Some(thread) }
    }

    fn url(&self, port: u16) -> String {
        format!("http://{}:{port}", self.ip)
    }

    fn end(&mut self, graceful: bool) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(graceful);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.end(false);
    }
}

/// A child process killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require(binary: &str, package: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(binary))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{binary} is missing: apt-get install {package} (scripts/install-services does)"))
}

fn dnsmasq(port: u16, hosts: &Path) -> Child {
    let child = std::process::Command::new(require("dnsmasq", "dnsmasq-base"))
        .args(["--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file"])
        .args(["--listen-address=127.0.0.1", "--bind-interfaces", "--local-ttl=1", "--user=root"])
        .arg(format!("--port={port}"))
        .arg(format!("--hostsdir={}", hosts.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting dnsmasq");
    Child(child)
}

fn etcd_server(dir: &Path) -> (Child, String) {
    let (client, peer) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{client}");
    let child = std::process::Command::new(require("etcd", "etcd-server"))
        .args(["--name", "t", "--data-dir"])
        .arg(dir)
        .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-cluster", &format!("t=http://127.0.0.1:{peer}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting etcd");
    (Child(child), url)
}

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("twinshop-discovery-{label}-{}", Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The two balanced clients, as the order service builds them.
struct Callers {
    payments: Balancer<dyn Payments>,
    users: Balancer<dyn UserLookup>,
}

impl Callers {
    fn new() -> Self {
        Self {
            payments: Balancer::new("payment", <dyn Payments as Link>::connect).expect("balancer"),
            users: Balancer::new("user", <dyn UserLookup as Link>::connect).expect("balancer"),
        }
    }

    fn healthy(&self) -> (Vec<String>, Vec<String>) {
        let pick = |e: Vec<(String, bool)>| e.into_iter().filter(|(_, h)| *h).map(|(u, _)| u).collect();
        (pick(self.payments.endpoints()), pick(self.users.endpoints()))
    }

    fn known(&self) -> (Vec<String>, Vec<String>) {
        let all = |e: Vec<(String, bool)>| e.into_iter().map(|(u, _)| u).collect();
        (all(self.payments.endpoints()), all(self.users.endpoints()))
    }

    /// `n` Charges and `n` lookups, each retried (up to 3 tries) on
    /// `Unavailable` as the order area does; returns the failed attempts.
    async fn call(&self, n: usize) -> (usize, usize) {
        let (payments, users) = (BalancedPayments(self.payments.clone()), BalancedUserLookup(self.users.clone()));
        let (mut charge_failures, mut lookup_failures) = (0, 0);
        for _ in 0..n {
            let mut ok = false;
            for _ in 0..3 {
                match payments.charge(Uuid::now_v7(), Uuid::now_v7(), 100, Duration::from_secs(1)).await {
                    Ok(_) => {
                        ok = true;
                        break;
                    }
                    Err(_) => charge_failures += 1,
                }
            }
            assert!(ok, "a Charge failed three times");
            let mut ok = false;
            for _ in 0..3 {
                match users.lookup(Uuid::now_v7(), Duration::from_secs(1)).await {
                    Ok(Some(_)) => {
                        ok = true;
                        break;
                    }
                    _ => lookup_failures += 1,
                }
            }
            assert!(ok, "a lookup failed three times");
        }
        (charge_failures, lookup_failures)
    }
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

fn assert_spread(counts: &Counts, replicas: &[IpAddr], n: u32) {
    for what in ["charge", "lookup"] {
        for ip in replicas {
            let got = counted(counts, *ip, what);
            // A fair share is n / replicas; p2c keeps each well above half of it.
            assert!(got * 2 * replicas.len() as u32 >= n, "{ip} served only {got} of {n} {what} calls: {counts:?}");
        }
    }
}

fn reset(counts: &Counts) {
    counts.lock().unwrap_or_else(PoisonError::into_inner).clear();
}

/// What both modes go through; `announce(ip, on)` adds or removes a
/// replica from discovery's view (DNS record; registration is the
/// replica's own in etcd, so it is a no-op there).
async fn scenario(
    callers: &Callers,
    counts: &Counts,
    port: u16,
    start: impl Fn(IpAddr) -> Replica,
    announce: impl Fn(IpAddr, bool),
    forgotten_within: Duration,
) -> Vec<Replica> {
    let mut replicas: Vec<Replica> = (2..=4).map(|i| start(ip(i))).collect();
    for r in &replicas {
        announce(r.ip, true);
    }
    let urls = |rs: &[&Replica]| rs.iter().map(|r| r.url(port)).collect::<Vec<_>>();
    let three = urls(&replicas.iter().collect::<Vec<_>>());
    eventually("three endpoints of each link", Duration::from_secs(10), || async {
        (callers.known() == (three.clone(), three.clone())).then_some(())
    })
    .await;
    assert_eq!(callers.call(300).await, (0, 0), "no call fails while all replicas serve");
    assert_spread(counts, &[ip(2), ip(3), ip(4)], 300);

    // A crash: one failed attempt per link, then nothing goes there.
    replicas[1].end(false);
    let (charge_failures, lookup_failures) = callers.call(100).await;
    assert_eq!((charge_failures, lookup_failures), (1, 1), "one failed attempt per link, then ejected");
    let dead = replicas[1].url(port);
    let healthy = callers.healthy();
    assert!(!healthy.0.contains(&dead) && !healthy.1.contains(&dead), "{dead} is still healthy: {healthy:?}");
    assert_eq!(callers.call(100).await, (0, 0), "the ejected replica gets no more calls");
    announce(ip(3), false);
    let two = urls(&[&replicas[0], &replicas[2]]);
    eventually("the dead replica forgotten", forgotten_within, || async {
        (callers.known() == (two.clone(), two.clone())).then_some(())
    })
    .await;

    // A new replica appears and gets its share.
    replicas.push(start(ip(5)));
    announce(ip(5), true);
    eventually("the new replica discovered", Duration::from_secs(10), || async {
        callers.known().0.contains(&replicas[3].url(port)).then_some(())
    })
    .await;
    reset(counts);
    assert_eq!(callers.call(300).await, (0, 0));
    assert_spread(counts, &[ip(2), ip(4), ip(5)], 300);
    replicas
}

#[tokio::test]
async fn with_dns_calls_spread_a_crashed_replica_is_ejected_at_once_and_a_new_one_is_found() {
    let (dir, dns_port, port) = (temp_dir("dns"), free_port(), free_port());
    let _dns = dnsmasq(dns_port, &dir);
    let counts = Counts::default();
    let callers = Callers::new();
    let shutdown = Shutdown::new();
    let resolver = dns::resolver(Some(SocketAddr::from(([127, 0, 0, 1], dns_port)))).expect("resolver");
    let target = |name: &str| dns::Target::parse(&format!("http://{name}.discovery.test:{port}")).expect("url");
    tokio::spawn(dns::follow(callers.payments.clone(), target("payment"), resolver.clone(), shutdown.clone()));
    tokio::spawn(dns::follow(callers.users.clone(), target("user"), resolver, shutdown.clone()));
    tokio::spawn(callers.payments.clone().probe_until(shutdown.clone()));
    tokio::spawn(callers.users.clone().probe_until(shutdown.clone()));
    // One hosts file per replica, as an endpoints controller would keep them.
    let announce = |ip: IpAddr, on: bool| {
        let file = dir.join(ip.to_string());
        if on {
            std::fs::write(&file, format!("{ip} payment.discovery.test user.discovery.test\n")).expect("hosts file");
        } else {
            std::fs::remove_file(&file).expect("hosts file");
        }
    };
    let replicas = scenario(
        &callers,
        &counts,
        port,
        |ip| Replica::start(ip, port, counts.clone(), None),
        announce,
        // The record's TTL is 1 s: the next resolution drops it.
        Duration::from_secs(4),
    )
    .await;
    shutdown.trigger();
    drop(replicas);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn with_the_etcd_registry_replicas_register_themselves_expire_when_they_crash_and_leave_when_stopped() {
    let (dir, port) = (temp_dir("etcd"), free_port());
    let (_etcd, endpoints) = etcd_server(&dir);
    let prefix = format!("/test-{}/", Uuid::now_v7().simple());
    let counts = Counts::default();
    let callers = Callers::new();
    let shutdown = Shutdown::new();
    let channel = etcd::channel(&endpoints).expect("channel");
    let watch = |service| etcd::service_prefix(&prefix, service);
    tokio::spawn(etcd::follow(callers.payments.clone(), channel.clone(), watch("payment"), shutdown.clone()));
    tokio::spawn(etcd::follow(callers.users.clone(), channel, watch("user"), shutdown.clone()));
    tokio::spawn(callers.payments.clone().probe_until(shutdown.clone()));
    tokio::spawn(callers.users.clone().probe_until(shutdown.clone()));
    let registry = (endpoints.clone(), prefix.clone());
    let mut replicas = scenario(
        &callers,
        &counts,
        port,
        |ip| Replica::start(ip, port, counts.clone(), Some(registry.clone())),
        |_, _| {},
        // The crashed replica's lease (2 s) runs out; etcd checks leases about every 0.5 s.
        Duration::from_secs(6),
    )
    .await;

    // A graceful stop revokes the lease: gone well before its TTL.
    let stopped = std::time::Instant::now();
    let leaving = replicas[0].url(port);
    replicas[0].end(true);
    eventually("the stopped replica gone from the registry", Duration::from_secs(5), || async {
        (!callers.known().0.contains(&leaving) && !callers.known().1.contains(&leaving)).then_some(())
    })
    .await;
    assert!(
        stopped.elapsed() < Duration::from_secs(2),
        "left only after {:?}: expired, not revoked",
        stopped.elapsed()
    );
    shutdown.trigger();
    drop(replicas);
    let _ = std::fs::remove_dir_all(&dir);
}
