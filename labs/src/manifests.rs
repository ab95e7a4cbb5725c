//! What the Kubernetes manifests say about each process's limits, so a lab
//! runs every process under the same memory and CPU limits it would get on
//! a cluster (k8s/base/<service>/deployment.yaml, `resources.limits`).

use anyhow::{Context as _, Result, bail};
use twinshop_launcher::{Limits, Service};

use crate::common::repo_root;

/// `256Mi`, `1Gi`, `512M`, `1000000` → bytes.
fn memory(q: &str) -> Result<u64> {
    let (number, unit) = q.find(|c: char| c.is_ascii_alphabetic()).map_or((q, ""), |i| q.split_at(i));
    let n: f64 = number.parse().with_context(|| format!("memory quantity {q:?}"))?;
    let factor = match unit {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "K" | "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        other => bail!("unknown memory unit {other:?} in {q:?}"),
    };
    Ok((n * factor) as u64)
}

/// `1`, `500m`, `0.25` → cores.
fn cpu(q: &str) -> Result<f64> {
    match q.strip_suffix('m') {
        Some(milli) => Ok(milli.parse::<f64>().with_context(|| format!("cpu quantity {q:?}"))? / 1000.0),
        None => q.parse().with_context(|| format!("cpu quantity {q:?}")),
    }
}

/// The limits of `service`'s container in its base manifest.
pub fn limits(service: Service) -> Result<Limits> {
    let dir = match service {
        Service::User => "user",
        Service::Payment => "payment",
        Service::Order => "order",
        Service::Monolith => "monolith",
    };
    let path = repo_root().join("k8s/base").join(dir).join("deployment.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    for doc in serde_norway::Deserializer::from_str(&text) {
        let value: serde_json::Value = serde::Deserialize::deserialize(doc).context("a YAML document")?;
        if value["kind"] != "Deployment" {
            continue;
        }
        let limits = &value["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"];
        let as_text =
            |v: &serde_json::Value| v.as_str().map(str::to_owned).or_else(|| v.as_f64().map(|f| f.to_string()));
        let mem = as_text(&limits["memory"]).context("no memory limit")?;
        let cores = as_text(&limits["cpu"]).context("no cpu limit")?;
        return Ok(Limits::cpu(cpu(&cores)?).with_memory(memory(&mem)?));
    }
    bail!("no Deployment in {}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_as_kubernetes_writes_them() {
        assert_eq!(memory("256Mi").expect("q"), 256 * 1024 * 1024);
        assert_eq!(memory("1Gi").expect("q"), 1 << 30);
        assert_eq!(cpu("500m").expect("q"), 0.5);
        assert_eq!(cpu("1").expect("q"), 1.0);
        assert!(memory("12Zi").is_err());
    }

    #[test]
    fn every_service_has_limits_in_its_manifest() {
        for s in [Service::User, Service::Payment, Service::Order, Service::Monolith] {
            let l = limits(s).expect("limits");
            assert!(
                l.memory_bytes.is_some_and(|m| m >= 64 << 20) && l.cpu_cores.is_some_and(|c| c > 0.0),
                "{s:?}: {l:?}"
            );
        }
    }
}
