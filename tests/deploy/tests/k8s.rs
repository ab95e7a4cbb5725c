//! The rendered Kubernetes manifests (`kubectl kustomize` of each overlay),
//! parsed with k8s-openapi's 1.33 types and checked for what the API
//! schemas cannot say (`scripts/check-k8s` does the schema validation):
//!
//! - every container has CPU and memory requests and limits and the
//!   restricted security context (non-root, read-only root filesystem, no
//!   privilege escalation, all capabilities dropped); long-running ones have
//!   readiness and liveness probes, and ours a startup probe too;
//! - every container that runs a twinshop image gets exactly the variables
//!   that binary reads (all required ones, nothing it does not read, values
//!   it accepts), names its ports after the ones it binds, probes its
//!   internal port, and has a grace period longer than its drain;
//! - each overlay deploys the binaries of its build;
//! - what `k8s/overlays/gitops` references without rendering (it carries no
//!   secret) is one of the objects created out of band, with its keys.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, StatefulSet},
        batch::v1::Job,
        core::v1::{Container, PodSpec, Probe},
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use serde_json::Value;
use twinshop_deploy_tests::{Environment, binary_for_image, kustomize, objects, out_of_band};

/// The objects of one rendered overlay.
struct Rendered {
    overlay: &'static str,
    objects: Vec<Value>,
    /// Whether a reference to an object created out of band may stay
    /// unresolved (the overlay that carries no secret).
    out_of_band: bool,
}

/// One pod template of a workload.
struct Workload {
    kind: &'static str,
    name: String,
    spec: PodSpec,
}

fn render(overlay: &'static str) -> Rendered {
    let objects = objects(&kustomize(format!("k8s/overlays/{overlay}")));
    Rendered { overlay, objects, out_of_band: overlay == "gitops" }
}

impl Rendered {
    fn of_kind(&self, kind: &str) -> impl Iterator<Item = &Value> {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    fn workloads(&self) -> Vec<Workload> {
        let mut all = Vec::new();
        for o in self.of_kind("Deployment") {
            let d: Deployment = serde_json::from_value(o.clone()).expect("a valid Deployment");
            let spec = d.spec.and_then(|s| s.template.spec).expect("a pod spec");
            all.push(Workload { kind: "Deployment", name: d.metadata.name.unwrap_or_default(), spec });
        }
        for o in self.of_kind("StatefulSet") {
            let s: StatefulSet = serde_json::from_value(o.clone()).expect("a valid StatefulSet");
            let spec = s.spec.and_then(|s| s.template.spec).expect("a pod spec");
            all.push(Workload { kind: "StatefulSet", name: s.metadata.name.unwrap_or_default(), spec });
        }
        for o in self.of_kind("Job") {
            let j: Job = serde_json::from_value(o.clone()).expect("a valid Job");
            let spec = j.spec.and_then(|s| s.template.spec).expect("a pod spec");
            all.push(Workload { kind: "Job", name: j.metadata.name.unwrap_or_default(), spec });
        }
        all
    }

    /// `data` of the ConfigMap `name` (values), or of the Secret `name`
    /// (keys only: values are opaque here).
    fn source(&self, kind: &str, name: &str) -> BTreeMap<String, Option<String>> {
        let Some(object) = self.of_kind(kind).find(|o| o["metadata"]["name"] == name) else {
            // Created out of band: its keys are known, its values are not.
            let keys = out_of_band(kind, name).filter(|_| self.out_of_band);
            let keys = keys.unwrap_or_else(|| panic!("{}: {kind} {name} is referenced but not rendered", self.overlay));
            return keys.iter().map(|k| ((*k).to_owned(), None)).collect();
        };
        let mut data = BTreeMap::new();
        for field in ["data", "stringData"] {
            for (k, v) in object[field].as_object().into_iter().flatten() {
                let value = if kind == "ConfigMap" { v.as_str().map(str::to_owned) } else { None };
                data.insert(k.clone(), value);
            }
        }
        data
    }

    /// The environment `container` starts with.
    fn environment(&self, container: &Container) -> Environment {
        let mut env = Environment::new();
        for from in container.env_from.iter().flatten() {
            let prefix = from.prefix.clone().unwrap_or_default();
            let data = match (&from.config_map_ref, &from.secret_ref) {
                (Some(cm), _) => self.source("ConfigMap", &cm.name),
                (_, Some(secret)) => self.source("Secret", &secret.name),
                _ => continue,
            };
            env.extend(data.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)));
        }
        for var in container.env.iter().flatten() {
            let value = match (&var.value, &var.value_from) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(from)) => {
                    if let Some(r) = &from.config_map_key_ref {
                        let data = self.source("ConfigMap", &r.name);
                        assert!(
                            data.contains_key(&r.key),
                            "{}: ConfigMap {} has no key {}",
                            self.overlay,
                            r.name,
                            r.key
                        );
                        data[&r.key].clone()
                    } else if let Some(r) = &from.secret_key_ref {
                        let data = self.source("Secret", &r.name);
                        assert!(data.contains_key(&r.key), "{}: Secret {} has no key {}", self.overlay, r.name, r.key);
                        None
                    } else {
                        None
                    }
                }
                (None, None) => Some(String::new()),
            };
            env.insert(var.name.clone(), value);
        }
        env
    }
}

fn probe_port(probe: &Probe) -> Option<IntOrString> {
    probe.http_get.as_ref().map(|h| h.port.clone())
}

