//! The discovery components (`k8s/components/discovery-dns`,
//! `discovery-etcd`) on the kind overlay: every twinshop container still
//! gets exactly the variables its binary reads, with values it accepts
//! (`Binary::check_environment`), the order service is switched to the
//! component's mode, and the names it resolves or dials are Services of the
//! rendering (a headless one for DNS).

use std::collections::BTreeMap;

use serde_json::Value;
use twinshop_deploy_tests::{Environment, binary_for_image, kustomize_with, objects};

/// The objects of the kind overlay with `component`.
fn render(component: &str) -> Vec<Value> {
    objects(&kustomize_with("kind", component))
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects.iter().find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

/// The environment of `container`: its ConfigMaps' values, its Secrets'
/// keys (values opaque), its own variables (a field reference is opaque).
fn environment(objects: &[Value], container: &Value) -> Environment {
    let mut env = Environment::new();
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let (kind, reference) = match (&from["configMapRef"], &from["secretRef"]) {
            (cm, _) if cm.is_object() => ("ConfigMap", cm),
            (_, secret) => ("Secret", secret),
        };
        let name = reference["name"].as_str().expect("a referenced name");
        let object = named(objects, kind, name).unwrap_or_else(|| panic!("{kind} {name} is not rendered"));
        for (k, v) in object["data"].as_object().into_iter().flatten() {
            env.insert(k.clone(), if kind == "ConfigMap" { v.as_str().map(str::to_owned) } else { None });
        }
    }
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().expect("a variable name").to_owned();
        env.insert(name, var["value"].as_str().map(str::to_owned));
    }
    env
}

/// Every twinshop container's environment, by binary.
fn environments(objects: &[Value]) -> BTreeMap<&'static str, Environment> {
    let mut all = BTreeMap::new();
    for deployment in objects.iter().filter(|o| o["kind"] == "Deployment") {
        for container in deployment["spec"]["template"]["spec"]["containers"].as_array().into_iter().flatten() {
            let Some(binary) = container["image"].as_str().and_then(binary_for_image) else { continue };
            let env = environment(objects, container);
            if let Err(problems) = binary.check_environment(&env) {
                panic!("{}: {}", binary.name, problems.join("; "));
            }
            all.insert(binary.name, env);
        }
    }
    all
}

fn value<'a>(env: &'a Environment, name: &str) -> Option<&'a str> {
    env.get(name).and_then(|v| v.as_deref())
}

#[test]
fn with_discovery_dns_the_order_service_resolves_headless_services_and_every_binary_accepts_its_settings() {
    let objects = render("discovery-dns");
    let envs = environments(&objects);
    let order = &envs["order-service"];
    for (mode, url, service, port) in [
        ("ORDER_PAYMENT_DISCOVERY", "ORDER_PAYMENT_GRPC_URL", "payment-headless", 9082),
        ("ORDER_USER_DISCOVERY", "ORDER_USER_SERVICE_URL", "user-headless", 9081),
    ] {
        assert_eq!(value(order, mode), Some("dns"), "{mode}");
        assert_eq!(value(order, url), Some(format!("http://{service}:{port}").as_str()), "{url}");
        let svc = named(&objects, "Service", service).unwrap_or_else(|| panic!("no Service {service}"));
        assert_eq!(svc["spec"]["clusterIP"], "None", "{service} is headless: one A record per ready pod");
        assert_eq!(svc["spec"]["ports"][0]["port"], port, "{service} serves the internal port");
    }
}

#[test]
fn with_discovery_etcd_the_replicas_register_at_their_pod_ip_and_the_order_service_watches() {
    let objects = render("discovery-etcd");
    let envs = environments(&objects);
    let order = &envs["order-service"];
    assert_eq!(value(order, "ORDER_PAYMENT_DISCOVERY"), Some("etcd"));
    assert_eq!(value(order, "ORDER_USER_DISCOVERY"), Some("etcd"));
    assert_eq!(value(order, "ORDER_ETCD_ENDPOINTS"), Some("http://etcd:2379"));
    for (binary, prefix) in [("payment-service", "PAYMENT"), ("user-service", "USER")] {
        let env = &envs[binary];
        assert_eq!(value(env, &format!("{prefix}_ETCD_ENDPOINTS")), Some("http://etcd:2379"), "{binary} registers");
        assert!(env.contains_key(&format!("{prefix}_ADVERTISE_HOST")), "{binary} advertises its pod IP");
    }
    for deployment in ["payment", "user"] {
        let d = named(&objects, "Deployment", deployment).expect("the Deployment");
        let env = d["spec"]["template"]["spec"]["containers"][0]["env"].as_array().expect("env");
        let advertise = env.iter().find(|v| v["name"].as_str().is_some_and(|n| n.ends_with("_ADVERTISE_HOST")));
        assert_eq!(advertise.map(|v| &v["valueFrom"]["fieldRef"]["fieldPath"]), Some(&Value::from("status.podIP")));
    }
    let etcd = named(&objects, "Service", "etcd").expect("the etcd Service");
    assert_eq!(etcd["spec"]["ports"][0]["port"], 2379);
    assert!(named(&objects, "NetworkPolicy", "etcd").is_some(), "only the services may reach etcd");
}
