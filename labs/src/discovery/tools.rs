//! The real components the discovery lab runs beside the shop, all on the
//! host's loopback (namespaced processes reach them at their gateway, TCP
//! and UDP): one etcd member (the registry), dnsmasq (the DNS server that
//! answers one A record per payment replica, from a hosts directory it
//! watches), and an nginx `stream` proxy (the L4 balancer: it picks a
//! replica per *connection*, as kube-proxy does for a ClusterIP Service).
//! Also: reading a counter from a process's `/metrics`.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context as _, Result, ensure};
use tokio::{process::Child, time::Instant};
use twinshop_client::Client;
use twinshop_launcher::{
    Events, LogTarget, RestartPolicy,
    nginx::{Files, Nginx},
    ports, prereq,
    processes::{Readiness, Signal},
};

/// A process of the lab's own, killed (with its process group) when dropped.
#[derive(Debug)]
pub struct Owned(#[allow(dead_code)] Child);

fn spawn(mut cmd: tokio::process::Command, log: &Path) -> Result<Owned> {
    let log = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let child = cmd
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .context("spawning")?;
    Ok(Owned(child))
}

/// One etcd member on `127.0.0.1:<port>`; returns it and its client URL.
pub async fn etcd(dir: &Path) -> Result<(Owned, String)> {
    prereq::ensure("etcd", "etcd-server")?;
    let (client, peer) = (ports::free_port()?, ports::free_port()?);
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut cmd = tokio::process::Command::new("etcd");
    cmd.args(["--name", "registry", "--data-dir"])
        .arg(dir.join("etcd-data"))
        .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
        .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("registry={peer_url}")]);
    let owned = spawn(cmd, &dir.join("etcd.log")).context("starting etcd")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let health = Client::new(&url)?;
    while !health.get("/health").send().await.is_ok_and(|r| r.status().is_success()) {
        ensure!(Instant::now() < deadline, "etcd did not answer within 20 s (see {})", dir.join("etcd.log").display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((owned, url))
}

/// dnsmasq on `127.0.0.1:<port>`, answering from `hosts` (one file per
/// record; it notices files added and removed by itself), every answer
/// with a TTL of 1 s.
pub fn dnsmasq(dir: &Path, hosts: &Path) -> Result<(Owned, u16)> {
    prereq::ensure("dnsmasq", "dnsmasq-base")?;
    std::fs::create_dir_all(hosts)?;
    let port = ports::free_port()?;
    let mut cmd = tokio::process::Command::new("dnsmasq");
    cmd.args(["--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file"])
        .args(["--listen-address=127.0.0.1", "--bind-interfaces", "--local-ttl=1", "--user=root", "--log-facility=-"])
        .arg(format!("--port={port}"))
        .arg(format!("--hostsdir={}", hosts.display()));
    Ok((spawn(cmd, &dir.join("dnsmasq.log")).context("starting dnsmasq")?, port))
}

/// The DNS name the payment replicas share.
pub const PAYMENT_NAME: &str = "payment.discovery.lab";

/// Puts `address` into (or takes it out of) the DNS answer for
/// [`PAYMENT_NAME`], as an endpoints controller does for a headless Service.
pub fn dns_record(hosts: &Path, replica: u16, address: Option<Ipv4Addr>) -> Result<()> {
    let file = hosts.join(format!("payment-{replica}"));
    match address {
        Some(a) => std::fs::write(&file, format!("{a} {PAYMENT_NAME}\n"))?,
        None => {
            if file.exists() {
                std::fs::remove_file(&file)?;
            }
        }
    }
    Ok(())
}

fn module() -> PathBuf {
    PathBuf::from("/usr/lib/nginx/modules/ngx_stream_module.so")
}

fn l4_conf(prefix: &Path, port: u16, upstreams: &[String]) -> Files {
    let p = prefix.display();
    let servers: String = upstreams.iter().map(|u| format!("        server {u};\n")).collect();
    let conf = format!(
        "# The discovery lab's L4 balancer: one replica per TCP connection (a ClusterIP).\n\
         load_module {module};\npid {p}/nginx.pid;\nerror_log stderr warn;\nworker_processes 1;\n\
         events {{\n    worker_connections 1024;\n}}\n\
         stream {{\n    upstream payment {{\n{servers}    }}\n\
         \x20   server {{\n        listen 127.0.0.1:{port};\n        proxy_pass payment;\n        proxy_connect_timeout 1s;\n    }}\n}}\n",
        module = module().display(),
    );
    vec![("nginx.conf", conf)]
}

/// The L4 balancer: nginx `stream` on `127.0.0.1:port`.
#[derive(Debug)]
pub struct L4 {
    pub port: u16,
    nginx: Nginx,
}

impl L4 {
    pub async fn start(port: u16, upstreams: &[String], logs: LogTarget) -> Result<Self> {
        ensure!(
            module().is_file(),
            "nginx's stream module is missing: apt-get install libnginx-mod-stream (scripts/install-services does)"
        );
        let render = |prefix: &Path| Ok(l4_conf(prefix, port, upstreams));
        let ready = Readiness::Tcp(format!("127.0.0.1:{port}"));
        let nginx =
            Nginx::start("l4", render, ready, Events::new(), logs, RestartPolicy::Never, Duration::from_secs(10))
                .await?;
        Ok(Self { port, nginx })
    }

    /// New upstreams for new connections; those already open stay where
    /// they are (as conntrack keeps them under kube-proxy). Not
    /// `Nginx::reload`, which waits for the old workers: with a connection
    /// pinned for good, they never finish.
    pub async fn set(&self, upstreams: &[String]) -> Result<()> {
        for (name, text) in l4_conf(self.nginx.prefix(), self.port, upstreams) {
            std::fs::write(self.nginx.prefix().join(name), text)?;
        }
        self.nginx.supervisor().signal(Signal::HUP).await
    }

    pub async fn stop(self) {
        let _ = self.nginx.stop(Duration::from_secs(2)).await;
    }
}

/// The sum of `metric`'s series on `base`'s `/metrics` whose labels
/// contain every one of `labels` (`name="value"`); `None` when the
/// process does not answer.
pub async fn counter(client: &Client, metric: &str, labels: &[&str]) -> Option<f64> {
    let res = client.get("/metrics").send().await.ok().filter(|r| r.status().is_success())?;
    let text = res.text();
    let sum = text
        .lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with('{'))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum();
    Some(sum)
}
