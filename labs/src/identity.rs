//! What a binary and a running process say they are: the release identity
//! (`--version`, `build_info` on `/metrics`, crates/platform/src/build_info.rs)
//! and the fingerprint of the configuration a process was started with
//! (`config_info`, crates/platform/src/host/fingerprint.rs). The rollout
//! lab's drift check and the twelve-factor lab's codebase and
//! build/release/run checks read them here.

use std::{path::Path, time::Duration};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use twinshop_client::Client;

/// A build's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub version: String,
    pub commit: String,
    pub release: String,
    pub profile: String,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "release {} (commit {}, {} {})", self.release, short(&self.commit), self.profile, self.version)
    }
}

/// The first 12 characters of a commit, for tables.
pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// Parses `--version`'s output: `order-service 0.1.0 (commit C, release R, profile P)`.
pub fn parse_version(output: &str) -> Option<Identity> {
    let line = output.lines().next()?.trim();
    let (head, rest) = line.split_once(" (")?;
    let version = head.split_whitespace().last()?.to_owned();
    let inner = rest.strip_suffix(')')?;
    let field = |name: &str| inner.split(", ").find_map(|part| part.strip_prefix(name).map(|v| v.trim().to_owned()));
    Some(Identity { version, commit: field("commit ")?, release: field("release ")?, profile: field("profile ")? })
}

/// Runs `binary --version` and parses it.
pub fn of_binary(binary: &Path) -> Result<Identity> {
    let out = std::process::Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("{} --version exited with {}", binary.display(), out.status);
    }
    parse_version(&text).with_context(|| format!("{} --version said {text:?}", binary.display()))
}

/// What a running process exports about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Running {
    pub identity: Identity,
    /// `config_info{fingerprint}`.
    pub fingerprint: String,
}

/// The labels of the first sample of `metric` in a Prometheus text exposition.
pub fn labels(exposition: &str, metric: &str) -> Option<Vec<(String, String)>> {
    let line = exposition.lines().find(|l| l.starts_with(&format!("{metric}{{")))?;
    let inner = line.get(metric.len() + 1..)?.split('}').next()?;
    let mut out = Vec::new();
    for pair in inner.split(',') {
        let (k, v) = pair.split_once('=')?;
        out.push((k.trim().to_owned(), v.trim().trim_matches('"').to_owned()));
    }
    Some(out)
}

/// Parses `build_info` and `config_info` out of `/metrics`.
pub fn parse_metrics(exposition: &str) -> Option<Running> {
    let build = labels(exposition, "build_info")?;
    let get = |k: &str| build.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let config = labels(exposition, "config_info")?;
    Some(Running {
        identity: Identity {
            version: get("version")?,
            commit: get("commit")?,
            release: get("release")?,
            profile: get("profile")?,
        },
        fingerprint: config.into_iter().find(|(k, _)| k == "fingerprint")?.1,
    })
}

/// Reads `/metrics` at `internal_url` (a process's internal port).
pub async fn of_process(internal_url: &str) -> Result<Running> {
    let client = Client::builder().timeout(Duration::from_secs(5)).build(internal_url)?;
    let response = client.get("/metrics").send().await.with_context(|| format!("GET {internal_url}/metrics"))?;
    let text = response.text();
    parse_metrics(&text).with_context(|| format!("{internal_url}/metrics has no build_info or config_info"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_output_and_metrics_give_the_same_identity() {
        let v = parse_version("order-service 0.1.0 (commit 3f2a9c, release r2, profile debug)\n").expect("parses");
        assert_eq!(
            (v.version.as_str(), v.commit.as_str(), v.release.as_str(), v.profile.as_str()),
            ("0.1.0", "3f2a9c", "r2", "debug")
        );
        let metrics = "# TYPE build_info gauge\nbuild_info{version=\"0.1.0\",commit=\"3f2a9c\",release=\"r2\",profile=\"debug\"} 1\nconfig_info{fingerprint=\"00ff\"} 1\n";
        let running = parse_metrics(metrics).expect("parses");
        assert_eq!(running.identity, v);
        assert_eq!(running.fingerprint, "00ff");
        assert!(parse_metrics("build_info{version=\"1\"} 1").is_none());
        assert!(parse_version("monolith 0.1.0").is_none());
    }
}
