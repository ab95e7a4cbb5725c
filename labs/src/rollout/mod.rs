//! `lab run rollout`: cattle, not pets (seed 3.1), immutable infrastructure
//! (seed 2.1) and disposability (factor 9), on two replicas of every
//! process of either build.
//!
//! Under a steady load of careful clients (the fault lab's workload), every
//! process is replaced by release B (the same code with another release
//! identity, [`releases`]) one at a time, as a Kubernetes rollout with
//! `maxUnavailable: 0` does (the fault lab's [`replace_all`]), then rolled
//! back to release A the same way: 0 failed requests. Then the pet path:
//! one process is restarted by hand with a variable changed and another
//! with release B's binary; the [`drift`] check, which reads every
//! process's release identity and config fingerprint from its `/metrics`,
//! finds exactly those two; replacing them from the desired state (not
//! patching them) clears it.
//!
//! `--self-test` rolls out with both replicas of a service stopped at once
//! (`maxUnavailable: 100%`): requests fail, and the lab must say FAILED.
//!
//! # Layout
//! [`releases`] (building release B), [`drift`] (the check), [`report`].

pub mod drift;
pub mod releases;
pub mod report;

use std::{collections::BTreeMap, path::Path, sync::Arc, time::Duration};

use anyhow::{Context as _, Result};
use futures_util::future::join_all;
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use twinshop_client::Client;
use twinshop_launcher::{Build, LogTarget, Plan, ProcessId, System};

use self::{drift::DriftReport, releases::Releases};
use crate::{
    backing::Backing,
    common::{LabArgs, LabOutcome, say},
    faults::{
        rolling::{self, Replaced},
        workload::{self, Attempt, History, Workload},
    },
};

/// One stretch of the run: a rollout, a rollback, the pets and their replacement.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub name: String,
    pub from: f64,
    pub to: f64,
    pub replaced: Vec<Replaced>,
    /// Attempts sent within `[from, to)`, and the failed ones by answer.
    pub requests: usize,
    pub failures: BTreeMap<String, usize>,
}

impl Phase {
    pub fn failed(&self) -> usize {
        self.failures.values().sum()
    }
}

/// A process changed by hand.
#[derive(Debug, Clone, Serialize)]
pub struct Pet {
    pub process: String,
    /// What was changed, in words.
    pub change: String,
    /// What the drift check should call it: `config` or `release`.
    pub expected_drift: &'static str,
}

/// Everything one build's run produced.
#[derive(Debug, Clone, Serialize)]
pub struct BuildRun {
    pub build: &'static str,
    pub release_a: String,
    pub release_b: String,
    pub rate: f64,
    pub phases: Vec<Phase>,
    pub drift_checks: Vec<DriftReport>,
    pub pets: Vec<Pet>,
    /// Per second: attempts sent and attempts failed.
    pub per_second: Vec<(f64, usize, usize)>,
    pub requests: usize,
    pub failures: BTreeMap<String, usize>,
    /// Every failed attempt, with what the transport said when nothing came back.
    pub failed_attempts: Vec<Attempt>,
    pub duration_s: f64,
}

impl BuildRun {
    pub fn failed(&self) -> usize {
        self.failures.values().sum()
    }

    pub fn phase(&self, prefix: &str) -> Option<&Phase> {
        self.phases.iter().find(|p| p.name.starts_with(prefix))
    }
}

/// What the report is made of.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub self_test: bool,
    pub build_b_s: f64,
    pub runs: Vec<BuildRun>,
}

pub async fn run(args: &LabArgs) -> Result<LabOutcome> {
    let started_at = crate::common::now_rfc3339();
    let started = Instant::now();
    let releases = tokio::task::block_in_place(|| Releases::prepare(&args.bin_dir)).context("the two releases")?;
    say(&format!(
        "release A: {}\nrelease B: {} (built in {:.0} s)",
        releases.a.identity, releases.b.identity, releases.build_b_s
    ));
    let mut runs = Vec::new();
    let mut failure = None;
    for build in args.builds.list() {
        say(&format!("rollout lab: {}", build.name()));
        match Box::pin(run_build(build, args, &releases)).await {
            Ok(r) => runs.push(r),
            Err(e) => {
                failure = Some(e.context(format!("the {} run", build.name())));
                break;
            }
        }
    }
    releases.remove();
    if let Some(e) = failure {
        return Err(e);
    }
    let results = Results { self_test: args.self_test, build_b_s: releases.build_b_s, runs };
    let checks = report::checks(&results);
    checks.print("rollout lab checks");
    let doc = report::document(&results, &checks, args, &started_at, started.elapsed().as_secs_f64());
    let files = crate::common::write_report(&args.out, &results, &doc)?;
    Ok(LabOutcome { passed: checks.all_passed(), files: Some(files) })
}

