//! Each process in its own network namespace with its own address, as a pod
//! has, so a lab can cut the link between two processes for real: an
//! iptables DROP makes connections hang until their timeouts, which a
//! refused port (a dead process) does not.
//!
//! Shape: one bridge per run (`tsbr<N>`, gateway `10.88.N.1/24`), a veth
//! pair per process into it (`eth0` inside, address `10.88.N.<host>`). `N`
//! is claimed with a lock file under `/run/twinshop-launcher`, so runs side
//! by side never share a subnet, and a run whose launcher died is cleaned
//! up by the next one ([`remove_leftovers`]).
//!
//! **Backing services** listen on 127.0.0.1 only. A namespaced process
//! reaches them at the gateway address: the host DNATs TCP (and UDP, for a
//! lab's DNS server) for the gateway
//! to 127.0.0.1 (allowed on the bridge by `route_localnet`) and SNATs the
//! source to 127.0.0.1, so Postgres' `pg_hba`, Redis' protected mode and
//! RabbitMQ's loopback-only `guest` see a local client. The kernel does it:
//! no proxy hop, no CPU of ours. **The edge** (host side) reaches each
//! process at its address through the bridge.
//!
//! Cuts are rules *inside* the namespaces (INPUT/OUTPUT DROP), so they die
//! with them. Host rules carry the comment `twinshop-net-<N>`, by which they
//! are found and deleted.

use std::{net::Ipv4Addr, path::PathBuf};

use anyhow::{Context as _, Result, bail};
use tokio::process::Command;

use crate::processes::{find_binary, ip_binary};

const STATE_DIR: &str = "/run/twinshop-launcher";

/// One process's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// Its name (`ip netns exec NAME …`).
    pub name: String,
    /// Its address on the run's bridge.
    pub address: Ipv4Addr,
}

/// A bridge and the namespaces on it, for one run.
#[derive(Debug)]
pub struct Network {
    index: u8,
    next_host: u8,
}

