//! The compose files, checked for what the Compose schema cannot say
//! (`scripts/check-compose` does the schema and `docker-compose config`):
//!
//! - every container of ours gets exactly the variables its binary reads,
//!   values it accepts, the right subcommand, a healthcheck through its own
//!   `healthcheck` subcommand, and a stop grace period longer than its drain;
//! - the edge's upstreams point at the services' public ports;
//! - every service has a memory limit, and the long-running ones of the
//!   default stack (no profile) add up to at most 1 GiB; every long-running
//!   service has a healthcheck;
//! - only the edge and the two UIs are published, never a backing service,
//!   and Grafana and Prometheus in the `dashboards` profile;
//! - our containers and the edge run read-only, with no capability and no
//!   privilege escalation, the edge as a non-root user with tmpfs where
//!   nginx writes (as the Kubernetes manifests run them).

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;
use twinshop_deploy_tests::{Environment, binary_for_image, repo_root};

/// The services of a compose file, with YAML merge keys applied and
/// `extends` resolved.
fn services(file: &str) -> BTreeMap<String, Value> {
    let path = repo_root().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut doc: Value = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    // Once per level: an anchor that itself merges another (`x-service`
    // merges `x-hardened`) brings its own `<<` along, as YAML 1.1 allows.
    for _ in 0..3 {
        doc.apply_merge().unwrap_or_else(|e| panic!("{file}: merge keys: {e}"));
    }
    let mut out = BTreeMap::new();
    for (name, service) in doc["services"].as_mapping().unwrap_or_else(|| panic!("{file}: no services")) {
        let name = name.as_str().expect("a service name").to_owned();
        let service = match service.get("extends") {
            Some(extends) => {
                let base_file = extends["file"].as_str().unwrap_or(file);
                let base_name = extends["service"].as_str().expect("extends.service");
                let mut merged = services(base_file).remove(base_name).expect("the extended service");
                for (k, v) in service.as_mapping().into_iter().flatten().filter(|(k, _)| *k != "extends") {
                    merged[k.as_str().expect("a key")] = v.clone();
                }
                merged
            }
            None => service.clone(),
        };
        out.insert(name, service);
    }
    out
}

/// `${VAR:-default}` → `default`; `${VAR}` → unknown.
fn interpolate(value: &str) -> Option<String> {
    let Some(start) = value.find("${") else { return Some(value.to_owned()) };
    let end = value[start..].find('}')? + start;
    let inner = &value[start + 2..end];
    let default = inner.split_once(":-").map(|(_, d)| d)?;
    interpolate(&format!("{}{default}{}", &value[..start], &value[end + 1..]))
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => interpolate(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn environment(service: &Value) -> Environment {
    match &service["environment"] {
        Value::Mapping(m) => m.iter().map(|(k, v)| (k.as_str().expect("a name").to_owned(), scalar(v))).collect(),
        Value::Sequence(list) => list
            .iter()
            .filter_map(Value::as_str)
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_owned(), interpolate(v)),
                None => (kv.to_owned(), None),
            })
            .collect(),
        _ => Environment::new(),
    }
}

/// Bytes of a compose size like `64m`, `1g`, `512k`.
fn bytes(size: &str) -> u64 {
    let size = size.trim().to_ascii_lowercase();
    let (digits, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit()).unwrap_or(size.len()));
    let n: u64 = digits.parse().unwrap_or_else(|_| panic!("a size: {size}"));
    n * match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        other => panic!("unit {other}"),
    }
}

/// Seconds of a compose duration like `30s`, `1m30s`.
fn seconds(duration: &str) -> u64 {
    let mut total = 0;
    let mut n = String::new();
    for c in duration.chars() {
        if c.is_ascii_digit() {
            n.push(c);
        } else {
            let v: u64 = n.parse().unwrap_or(0);
            total += match c {
                'h' => v * 3600,
                'm' => v * 60,
                _ => v,
            };
            n.clear();
        }
    }
    total + n.parse::<u64>().unwrap_or(0)
}

