//! `lab run cap`: the CAP theorem (seed 4.1), measured twice.
//!
//! - **The shop's own choice** ([`shop`]): order ↔ payment cut under load,
//!   in `strict` mode (consistency kept, availability of placement given
//!   up) and in `available` mode (placements accepted `pending`, their
//!   outcome unknown until the heal), the fault lab's invariants checked
//!   after both. The monolith has no network between its areas, so this
//!   part runs on the microservices.
//! - **Kubernetes is CP because etcd is** ([`etcd`]): a three-member etcd
//!   cluster, the leader and then a follower cut off alone: the two keep
//!   (or elect) a leader and accept writes; the one alone refuses writes
//!   and linearizable reads but serves stale serializable reads. Beside it,
//!   the AP contrast ([`redis`]): a Redis replica cut from its primary keeps
//!   answering, with stale data.

pub mod etcd;
pub mod redis;
pub mod report;
pub mod shop;

use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::Serialize;
use twinshop_launcher::netns::Network;

use crate::common::{LabArgs, LabOutcome, say};

/// Everything the lab measured.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub modes: Vec<shop::ModeRun>,
    pub etcd: Vec<etcd::Partitioned>,
    pub redis: Option<redis::StaleReplica>,
}

/// Runs the lab.
pub async fn run(args: &LabArgs) -> Result<LabOutcome> {
    let started_at = crate::common::now_rfc3339();
    let started = tokio::time::Instant::now();
    let mut modes = Vec::new();
    if args.builds.list().contains(&twinshop_launcher::Build::Microservices) {
        for mode in ["strict", "available"] {
            say(&format!("== cap lab: the shop in {mode} mode"));
            modes.push(shop::run_mode(mode, args).await.with_context(|| format!("the {mode} run"))?);
        }
    } else {
        say("== cap lab: the monolith has no network between its areas; the shop part runs on the microservices only");
    }
    say("== cap lab: etcd (three members) and a Redis replica, cut apart");
    let dir = std::env::temp_dir().join(format!("twinshop-cap-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut network = Network::create().await.context("a network for etcd and redis")?;
    let outcome = async {
        let cluster = etcd::Cluster::start(&mut network, &dir).await?;
        let measured = async {
            Ok::<_, anyhow::Error>(vec![
                cluster.isolate(&network, true, 1).await?,
                cluster.isolate(&network, false, 2).await?,
            ])
        }
        .await;
        cluster.stop().await;
        let partitions = measured?;
        let hold = Duration::from_secs(if args.quick { 2 } else { 5 });
        let stale = redis::stale_replica(&mut network, &dir, hold).await?;
        Ok::<_, anyhow::Error>((partitions, stale))
    }
    .await;
    let _ = network.destroy().await;
    // The members' logs stay when something did not converge: they say why.
    let converged = outcome.as_ref().is_ok_and(|(p, _)| p.iter().all(|p| p.converged_s.is_some()));
    if converged {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        say(&format!("cap: the etcd and redis logs are kept in {}", dir.display()));
    }
    let (partitions, stale) = outcome?;
    let results = Results { modes, etcd: partitions, redis: Some(stale) };
    let checks = report::checks(&results);
    checks.print("cap:");
    let doc = report::document(&results, &checks, args, &started_at, started.elapsed().as_secs_f64());
    let files = crate::common::write_report(&args.out, &results, &doc)?;
    Ok(LabOutcome { passed: checks.all_passed(), files: Some(files) })
}