async fn run(program: &str, args: &[&str]) -> Result<String> {
    let binary = match program {
        "ip" => ip_binary(),
        other => find_binary(other).unwrap_or_else(|| PathBuf::from(other)),
    };
    let out = Command::new(&binary)
        .args(args)
        .output()
        .await
        .with_context(|| format!("running {program} (is it installed? `apt-get install iproute2 iptables`)"))?;
    if !out.status.success() {
        bail!("{program} {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn comment(index: u8) -> String {
    format!("twinshop-net-{index}")
}

fn bridge(index: u8) -> String {
    format!("tsbr{index}")
}

fn lock_file(index: u8) -> PathBuf {
    PathBuf::from(STATE_DIR).join(format!("net-{index}"))
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl Network {
    /// Claims a free `10.88.N.0/24`, creates its bridge and the host rules.
    pub async fn create() -> Result<Self> {
        if find_binary("iptables").is_none() {
            bail!("iptables is missing (namespaces need it): apt-get install -y iptables");
        }
        std::fs::create_dir_all(STATE_DIR).with_context(|| format!("creating {STATE_DIR}"))?;
        remove_leftovers().await?;
        let in_use = run("ip", &["-o", "-4", "addr", "show"]).await?;
        let start: u8 = rand::random_range(1..=254);
        let mut claimed = None;
        for i in 0..254u16 {
            let index = ((u16::from(start) + i) % 254 + 1) as u8;
            if in_use.contains(&format!(" 10.88.{index}.")) {
                continue;
            }
            // Written aside, then linked: the lock never exists without its owner's pid.
            let tmp = PathBuf::from(STATE_DIR).join(format!(".net-{index}-{}", std::process::id()));
            std::fs::write(&tmp, std::process::id().to_string()).context("writing the network lock")?;
            let linked = std::fs::hard_link(&tmp, lock_file(index));
            let _ = std::fs::remove_file(&tmp);
            if linked.is_ok() {
                claimed = Some(index);
                break;
            }
        }
        let Some(index) = claimed else { bail!("no free 10.88.N.0/24 subnet for a bridge") };
        let network = Self { index, next_host: 2 };
        if let Err(e) = network.set_up().await {
            let _ = destroy_index(index).await;
            return Err(e);
        }
        Ok(network)
    }

    async fn set_up(&self) -> Result<()> {
        let (br, gw, c) = (bridge(self.index), self.gateway().to_string(), comment(self.index));
        let subnet = self.subnet();
        run("ip", &["link", "add", &br, "type", "bridge"]).await?;
        run("ip", &["addr", "add", &format!("{gw}/24"), "dev", &br]).await?;
        run("ip", &["link", "set", &br, "up"]).await?;
        let sysctl = format!("/proc/sys/net/ipv4/conf/{br}/route_localnet");
        std::fs::write(&sysctl, "1").with_context(|| format!("writing {sysctl}"))?;
        let cm = ["-m", "comment", "--comment", c.as_str()];
        let dnat = |proto| {
            vec!["-A", "PREROUTING", "-i", &br, "-d", &gw, "-p", proto, "-j", "DNAT", "--to-destination", "127.0.0.1"]
        };
        let rules: [(&str, Vec<&str>); 5] = [
            ("nat", dnat("tcp")),
            // UDP too: a lab's DNS server on the host's loopback.
            ("nat", dnat("udp")),
            ("nat", vec!["-A", "INPUT", "-s", &subnet, "-d", "127.0.0.1", "-j", "SNAT", "--to-source", "127.0.0.1"]),
            ("filter", vec!["-I", "FORWARD", "-i", &br, "-o", &br, "-j", "ACCEPT"]),
            ("filter", vec!["-I", "INPUT", "-i", &br, "-j", "ACCEPT"]),
        ];
        for (table, rule) in rules {
            let mut args = vec!["-w", "-t", table];
            args.extend(rule);
            args.extend(cm);
            run("iptables", &args).await?;
        }
        Ok(())
    }

    /// The bridge's address, where namespaced processes reach the host's 127.0.0.1.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 88, self.index, 1)
    }

    /// `10.88.N.0/24`.
    pub fn subnet(&self) -> String {
        format!("10.88.{}.0/24", self.index)
    }

    /// The bridge's name.
    pub fn bridge(&self) -> String {
        bridge(self.index)
    }

    /// A new namespace `ts<N>-<label>` on the bridge with the next address.
    pub async fn add(&mut self, label: &str) -> Result<Namespace> {
        if self.next_host == 255 {
            bail!("the subnet {} is full", self.subnet());
        }
        let host = self.next_host;
        self.next_host += 1;
        let name = format!("ts{}-{label}", self.index);
        let veth = format!("ts{}v{host}", self.index);
        let address = Ipv4Addr::new(10, 88, self.index, host);
        let (br, gw) = (bridge(self.index), self.gateway().to_string());
        run("ip", &["netns", "add", &name]).await?;
        run("ip", &["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &name]).await?;
        run("ip", &["link", "set", &veth, "master", &br, "up"]).await?;
        run("ip", &["-n", &name, "addr", "add", &format!("{address}/24"), "dev", "eth0"]).await?;
        run("ip", &["-n", &name, "link", "set", "eth0", "up"]).await?;
        run("ip", &["-n", &name, "link", "set", "lo", "up"]).await?;
        run("ip", &["-n", &name, "route", "add", "default", "via", &gw]).await?;
        Ok(Namespace { name, address })
    }

    /// Cuts `a` ↔ `b` both ways: packets between their addresses are
    /// dropped in both namespaces, so connections hang rather than fail.
    pub async fn cut(&self, a: &Namespace, b: &Namespace) -> Result<()> {
        self.cut_rules("-I", a, b).await
    }

    /// Undoes [`Network::cut`].
    pub async fn heal(&self, a: &Namespace, b: &Namespace) -> Result<()> {
        self.cut_rules("-D", a, b).await
    }

    async fn cut_rules(&self, op: &str, a: &Namespace, b: &Namespace) -> Result<()> {
        for (me, peer) in [(a, b), (b, a)] {
            let peer = peer.address.to_string();
            netns_iptables(&me.name, &[op, "INPUT", "-s", &peer, "-j", "DROP"]).await?;
            netns_iptables(&me.name, &[op, "OUTPUT", "-d", &peer, "-j", "DROP"]).await?;
        }
        Ok(())
    }

    /// Cuts `from`'s outgoing TCP to `to:port` (e.g. the gateway's 5432:
    /// the process loses its database, nothing else does).
    pub async fn block(&self, from: &Namespace, to: Ipv4Addr, port: u16) -> Result<()> {
        block_rule("-I", from, to, port).await
    }

    /// Undoes [`Network::block`].
    pub async fn unblock(&self, from: &Namespace, to: Ipv4Addr, port: u16) -> Result<()> {
        block_rule("-D", from, to, port).await
    }

    /// Drops TCP from `from` to `ns`'s `port` (e.g. the gateway, where the
    /// edge's connections come from, to the public port): those connections hang.
    pub async fn block_inbound(&self, ns: &Namespace, from: Ipv4Addr, port: u16) -> Result<()> {
        inbound_rule("-I", ns, from, port).await
    }

    /// Undoes [`Network::block_inbound`].
    pub async fn unblock_inbound(&self, ns: &Namespace, from: Ipv4Addr, port: u16) -> Result<()> {
        inbound_rule("-D", ns, from, port).await
    }

    /// Removes the namespaces (killing what still runs in them), the bridge and the host rules.
    pub async fn destroy(&self) -> Result<()> {
        destroy_index(self.index).await
    }
}

async fn block_rule(op: &str, from: &Namespace, to: Ipv4Addr, port: u16) -> Result<()> {
    let (to, port) = (to.to_string(), port.to_string());
    netns_iptables(&from.name, &[op, "OUTPUT", "-d", &to, "-p", "tcp", "--dport", &port, "-j", "DROP"]).await
}

async fn inbound_rule(op: &str, ns: &Namespace, from: Ipv4Addr, port: u16) -> Result<()> {
    let (from, port) = (from.to_string(), port.to_string());
    netns_iptables(&ns.name, &[op, "INPUT", "-s", &from, "-p", "tcp", "--dport", &port, "-j", "DROP"]).await
}

async fn netns_iptables(ns: &str, rule: &[&str]) -> Result<()> {
    let iptables = find_binary("iptables").map_or_else(|| "iptables".to_owned(), |p| p.display().to_string());
    let mut args = vec!["netns", "exec", ns, iptables.as_str(), "-w"];
    args.extend(rule);
    run("ip", &args).await.map(drop)
}

async fn destroy_index(index: u8) -> Result<()> {
    let prefix = format!("ts{index}-");
    let list = run("ip", &["netns", "list"]).await.unwrap_or_default();
    for ns in list.lines().filter_map(|l| l.split_whitespace().next()).filter(|n| n.starts_with(&prefix)) {
        let pids = run("ip", &["netns", "pids", ns]).await.unwrap_or_default();
        for pid in pids.lines().filter_map(|p| p.trim().parse::<u32>().ok()) {
            let _ = crate::processes::signal(pid, crate::processes::Signal::KILL);
        }
        // Another launcher may be removing the same leftover: gone is gone.
        if let Err(e) = run("ip", &["netns", "del", ns]).await
            && run("ip", &["netns", "list"])
                .await
                .unwrap_or_default()
                .lines()
                .any(|l| l.split_whitespace().next() == Some(ns))
        {
            return Err(e);
        }
    }
    let links = run("ip", &["-o", "link", "show"]).await.unwrap_or_default();
    if links.contains(&format!(": {}:", bridge(index)))
        && let Err(e) = run("ip", &["link", "del", &bridge(index)]).await
        && run("ip", &["-o", "link", "show"]).await.unwrap_or_default().contains(&format!(": {}:", bridge(index)))
    {
        return Err(e);
    }
    let c = comment(index);
    for table in ["nat", "filter"] {
        let rules = run("iptables", &["-w", "-t", table, "-S"]).await.unwrap_or_default();
        for rule in rules.lines().filter(|r| r.split_whitespace().any(|w| w == c)) {
            let Some(rest) = rule.strip_prefix("-A ") else { continue };
            let mut args = vec!["-w", "-t", table, "-D"];
            args.extend(rest.split_whitespace());
            // Deleted by someone else meanwhile is fine; a rule that stays is not.
            if let Err(e) = run("iptables", &args).await {
                let now = run("iptables", &["-w", "-t", table, "-S"]).await.unwrap_or_default();
                if now.lines().any(|r| r == rule) {
                    return Err(e);
                }
            }
        }
    }
    let _ = std::fs::remove_file(lock_file(index));
    Ok(())
}

/// Removes the networks of launchers that are gone; returns how many.
pub async fn remove_leftovers() -> Result<usize> {
    let mut stale = std::collections::BTreeSet::new();
    let mut live = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(STATE_DIR).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(index) = name.strip_prefix("net-").and_then(|n| n.parse::<u8>().ok()) else { continue };
        let owner = std::fs::read_to_string(entry.path()).ok().and_then(|p| p.trim().parse::<u32>().ok());
        if owner.is_some_and(pid_alive) {
            live.insert(index)
        } else {
            stale.insert(index)
        };
    }
    // A bridge or namespace without a live lock is a leftover too.
    let links = run("ip", &["-o", "link", "show"]).await.unwrap_or_default();
    let netns = run("ip", &["netns", "list"]).await.unwrap_or_default();
    let names = links.lines().filter_map(|l| l.split(": ").nth(1)).map(|n| n.split('@').next().unwrap_or(n).to_owned());
    for name in names.chain(netns.lines().filter_map(|l| l.split_whitespace().next().map(str::to_owned))) {
        let index = name
            .strip_prefix("tsbr")
            .or_else(|| name.strip_prefix("ts").and_then(|r| r.split_once('-').map(|(i, _)| i)))
            .and_then(|i| i.parse::<u8>().ok());
        if let Some(index) = index.filter(|i| !live.contains(i)) {
            stale.insert(index);
        }
    }
    for &index in &stale {
        destroy_index(index).await?;
    }
    Ok(stale.len())
}