async fn run_build(build: Build, args: &LabArgs, releases: &Releases) -> Result<BuildRun> {
    let logs = args.out.join("logs").join(build.name());
    let _ = std::fs::remove_dir_all(&logs);
    let mut plan = Plan::new(build).bin_dir(&releases.a.dir).logs(LogTarget::Dir(logs));
    for &s in build.services() {
        plan = plan.replicas(s, 2);
    }
    // A private Postgres and Redis (the machine's are shared with other
    // runs, whose connections could starve this one); the machine's
    // RabbitMQ, under this run's own namespace.
    let backing =
        Backing::start(&format!("rollout-{}", build.name()), false).await.context("the lab's Postgres and Redis")?;
    plan.backing = twinshop_launcher::plan::Backing { amqp: plan.backing.amqp.clone(), ..backing.for_launcher() };
    let system = match System::start(plan).await.context("starting two replicas of every process") {
        Ok(system) => system,
        Err(e) => {
            backing.stop().await;
            return Err(e);
        }
    };
    let result = phases(&system, args, releases).await;
    let stopped = system.stop().await;
    backing.stop().await;
    let run = result?;
    stopped.context("stopping the system")?;
    Ok(run)
}

/// Per second of the history: attempts sent, attempts failed.
fn per_second(attempts: &[Attempt]) -> Vec<(f64, usize, usize)> {
    let mut per: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    for a in attempts {
        let e = per.entry(a.at as u64).or_default();
        e.0 += 1;
        e.1 += rolling::failures(std::slice::from_ref(a)).values().sum::<usize>();
    }
    per.into_iter().map(|(s, (n, f))| (s as f64, n, f)).collect()
}

/// Every replica of every service stopped at once, then started on
/// `bin_dir`'s binaries: the `maxUnavailable: 100%` rollout of the self-test.
async fn all_at_once(system: &System, bin_dir: &Path, history: &History) -> Result<Vec<Replaced>> {
    let mut out = Vec::new();
    for &service in system.build().services() {
        let ids: Vec<ProcessId> = system.processes().iter().map(|p| p.id).filter(|id| id.service == service).collect();
        let from = history.now();
        for r in join_all(ids.iter().map(|id| system.stop_process(*id))).await {
            r?;
        }
        let program = bin_dir.join(service.binary());
        let starts = ids.iter().map(|id| {
            let program = program.clone();
            async move {
                let sup = system.supervisor(*id)?;
                let t = Instant::now();
                sup.start_again(Some(program)).await?;
                sup.wait_ready(system.plan().ready_timeout).await?;
                anyhow::Ok(t.elapsed())
            }
        });
        let ready = join_all(starts).await;
        for (id, r) in ids.iter().zip(ready) {
            out.push(Replaced {
                id: id.to_string(),
                from,
                to: history.now(),
                start_to_ready_s: r?.as_secs_f64(),
                exit: "stopped with its sibling".into(),
            });
        }
    }
    Ok(out)
}

