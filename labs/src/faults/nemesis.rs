//! The nemesis: a schedule of faults, each held for seconds and then
//! healed, injected into a running system while the workload runs.
//!
//! Every fault is real (docs/design.md §8): a killed process gets SIGKILL
//! (the launcher's restart policy brings it back, as a kubelet would), a
//! hung one SIGSTOP then SIGCONT, a cut link is an iptables DROP between
//! network namespaces (connections hang until their timeouts), a slow link
//! goes through the delaying proxy, and the backing services the lab
//! restarts are its own instances.

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, Result};
use serde::Serialize;
use twinshop_launcher::{Build, ProcessId, Service, System};

use super::workload::History;
use crate::{backing::Backing, common::say, proxy::DelayProxy};

/// One fault.
#[derive(Debug, Clone)]
pub enum Fault {
    /// SIGKILL; back after the restart policy's pause.
    Kill(ProcessId),
    /// SIGKILL to the edge's nginx; back likewise.
    KillEdge,
    /// SIGSTOP, held, then SIGCONT.
    Pause(ProcessId, Duration),
    /// Order cannot reach payment (its link through the proxy is dropped).
    CutOrderPayment(Duration),
    /// The two services cannot reach each other.
    CutServices(Service, Service, Duration),
    /// The process cannot reach its database (or broker): the port is dropped.
    CutBacking(ProcessId, &'static str, Duration),
    /// The proxied link gains this latency each way, for this long.
    Slow(&'static str, Duration, Duration),
    /// A backing server crashes (SIGKILL) and comes back after the pause.
    RestartBacking(crate::backing::Kind, Duration),
}

impl Fault {
    /// What the report calls it.
    pub fn describe(&self) -> String {
        let s = |d: &Duration| format!("{:.0} s", d.as_secs_f64());
        match self {
            Self::Kill(id) => format!("SIGKILL {id}, restarted by the policy"),
            Self::KillEdge => "SIGKILL the edge (nginx), restarted by the policy".into(),
            Self::Pause(id, d) => format!("SIGSTOP {id} for {}, then SIGCONT", s(d)),
            Self::CutOrderPayment(d) => format!("cut order → payment for {}", s(d)),
            Self::CutServices(a, b, d) => format!("cut {} ↔ {} for {}", a.name(), b.name(), s(d)),
            Self::CutBacking(id, what, d) => format!("cut {id} from {what} for {}", s(d)),
            Self::Slow(link, delay, d) => {
                format!("slow {link}: +{} ms each way for {}", delay.as_millis(), s(d))
            }
            Self::RestartBacking(kind, d) => format!("crash {} (SIGKILL), back after {}", kind.name(), s(d)),
        }
    }
}

/// A fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct Injected {
    /// `F1`, `F2`, ...
    pub id: String,
    pub fault: String,
    /// Seconds since the history began.
    pub started: f64,
    /// When it was healed (the process ready again, the link restored).
    pub healed: f64,
    /// When the first placement succeeded after the heal.
    pub recovered: Option<f64>,
}

impl Injected {
    /// Seconds from the heal to the first successful placement.
    pub fn recovery(&self) -> Option<f64> {
        self.recovered.map(|r| (r - self.healed).max(0.0))
    }
}

/// What the nemesis acts on.
#[allow(missing_debug_implementations)]
pub struct Targets<'a> {
    pub system: &'a System,
    pub backing: &'a Backing,
    /// The delaying proxy on the slowed link.
    pub proxy: &'a DelayProxy,
}

