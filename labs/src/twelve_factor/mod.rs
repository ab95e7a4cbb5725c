//! `lab run twelve-factor` (seed 2.2): each of the twelve factors checked
//! against a running build, one row each: the factor, what was checked,
//! the evidence, pass or fail.
//!
//! Every check does something that would come out otherwise if the factor
//! did not hold: a binary that read a config file would trip over the
//! decoys the lab leaves in its working folder and `HOME`; one that kept
//! sessions in memory would refuse the token on the other replica; one that
//! did not drain would fail requests or exit non-zero on SIGTERM; a compose
//! file on another major version than the local run fails the parity row.
//! The build runs with two replicas of every process, on the lab's own
//! Postgres and Redis and the machine's RabbitMQ (its own event namespace).
//!
//! # Layout
//! [`factors`] (the checks), [`copy`] (a copy of a running process with a
//! changed environment), [`parity`] (backing-service versions), [`report`].

pub mod copy;
pub mod factors;
pub mod parity;
pub mod report;

use anyhow::{Context as _, Result};
use serde::Serialize;
use tokio::time::Instant;
use twinshop_launcher::{LogTarget, Plan, System};

use crate::{
    backing::Backing,
    common::{LabArgs, LabOutcome, say},
};

/// One factor's row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `I. Codebase`, ...
    pub factor: &'static str,
    /// What was checked, in a sentence.
    pub checked: String,
    pub evidence: String,
    pub passed: bool,
}

impl Row {
    /// The row of a check that returned `(passed, evidence)` or could not run.
    pub fn of(factor: &'static str, checked: impl Into<String>, result: Result<(bool, String)>) -> Self {
        let (passed, evidence) = result.unwrap_or_else(|e| (false, format!("could not check: {e:#}")));
        Self { factor, checked: checked.into(), evidence, passed }
    }
}

/// One build's twelve rows.
#[derive(Debug, Clone, Serialize)]
pub struct BuildRows {
    pub build: &'static str,
    pub rows: Vec<Row>,
    pub duration_s: f64,
}

pub async fn run(args: &LabArgs) -> Result<LabOutcome> {
    let started_at = crate::common::now_rfc3339();
    let started = Instant::now();
    let root = crate::common::repo_root();
    // Absolute: the config and admin checks run binaries in other folders.
    let bin_dir = std::path::absolute(&args.bin_dir).context("the binary folder")?;
    // The factors that do not depend on a running build, checked once.
    let codebase = factors::codebase(&bin_dir, &root);
    let dependencies = tokio::task::block_in_place(|| factors::dependencies(&root));
    let parity = factors::parity(&root, &twinshop_launcher::plan::Backing::default()).await;
    let mut runs = Vec::new();
    for build in args.builds.list() {
        say(&format!("twelve-factor lab: {}", build.name()));
        let t = Instant::now();
        let logs = args.out.join("logs").join(build.name());
        let _ = std::fs::remove_dir_all(&logs);
        let mut plan = Plan::new(build).bin_dir(&bin_dir).logs(LogTarget::Dir(logs.clone()));
        for &s in build.services() {
            plan = plan.replicas(s, 2);
        }
        // A private Postgres and Redis (the machine's are shared with other
        // runs, whose connections could starve this one); the machine's
        // RabbitMQ, under this run's own namespace.
        let backing =
            Backing::start(&format!("12f-{}", build.name()), false).await.context("the lab's Postgres and Redis")?;
        plan.backing = twinshop_launcher::plan::Backing { amqp: plan.backing.amqp.clone(), ..backing.for_launcher() };
        let system = match System::start(plan).await.context("starting two replicas of every process") {
            Ok(system) => system,
            Err(e) => {
                backing.stop().await;
                return Err(e);
            }
        };
        let result = factors::running(&system, args).await;
        let stopped = system.stop().await;
        backing.stop().await;
        let (mut running, copy_output) = result?;
        stopped.context("stopping the system")?;
        // After the stop: the logs are complete.
        running.push(factors::logs(&logs, copy_output.as_ref()));
        let mut rows = vec![codebase.clone(), dependencies.clone()];
        rows.append(&mut running);
        rows.push(parity.clone());
        rows.sort_by_key(|r| factors::ORDER.iter().position(|f| *f == r.factor));
        runs.push(BuildRows { build: build.name(), rows, duration_s: t.elapsed().as_secs_f64() });
    }
    let all_passed = runs.iter().all(|r| r.rows.iter().all(|row| row.passed));
    for r in &runs {
        report::print(r);
    }
    let doc = report::document(&runs, args, &started_at, started.elapsed().as_secs_f64());
    let files = crate::common::write_report(&args.out, &runs, &doc)?;
    Ok(LabOutcome { passed: all_passed, files: Some(files) })
}
