//! The AP contrast: a Redis replica cut from its primary keeps answering
//! reads, with the data it had (stale), and catches up after the heal.
//! Both in their own network namespaces, cut with iptables DROP.

use std::{path::Path, process::Stdio, time::Duration};

use anyhow::{Context as _, Result, ensure};
use serde::Serialize;
use tokio::{process::Child, time::Instant};
use twinshop_launcher::netns::{Namespace, Network};

/// What the replica did.
#[derive(Debug, Clone, Serialize)]
pub struct StaleReplica {
    /// The value the primary holds after the cut.
    pub primary: String,
    /// What the replica answered during the cut (it answered: available).
    pub replica_during: Option<String>,
    /// Seconds after the heal until the replica returned the primary's value.
    pub converged_s: Option<f64>,
}

async fn cli(ns: &Namespace, args: &[&str]) -> Option<String> {
    let out = tokio::process::Command::new("timeout")
        .args(["2", "redis-cli", "-h", &ns.address.to_string(), "-p", "6379", "--raw"])
        .args(args)
        .output()
        .await
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn server(ns: &Namespace, dir: &Path, name: &str, replica_of: Option<&Namespace>) -> Result<Child> {
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let mut cmd = tokio::process::Command::new("ip");
    cmd.args(["netns", "exec", &ns.name, "redis-server", "--port", "6379", "--bind", "0.0.0.0"])
        .args(["--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir"])
        .arg(dir);
    if let Some(primary) = replica_of {
        cmd.args(["--replicaof", &primary.address.to_string(), "6379"]);
    }
    cmd.stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::from(log)).kill_on_drop(true);
    cmd.spawn().context("starting redis-server")
}

/// Runs the experiment: write v1, cut, write v2 on the primary, read the
/// replica, heal, wait for v2 on the replica.
pub async fn stale_replica(network: &mut Network, dir: &Path, hold: Duration) -> Result<StaleReplica> {
    let (p_ns, r_ns) = (network.add("redis1").await?, network.add("redis2").await?);
    let mut primary = server(&p_ns, dir, "primary", None)?;
    let mut replica = server(&r_ns, dir, "replica", Some(&p_ns))?;
    let result = async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let _ = cli(&p_ns, &["SET", "lab:value", "v1"]).await;
            if cli(&r_ns, &["GET", "lab:value"]).await.as_deref() == Some("v1") {
                break;
            }
            ensure!(Instant::now() < deadline, "the replica never caught up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        network.cut(&p_ns, &r_ns).await?;
        ensure!(cli(&p_ns, &["SET", "lab:value", "v2"]).await.is_some(), "the primary refused a write");
        tokio::time::sleep(hold).await;
        let replica_during = cli(&r_ns, &["GET", "lab:value"]).await;
        network.heal(&p_ns, &r_ns).await?;
        let healed = Instant::now();
        let mut converged_s = None;
        while healed.elapsed() < Duration::from_secs(90) {
            if cli(&r_ns, &["GET", "lab:value"]).await.as_deref() == Some("v2") {
                converged_s = Some(healed.elapsed().as_secs_f64());
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(StaleReplica { primary: "v2".into(), replica_during, converged_s })
    }
    .await;
    let _ = primary.kill().await;
    let _ = replica.kill().await;
    result
}