/// The faults of a run, in order.
pub fn schedule(build: Build, quick: bool) -> Vec<Fault> {
    use crate::backing::Kind;
    let (hold, pause) = if quick {
        (Duration::from_secs(4), Duration::from_secs(2))
    } else {
        (Duration::from_secs(8), Duration::from_secs(3))
    };
    let id = |s: Service| ProcessId::new(s, 1);
    match (build, quick) {
        (Build::Microservices, true) => vec![
            Fault::Kill(id(Service::Payment)),
            Fault::Pause(id(Service::Order), pause),
            Fault::CutOrderPayment(hold),
            Fault::RestartBacking(Kind::Postgres, pause),
        ],
        (Build::Microservices, false) => vec![
            Fault::Kill(id(Service::Payment)),
            Fault::Kill(id(Service::Order)),
            Fault::Kill(id(Service::User)),
            Fault::KillEdge,
            Fault::Pause(id(Service::Payment), Duration::from_secs(5)),
            Fault::CutOrderPayment(hold),
            Fault::CutServices(Service::Order, Service::User, hold),
            Fault::CutBacking(id(Service::Order), "its database", hold),
            Fault::CutBacking(id(Service::User), "the broker", hold),
            Fault::Slow("order → payment", Duration::from_millis(400), Duration::from_secs(10)),
            Fault::RestartBacking(Kind::Postgres, pause),
            Fault::RestartBacking(Kind::Redis, pause),
            Fault::RestartBacking(Kind::RabbitMq, pause),
        ],
        (Build::Monolith, true) => vec![
            Fault::Kill(id(Service::Monolith)),
            Fault::Pause(id(Service::Monolith), pause),
            Fault::CutBacking(id(Service::Monolith), "its database", hold),
            Fault::RestartBacking(Kind::Postgres, pause),
        ],
        (Build::Monolith, false) => vec![
            Fault::Kill(id(Service::Monolith)),
            Fault::KillEdge,
            Fault::Pause(id(Service::Monolith), Duration::from_secs(5)),
            Fault::CutBacking(id(Service::Monolith), "its database", hold),
            Fault::Slow("monolith → database", Duration::from_millis(50), Duration::from_secs(10)),
            Fault::RestartBacking(Kind::Postgres, pause),
            Fault::RestartBacking(Kind::Redis, pause),
        ],
    }
}

/// Injects `fault` and heals it; returns `(started, healed)` in history time.
async fn inject(fault: &Fault, t: &Targets<'_>, history: &History) -> Result<(f64, f64)> {
    let system = t.system;
    let started = history.now();
    match fault {
        Fault::Kill(id) => {
            system.kill(*id).await?;
            // The restart policy brings it back; healed when it is ready.
            tokio::time::sleep(Duration::from_millis(200)).await;
            system.supervisor(*id)?.wait_ready(Duration::from_secs(60)).await?;
        }
        Fault::KillEdge => {
            system.kill_edge().await?;
            let url = system.url().context("no edge")?;
            wait_answering(&url).await?;
        }
        Fault::Pause(id, hold) => {
            system.pause(*id).await?;
            tokio::time::sleep(*hold).await;
            system.resume(*id).await?;
        }
        Fault::CutOrderPayment(hold) => {
            let order = ProcessId::new(Service::Order, 1);
            let port = t.proxy.addr().port();
            system.block_host_port(order, port).await?;
            tokio::time::sleep(*hold).await;
            system.unblock_host_port(order, port).await?;
        }
        Fault::CutServices(a, b, hold) => {
            system.partition_services(*a, *b).await?;
            tokio::time::sleep(*hold).await;
            system.heal_services(*a, *b).await?;
        }
        Fault::CutBacking(id, what, hold) => {
            let port = if what.contains("broker") {
                t.backing.rabbitmq.as_ref().context("no broker in this build")?.port
            } else if system.build() == Build::Monolith {
                t.proxy.addr().port()
            } else {
                t.backing.postgres.port
            };
            system.block_host_port(*id, port).await?;
            tokio::time::sleep(*hold).await;
            system.unblock_host_port(*id, port).await?;
        }
        Fault::Slow(_, delay, hold) => {
            t.proxy.set_delay(*delay);
            tokio::time::sleep(*hold).await;
            t.proxy.set_delay(Duration::ZERO);
        }
        Fault::RestartBacking(kind, pause) => {
            let instance = match kind {
                crate::backing::Kind::Postgres => &t.backing.postgres,
                crate::backing::Kind::Redis => &t.backing.redis,
                crate::backing::Kind::RabbitMq => t.backing.rabbitmq.as_ref().context("no broker in this build")?,
            };
            instance.crash().await?;
            tokio::time::sleep(*pause).await;
            instance.start().await?;
        }
    }
    Ok((started, history.now()))
}

/// Waits until `url` answers anything over HTTP.
async fn wait_answering(url: &str) -> Result<()> {
    let client = twinshop_client::Client::new(url)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if client.get("/v1/products").send().await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "the edge did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the schedule: each fault, then `gap` of calm. Prints each fault
/// as it is injected.
pub async fn run(faults: &[Fault], t: &Targets<'_>, history: &Arc<History>, gap: Duration) -> Result<Vec<Injected>> {
    let mut out = Vec::with_capacity(faults.len());
    for (i, fault) in faults.iter().enumerate() {
        let id = format!("F{}", i + 1);
        say(&format!("  {id} {}", fault.describe()));
        let (started, healed) = inject(fault, t, history).await.with_context(|| format!("injecting {id}"))?;
        out.push(Injected { id, fault: fault.describe(), started, healed, recovered: None });
        tokio::time::sleep(gap).await;
    }
    Ok(out)
}
