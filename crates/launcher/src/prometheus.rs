//! What Prometheus needs to scrape a running system: its processes as a
//! file-based service discovery document.
//!
//! Why it exists: `twinshop-launch` picks the ports and, with namespaces,
//! the addresses; only it knows where each replica's `/metrics` is. It
//! writes them where `deploy/prometheus/local.yml` looks
//! (`target/prometheus/twinshop.json`), and the dashboards test writes the
//! same document for the system it starts, so both scrape exactly what
//! runs. Prometheus rereads the file when it changes.

use std::{io, path::Path};

use serde_json::{Value, json};

use crate::{plan::Build, system::ProcessInfo};

/// The `file_sd_configs` document: one group per process, its internal
/// address labelled with its `service`, `replica` and `build` (the labels
/// the dashboards filter on).
pub fn file_sd(build: Build, processes: &[ProcessInfo]) -> Value {
    Value::Array(
        processes
            .iter()
            .map(|p| {
                json!({
                    "targets": [format!("{}:{}", p.address, p.internal_port)],
                    "labels": {
                        "service": p.id.service.name(),
                        "replica": p.id.replica.to_string(),
                        "build": build.name(),
                    },
                })
            })
            .collect(),
    )
}

/// Writes [`file_sd`] to `path` (its directory created if missing) in one
/// rename, so Prometheus never reads half a file.
pub fn write_file_sd(path: &Path, build: Build, processes: &[ProcessInfo]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(&file_sd(build, processes)).map_err(io::Error::other)?;
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)
}

#[cfg(test)]
mod tests {
    use std::{net::Ipv4Addr, path::PathBuf};

    use super::*;
    use crate::{
        plan::{ProcessId, Service},
        supervisor::Phase,
    };

    fn process(service: Service, replica: u16, internal_port: u16) -> ProcessInfo {
        ProcessInfo {
            id: ProcessId::new(service, replica),
            pid: Some(1),
            phase: Phase::Ready,
            restarts: 0,
            last_exit: None,
            address: Ipv4Addr::LOCALHOST,
            http_port: 1,
            internal_port,
            netns: None,
            cgroup: None,
            program: PathBuf::from("x"),
        }
    }

    #[test]
    fn each_replica_is_a_target_labelled_with_its_service_and_build() {
        let doc = file_sd(Build::Microservices, &[process(Service::Order, 1, 9083), process(Service::Order, 2, 9183)]);
        assert_eq!(
            doc,
            json!([
                {"targets": ["127.0.0.1:9083"], "labels": {"service": "order", "replica": "1", "build": "microservices"}},
                {"targets": ["127.0.0.1:9183"], "labels": {"service": "order", "replica": "2", "build": "microservices"}},
            ])
        );
    }
}