/// Everything wrong with one overlay, one line each.
fn problems(rendered: &Rendered) -> (Vec<String>, BTreeSet<&'static str>) {
    let mut problems = Vec::new();
    let mut binaries_served = BTreeSet::new();
    let overlay = rendered.overlay;
    for w in rendered.workloads() {
        let long_running = w.kind != "Job";
        let pod_non_root = w.spec.security_context.as_ref().and_then(|s| s.run_as_non_root) == Some(true);
        let containers = w.spec.containers.iter().chain(w.spec.init_containers.iter().flatten());
        for c in containers {
            let at = format!("{overlay}: {} {} container {}", w.kind, w.name, c.name);
            let resources = c.resources.clone().unwrap_or_default();
            for (what, list) in [("requests", resources.requests), ("limits", resources.limits)] {
                for r in ["cpu", "memory"] {
                    if !list.as_ref().is_some_and(|l| l.contains_key(r)) {
                        problems.push(format!("{at}: no {r} in {what}"));
                    }
                }
            }
            let sc = c.security_context.clone().unwrap_or_default();
            if sc.allow_privilege_escalation != Some(false) {
                problems.push(format!("{at}: allowPrivilegeEscalation is not false"));
            }
            if sc.read_only_root_filesystem != Some(true) {
                problems.push(format!("{at}: the root filesystem is writable"));
            }
            if !sc.capabilities.and_then(|c| c.drop).is_some_and(|d| d.iter().any(|c| c == "ALL")) {
                problems.push(format!("{at}: capabilities are not all dropped"));
            }
            if !(pod_non_root || sc.run_as_non_root == Some(true)) {
                problems.push(format!("{at}: may run as root"));
            }
            if long_running && (c.readiness_probe.is_none() || c.liveness_probe.is_none()) {
                problems.push(format!("{at}: needs readiness and liveness probes"));
            }

            let Some(binary) = c.image.as_deref().and_then(binary_for_image) else { continue };
            let expected_args = if long_running { "serve" } else { "migrate" };
            if c.args.as_deref() != Some(&[expected_args.to_owned()][..]) {
                problems.push(format!("{at}: args should be [{expected_args}], are {:?}", c.args));
            }
            let settings = match binary.check_environment(&rendered.environment(c)) {
                Ok(settings) => settings,
                Err(found) => {
                    problems.extend(found.into_iter().map(|p| format!("{at}: {p}")));
                    continue;
                }
            };
            if !long_running {
                continue;
            }
            binaries_served.insert(binary.name);
            if c.startup_probe.is_none() {
                problems.push(format!("{at}: needs a startup probe"));
            }
            let port = |name: &str| {
                c.ports.iter().flatten().find(|p| p.name.as_deref() == Some(name)).map(|p| p.container_port)
            };
            if port("http") != Some(i32::from(settings.http_port)) {
                problems.push(format!(
                    "{at}: port `http` is {:?}, the binary binds {}",
                    port("http"),
                    settings.http_port
                ));
            }
            if port("internal") != Some(i32::from(settings.internal_port)) {
                problems.push(format!(
                    "{at}: port `internal` is {:?}, the binary binds {}",
                    port("internal"),
                    settings.internal_port
                ));
            }
            for probe in [&c.startup_probe, &c.readiness_probe, &c.liveness_probe].into_iter().flatten() {
                let target = probe_port(probe);
                let internal = target == Some(IntOrString::String("internal".into()))
                    || target == Some(IntOrString::Int(i32::from(settings.internal_port)));
                if !internal {
                    problems.push(format!("{at}: a probe targets {target:?}, not the internal port"));
                }
            }
            let grace = w.spec.termination_grace_period_seconds.unwrap_or(30);
            let drain = i64::try_from(settings.shutdown_timeout_secs).unwrap_or(i64::MAX);
            if grace <= drain {
                problems
                    .push(format!("{at}: terminationGracePeriodSeconds {grace} does not outlast the {drain} s drain"));
            }
        }
    }
    (problems, binaries_served)
}

fn assert_overlay(overlay: &'static str, expected: &[&str]) {
    let rendered = render(overlay);
    let (problems, served) = problems(&rendered);
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    let expected: BTreeSet<&str> = expected.iter().copied().collect();
    assert_eq!(served, expected, "{overlay}: the binaries deployed");
}

#[test]
fn the_kind_overlay_deploys_the_three_services_correctly() {
    assert_overlay("kind", &["user-service", "payment-service", "order-service"]);
}

#[test]
fn the_gitops_overlay_deploys_the_three_services_correctly_with_secrets_made_out_of_band() {
    assert_overlay("gitops", &["user-service", "payment-service", "order-service"]);
}

#[test]
fn the_monolith_overlay_deploys_the_monolith_correctly() {
    assert_overlay("monolith", &["monolith"]);
}

/// The first container of the Deployment `name`.
fn container<'a>(rendered: &'a mut Rendered, name: &str) -> &'a mut Value {
    let deployment = rendered
        .objects
        .iter_mut()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == name)
        .expect("the Deployment");
    &mut deployment["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn the_checks_catch_a_broken_manifest() {
    let mut rendered = render("kind");
    let user = container(&mut rendered, "user");
    user["env"].as_array_mut().expect("env").push(serde_json::json!({"name": "USER_DATABSE_URL", "value": "x"}));
    let container = container(&mut rendered, "order");
    let internal = container["ports"].as_array_mut().expect("ports").iter_mut().find(|p| p["name"] == "internal");
    internal.expect("an internal port")["containerPort"] = 9999.into();
    container.as_object_mut().expect("container").remove("livenessProbe");
    container["securityContext"]["readOnlyRootFilesystem"] = false.into();
    let (problems, _) = problems(&rendered);
    let text = problems.join("\n");
    for expected in ["USER_DATABSE_URL is set but", "port `internal` is Some(9999)", "liveness probes", "writable"] {
        assert!(text.contains(expected), "expected {expected:?} among:\n{text}");
    }
}
