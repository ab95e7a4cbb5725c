//! Factor 10, dev/prod parity: the major versions of PostgreSQL, Redis and
//! RabbitMQ in the local run (asked of the running servers), in both
//! compose files and in the Kubernetes base (the `image:` tags), parsed
//! and compared.

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context as _, Result};
use sqlx::{Connection as _, PgConnection};

/// The three backing services, by image name.
pub const SERVICES: [&str; 3] = ["postgres", "redis", "rabbitmq"];

/// The leading number of a version or an image tag: `15.20 (Debian …)`,
/// `7.0.15`, `16`, `3-management`, `15@sha256:…` → 15, 7, 16, 3, 15.
pub fn major(version: &str) -> Option<u32> {
    let digits: String = version.trim().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `(service, major)` of every `image:` line naming one of [`SERVICES`] in `text`.
pub fn image_majors(text: &str) -> Vec<(&'static str, Option<u32>)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(image) = line.trim().strip_prefix("image:") else { continue };
        let image = image.trim().trim_matches(['"', '\'']);
        let (name, tag) = image.split_once(':').unwrap_or((image, "latest"));
        let name = name.rsplit('/').next().unwrap_or(name);
        if let Some(service) = SERVICES.iter().find(|s| **s == name) {
            out.push((*service, major(tag)));
        }
    }
    out
}

/// Where each version was seen: `(source, service) → major`.
pub type Seen = BTreeMap<(String, &'static str), Option<u32>>;

/// The `image:` tags of the compose files and the Kubernetes base.
pub fn declared(root: &Path) -> Result<Seen> {
    let mut seen = Seen::new();
    for file in ["docker-compose.yml", "docker-compose.monolith.yml"] {
        let text = std::fs::read_to_string(root.join(file)).with_context(|| format!("reading {file}"))?;
        for (service, major) in image_majors(&text) {
            seen.insert((file.to_owned(), service), major);
        }
    }
    let mut stack = vec![root.join("k8s/base")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let text = std::fs::read_to_string(&path)?;
                for (service, major) in image_majors(&text) {
                    let rel = path.strip_prefix(root).unwrap_or(&path).display().to_string();
                    seen.insert((rel, service), major);
                }
            }
        }
    }
    Ok(seen)
}

/// The versions of the servers the local run uses, asked of the servers.
pub async fn local(postgres_url: &str, redis_port: u16) -> Result<BTreeMap<&'static str, String>> {
    let mut out = BTreeMap::new();
    let mut pg = PgConnection::connect(&format!("{postgres_url}/postgres")).await.context("connecting to Postgres")?;
    let v: String = sqlx::query_scalar("SHOW server_version").fetch_one(&mut pg).await?;
    out.insert("postgres", v);
    let info = std::process::Command::new("redis-cli")
        .args(["-p", &redis_port.to_string(), "INFO", "server"])
        .output()
        .context("redis-cli INFO server")?;
    let info = String::from_utf8_lossy(&info.stdout);
    let v = info.lines().find_map(|l| l.strip_prefix("redis_version:")).context("no redis_version in INFO")?;
    out.insert("redis", v.trim().to_owned());
    // Asks the running node (not the CLI's own version).
    let mq = std::process::Command::new("rabbitmq-diagnostics")
        .args(["-q", "server_version"])
        .output()
        .context("rabbitmq-diagnostics server_version")?;
    out.insert("rabbitmq", String::from_utf8_lossy(&mq.stdout).trim().to_owned());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors_come_from_versions_and_tags() {
        assert_eq!(major("15.20 (Debian 15.20-0+deb12u1)"), Some(15));
        assert_eq!(major("7.0.15"), Some(7));
        assert_eq!(major("3-management"), Some(3));
        assert_eq!(major("latest"), None);
        let yaml = "  image: postgres:15@sha256:abc\n    image: 'redis:7'\n image: docker.io/library/rabbitmq:3-management\n image: nginx:1.27\n";
        assert_eq!(image_majors(yaml), vec![("postgres", Some(15)), ("redis", Some(7)), ("rabbitmq", Some(3))]);
    }
}