/// Everything wrong with one compose file, one line each, and which of our
/// binaries it runs long-running.
fn problems(file: &str) -> (Vec<String>, BTreeSet<&'static str>) {
    let services = services(file);
    let mut problems = Vec::new();
    let mut served = BTreeSet::new();
    let mut http_ports: BTreeMap<String, u16> = BTreeMap::new();
    let mut memory = 0;
    for (name, s) in &services {
        let at = format!("{file}: {name}");
        let one_shot = s["restart"].as_str() == Some("no");
        // In a profile: started only when asked for (`--profile dashboards`).
        let optional = !s["profiles"].is_null();
        match s["mem_limit"].as_str() {
            Some(_) if optional => {}
            Some(limit) if !one_shot => memory += bytes(limit),
            Some(_) => {}
            None => problems.push(format!("{at}: no mem_limit")),
        }
        let health = &s["healthcheck"];
        if !one_shot && (health.is_null() || health["disable"].as_bool() == Some(true)) {
            problems.push(format!("{at}: a long-running service without a healthcheck"));
        }
        for port in s["ports"].as_sequence().into_iter().flatten() {
            let spec = scalar(port).unwrap_or_default();
            let mut parts = spec.rsplit(':');
            let container = parts.next().unwrap_or_default().to_owned();
            let host = parts.next().unwrap_or_default().to_owned();
            if ["5432", "6379", "5672", "15672"].contains(&host.as_str()) {
                problems.push(format!("{at}: publishes the host's standard port {host}"));
            }
            let allowed = match (name.as_str(), container.as_str()) {
                ("edge", "8080") | ("rabbitmq", "15672") | ("jaeger", "16686") => true,
                ("grafana", "3000") | ("prometheus", "9090") => optional,
                _ => false,
            };
            if !allowed {
                problems.push(format!(
                    "{at}: publishes {spec}; only the edge and the two UIs may (and the dashboards, in their profile)"
                ));
            }
        }

        // The tag is `${TWINSHOP_COMMIT:-dev}`: the repository decides.
        let image = s["image"].as_str().and_then(interpolate);
        let Some(binary) = image.as_deref().and_then(binary_for_image) else { continue };
        if s["build"]["args"]["BIN"].as_str() != Some(binary.name) {
            problems.push(format!("{at}: image {} built with BIN={:?}", binary.image, s["build"]["args"]["BIN"]));
        }
        let settings = match binary.check_environment(&environment(s)) {
            Ok(settings) => settings,
            Err(found) => {
                problems.extend(found.into_iter().map(|p| format!("{at}: {p}")));
                continue;
            }
        };
        let command: Vec<&str> = s["command"].as_sequence().into_iter().flatten().filter_map(Value::as_str).collect();
        if one_shot {
            if command != ["migrate"] {
                problems.push(format!("{at}: a one-shot of {} should run [migrate], runs {command:?}", binary.name));
            }
            continue;
        }
        served.insert(binary.name);
        http_ports.insert(name.clone(), settings.http_port);
        if !(command.is_empty() || command == ["serve"]) {
            problems.push(format!("{at}: runs {command:?}, not serve"));
        }
        let test: Vec<&str> = health["test"].as_sequence().into_iter().flatten().filter_map(Value::as_str).collect();
        if test.last() != Some(&"healthcheck") {
            problems.push(format!("{at}: the healthcheck should be the binary's own `healthcheck`, is {test:?}"));
        }
        let grace = s["stop_grace_period"].as_str().map_or(10, seconds);
        if grace <= settings.shutdown_timeout_secs {
            problems.push(format!(
                "{at}: stop_grace_period {grace} s does not outlast the {} s drain",
                settings.shutdown_timeout_secs
            ));
        }
    }
    if memory > 1 << 30 {
        problems.push(format!("{file}: the long-running services' memory limits add up to {} MiB", memory >> 20));
    }
    let edge = environment(&services["edge"]);
    for upstream in ["USER_UPSTREAM", "PAYMENT_UPSTREAM", "ORDER_UPSTREAM"] {
        let target = edge.get(upstream).cloned().flatten().unwrap_or_default();
        let (host, port) = target.split_once(':').unwrap_or((&target, ""));
        match http_ports.get(host) {
            Some(p) if p.to_string() == port => {}
            other => problems.push(format!("{file}: edge {upstream}={target}, but {host}'s public port is {other:?}")),
        }
    }
    (problems, served)
}

fn assert_file(file: &str, expected: &[&str]) {
    let (problems, served) = problems(file);
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    assert_eq!(served, expected.iter().copied().collect::<BTreeSet<_>>(), "{file}: the binaries it runs");
}