async fn phases(system: &System, args: &LabArgs, releases: &Releases) -> Result<BuildRun> {
    let started = Instant::now();
    let url = system.url().context("no edge")?;
    let client = Client::builder().timeout(Duration::from_secs(5)).build(&url)?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let shoppers = workload::shoppers(&client, 10, 200_000, &format!("{run}ro")).await?;
    let catalog = Arc::new(client.products().await?);
    let history = Arc::new(History::new());
    let wl = Workload { shoppers, catalog, history: history.clone() };
    let rate = if args.quick { 15.0 } else { 25.0 };
    let settle = Duration::from_secs(if args.quick { 2 } else { 5 });

    let (a, b) = (&releases.a, &releases.b);
    let mut desired = drift::desired(system, &a.identity.release).await?;
    let mut checks = vec![drift::check(system, &desired, "deployed from the plan (release A)", history.now()).await?];
    let stop = CancellationToken::new();
    let give_up = Instant::now() + Duration::from_secs(900);
    let driver = tokio::spawn(workload::drive(wl.clone(), rate, args.seed, stop.clone(), give_up));
    tokio::time::sleep(settle).await;

    let mut phases = Vec::new();
    for (name, to) in [("rollout A → B", b), ("rollback B → A", a)] {
        say(&format!("  {name}"));
        let from = history.now();
        let replaced = if args.self_test {
            all_at_once(system, &to.dir, &history).await?
        } else {
            rolling::replace_all(system, Some(&to.dir), &history).await?
        };
        phases.push((name.to_owned(), from, history.now(), replaced));
        desired.release = to.identity.release.clone();
        checks.push(drift::check(system, &desired, &format!("after the {name}"), history.now()).await?);
        tokio::time::sleep(settle).await;
    }

    // The pet path: two processes changed by hand.
    say("  pets: one process reconfigured by hand, another given release B's binary");
    let services = system.build().services();
    let (first, last) = (services[0], services[services.len() - 1]);
    let config_pet = ProcessId::new(last, 2);
    let binary_pet = ProcessId::new(first, 1);
    let variable = format!("{}REQUEST_TIMEOUT_MS", last.env_prefix());
    let pets = vec![
        Pet {
            process: config_pet.to_string(),
            change: format!("restarted by hand with {variable}=30000 (the plan leaves it at its default)"),
            expected_drift: "config",
        },
        Pet {
            process: binary_pet.to_string(),
            change: format!("its binary swapped by hand for release B's ({})", b.identity.release),
            expected_drift: "release",
        },
    ];
    let from = history.now();
    let mut replaced = Vec::new();
    let step = system.replace_with(config_pet, None, &[(variable.as_str(), "30000")]).await?;
    replaced.push(Replaced::new(config_pet, from, history.now(), &step));
    let t = history.now();
    let step = system.replace(binary_pet, Some(b.dir.join(first.binary()))).await?;
    replaced.push(Replaced::new(binary_pet, t, history.now(), &step));
    phases.push(("pets: changed by hand".to_owned(), from, history.now(), replaced));
    let found = drift::check(system, &desired, "after the hand changes", history.now()).await?;
    say(&format!("  drift found: {}", found.summary()));
    let drifted: Vec<ProcessId> = system
        .processes()
        .iter()
        .map(|p| p.id)
        .filter(|id| found.drifted().iter().any(|s| s.process == id.to_string()))
        .collect();
    checks.push(found);
    tokio::time::sleep(settle).await;

    say("  replacing the pets from the desired state");
    let from = history.now();
    let mut replaced = Vec::new();
    for id in drifted {
        let t = history.now();
        let step = system.replace(id, Some(a.dir.join(id.service.binary()))).await?;
        replaced.push(Replaced::new(id, t, history.now(), &step));
    }
    phases.push(("pets replaced".to_owned(), from, history.now(), replaced));
    checks.push(drift::check(system, &desired, "after replacing the pets", history.now()).await?);
    tokio::time::sleep(settle).await;
    stop.cancel();
    driver.await.context("the workload")?;

    let attempts = history.attempts();
    let phases = phases
        .into_iter()
        .map(|(name, from, to, replaced)| {
            let within: Vec<Attempt> = attempts.iter().filter(|x| x.at >= from && x.at < to).cloned().collect();
            Phase { name, from, to, replaced, requests: within.len(), failures: rolling::failures(&within) }
        })
        .collect();
    Ok(BuildRun {
        build: system.build().name(),
        release_a: a.identity.release.clone(),
        release_b: b.identity.release.clone(),
        rate,
        phases,
        drift_checks: checks,
        pets,
        per_second: per_second(&attempts),
        requests: attempts.len(),
        failures: rolling::failures(&attempts),
        failed_attempts: attempts.iter().filter(|a| rolling::failed(a)).cloned().collect(),
        duration_s: started.elapsed().as_secs_f64(),
    })
}
