//! The drift check: every running process's release identity and config
//! fingerprint, read from its `/metrics`, held to the desired state.
//!
//! The desired state is what was declared: one release for every process,
//! and for each process the fingerprint of the configuration the launcher
//! gives it from the plan, recorded when the system was deployed from it.
//! (Here every replica has its own ports, since they share one host, so
//! each has its own fingerprint; on Kubernetes every replica of a
//! Deployment has the same one.) A process that differs in either was
//! changed behind the desired state's back: it is a pet.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;
use twinshop_launcher::System;

use crate::identity::{self, Running};

/// What the system should be running.
#[derive(Debug, Clone, Serialize)]
pub struct Desired {
    /// The release every process runs.
    pub release: String,
    /// The config fingerprint of each process, by process.
    pub fingerprints: BTreeMap<String, String>,
}

/// One process as the check found it.
#[derive(Debug, Clone, Serialize)]
pub struct Seen {
    pub process: String,
    pub release: String,
    pub fingerprint: String,
    pub expected_fingerprint: String,
    /// `""` when it matches; else `release`, `config` or both.
    pub drift: String,
}

/// One run of the check.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    /// Seconds on the workload's clock.
    pub at: f64,
    /// What the check was run after.
    pub when: String,
    pub desired_release: String,
    pub processes: Vec<Seen>,
}

impl DriftReport {
    /// The processes that differ from the desired state.
    pub fn drifted(&self) -> Vec<&Seen> {
        self.processes.iter().filter(|s| !s.drift.is_empty()).collect()
    }

    /// `order-2 (config)`, ... or `none`.
    pub fn summary(&self) -> String {
        let d: Vec<String> = self.drifted().iter().map(|s| format!("{} ({})", s.process, s.drift)).collect();
        if d.is_empty() { "none".into() } else { d.join(", ") }
    }
}

/// Reads every process's identity and fingerprint.
pub async fn read(system: &System) -> Result<BTreeMap<String, Running>> {
    let mut out = BTreeMap::new();
    for p in system.processes() {
        out.insert(p.id.to_string(), identity::of_process(&p.internal_url()).await?);
    }
    Ok(out)
}

/// The desired state of a system just deployed from its plan, all on `release`.
pub async fn desired(system: &System, release: &str) -> Result<Desired> {
    let running = read(system).await?;
    Ok(Desired {
        release: release.to_owned(),
        fingerprints: running.into_iter().map(|(k, r)| (k, r.fingerprint)).collect(),
    })
}

/// Compares what runs with `desired`.
pub async fn check(system: &System, desired: &Desired, when: &str, at: f64) -> Result<DriftReport> {
    let running = read(system).await?;
    Ok(compare(&running, desired, when, at))
}

/// The comparison itself (pure, so its self-test needs no system).
pub fn compare(running: &BTreeMap<String, Running>, desired: &Desired, when: &str, at: f64) -> DriftReport {
    let processes = running
        .iter()
        .map(|(process, r)| {
            let expected = desired.fingerprints.get(process).cloned().unwrap_or_default();
            let mut drift = Vec::new();
            if r.identity.release != desired.release {
                drift.push("release");
            }
            if r.fingerprint != expected {
                drift.push("config");
            }
            Seen {
                process: process.clone(),
                release: r.identity.release.clone(),
                fingerprint: r.fingerprint.clone(),
                expected_fingerprint: expected,
                drift: drift.join(" and "),
            }
        })
        .collect();
    DriftReport { at, when: when.to_owned(), desired_release: desired.release.clone(), processes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn running(release: &str, fingerprint: &str) -> Running {
        Running {
            identity: Identity {
                version: "0.1.0".into(),
                commit: "c".into(),
                release: release.into(),
                profile: "debug".into(),
            },
            fingerprint: fingerprint.into(),
        }
    }

    #[test]
    fn a_process_with_another_release_or_config_is_drift_and_the_rest_is_not() {
        let desired = Desired {
            release: "r1".into(),
            fingerprints: [("a-1", "f1"), ("a-2", "f2"), ("b-1", "f3")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        };
        let now: BTreeMap<String, Running> = [
            ("a-1".to_owned(), running("r1", "f1")),
            ("a-2".to_owned(), running("r1", "fX")),
            ("b-1".to_owned(), running("r2", "f3")),
        ]
        .into_iter()
        .collect();
        let report = compare(&now, &desired, "test", 0.0);
        assert_eq!(report.summary(), "a-2 (config), b-1 (release)");
        let clean = compare(&[("a-1".to_owned(), running("r1", "f1"))].into_iter().collect(), &desired, "test", 0.0);
        assert!(clean.drifted().is_empty());
    }
}