#[test]
fn the_compose_file_runs_the_three_services_correctly() {
    assert_file("docker-compose.yml", &["user-service", "payment-service", "order-service"]);
}

#[test]
fn the_monolith_compose_file_runs_the_monolith_correctly() {
    assert_file("docker-compose.monolith.yml", &["monolith"]);
}

#[test]
fn the_helpers_read_compose_notation() {
    assert_eq!(
        interpolate("${TWINSHOP_BIND:-127.0.0.1}:${TWINSHOP_PORT:-8080}:8080").as_deref(),
        Some("127.0.0.1:8080:8080")
    );
    assert_eq!(interpolate("${SECRET}"), None);
    assert_eq!(bytes("64m"), 64 << 20);
    assert_eq!(bytes("1g"), 1 << 30);
    assert_eq!(seconds("30s"), 30);
    assert_eq!(seconds("1m30s"), 90);
}

/// How each of our containers, and the edge, must run: as the Kubernetes
/// manifests run them (`readOnlyRootFilesystem`, `capabilities.drop: [ALL]`,
/// `allowPrivilegeEscalation: false`), and the edge as a non-root user with
/// a tmpfs wherever nginx writes. Returns one line per problem, and the
/// containers it checked.
fn hardening_problems(file: &str) -> (Vec<String>, BTreeSet<String>) {
    let mut problems = Vec::new();
    let mut checked = BTreeSet::new();
    for (name, s) in services(file) {
        let ours = s["image"].as_str().is_some_and(|i| i.starts_with("twinshop/")) || !s["build"].is_null();
        if !ours && name != "edge" {
            continue;
        }
        let at = format!("{file}: {name}");
        if s["read_only"].as_bool() != Some(true) {
            problems.push(format!("{at}: no read_only: true"));
        }
        let drops: Vec<&str> = s["cap_drop"].as_sequence().into_iter().flatten().filter_map(Value::as_str).collect();
        if drops != ["ALL"] {
            problems.push(format!("{at}: cap_drop is {drops:?}, not [ALL]"));
        }
        if s.get("cap_add").is_some() {
            problems.push(format!("{at}: adds capabilities back"));
        }
        let options: Vec<&str> =
            s["security_opt"].as_sequence().into_iter().flatten().filter_map(Value::as_str).collect();
        if !options.contains(&"no-new-privileges:true") {
            problems.push(format!("{at}: no security_opt no-new-privileges:true"));
        }
        if name == "edge" {
            let user = s["user"].as_str().unwrap_or("root");
            if user.split(':').next().is_none_or(|uid| uid.parse::<u32>().is_ok_and(|uid| uid == 0) || uid == "root") {
                problems.push(format!("{at}: runs as {user}, not a numeric non-root user"));
            }
            let tmpfs: BTreeMap<&str, &str> = s["tmpfs"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|t| t.split_once(':').unwrap_or((t, "")))
                .collect();
            // Docker gives a tmpfs mounted over an image folder that
            // folder's owner and mode (root, 0755), whatever `mode=` says:
            // only `uid=`/`gid=` make it writable for a non-root nginx.
            // `/tmp` is world-writable in every image already.
            let (uid, gid) = user.split_once(':').unwrap_or((user, user));
            for path in ["/etc/nginx/conf.d", "/var/cache/nginx", "/var/run", "/tmp"] {
                match tmpfs.get(path) {
                    None => problems.push(format!("{at}: no tmpfs at {path}, where nginx writes")),
                    Some(opts) if path != "/tmp" => {
                        let opts: Vec<&str> = opts.split(',').collect();
                        if !opts.contains(&format!("uid={uid}").as_str())
                            || !opts.contains(&format!("gid={gid}").as_str())
                        {
                            problems.push(format!(
                                "{at}: the tmpfs at {path} is not owned by {user}, so nginx cannot write it"
                            ));
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        checked.insert(name);
    }
    (problems, checked)
}

#[test]
fn our_containers_and_the_edge_run_read_only_without_capabilities_in_both_files() {
    for (file, expected) in [
        (
            "docker-compose.yml",
            &["edge", "order", "order-migrate", "payment", "payment-migrate", "user", "user-migrate"][..],
        ),
        ("docker-compose.monolith.yml", &["edge", "monolith", "monolith-migrate"][..]),
    ] {
        let (problems, checked) = hardening_problems(file);
        assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
        assert_eq!(checked, expected.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>(), "{file}");
    }
}
