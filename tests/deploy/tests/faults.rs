//! Fault flags are for labs only: no deployment file switches them on.
//! Every rendered Kubernetes overlay and both compose files are read as
//! text, and every `*_FAULTS_ENABLED` found must be `false`.

use twinshop_deploy_tests::{kustomize, kustomize_with, repo_root};

/// `(where, value)` of every `…FAULTS_ENABLED` setting in a YAML text.
fn settings(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.contains("FAULTS_ENABLED") {
            continue;
        }
        // `- name: X_FAULTS_ENABLED` then `value: …`, or `X_FAULTS_ENABLED: …`.
        let value = match line.split_once("FAULTS_ENABLED") {
            Some((_, rest)) if rest.trim_start().starts_with(':') => rest.trim_start()[1..].trim().to_owned(),
            _ => lines.get(i + 1).and_then(|l| l.trim().strip_prefix("value:")).unwrap_or("").trim().to_owned(),
        };
        found.push(value.trim_matches(['"', '\'']).to_owned());
    }
    found
}

#[test]
fn no_overlay_and_no_compose_file_enables_fault_flags() {
    let root = repo_root();
    let mut texts = Vec::new();
    let overlays = std::fs::read_dir(root.join("k8s/overlays")).expect("k8s/overlays");
    for overlay in overlays.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.join("kustomization.yaml").is_file())
    {
        texts.push((overlay.display().to_string(), kustomize(&overlay)));
    }
    for file in ["docker-compose.yml", "docker-compose.monolith.yml"] {
        texts.push((file.to_owned(), std::fs::read_to_string(root.join(file)).expect("compose file")));
    }
    assert!(texts.len() >= 4, "found the overlays and compose files");
    for (place, text) in texts {
        for value in settings(&text) {
            assert_eq!(value, "false", "{place} sets *_FAULTS_ENABLED to {value:?}");
        }
    }
}

#[test]
fn the_scan_finds_an_enabling_setting_in_either_notation() {
    let k8s = "        - name: ORDER_FAULTS_ENABLED\n          value: \"true\"\n";
    let compose = "      USER_FAULTS_ENABLED: 'true'\n      OTHER: x\n";
    assert_eq!(settings(k8s), ["true"]);
    assert_eq!(settings(compose), ["true"]);
    assert!(settings("      USER_HTTP_PORT: 1\n").is_empty());
}

#[test]
fn the_fault_flags_component_enables_them_in_every_process_of_either_build() {
    let micro = kustomize_with("kind", "fault-flags");
    let mut enabled: Vec<&str> = micro.lines().filter(|l| l.contains("_FAULTS_ENABLED: \"true\"")).collect();
    enabled.sort_unstable();
    assert_eq!(
        enabled,
        ["  ORDER_FAULTS_ENABLED: \"true\"", "  PAYMENT_FAULTS_ENABLED: \"true\"", "  USER_FAULTS_ENABLED: \"true\""]
    );
    let monolith = kustomize_with("monolith", "fault-flags");
    assert_eq!(settings(&monolith), ["true"]);
}

#[test]
fn the_partition_component_cuts_order_from_payment_and_nothing_else() {
    let policies = |text: &str| -> Vec<serde_norway::Value> {
        serde_norway::Deserializer::from_str(text)
            .filter_map(|d| serde::Deserialize::deserialize(d).ok())
            .filter(|d: &serde_norway::Value| d["kind"] == "NetworkPolicy")
            .collect()
    };
    let whole = policies(&kustomize_with("kind", "fault-flags"));
    let cut = policies(&kustomize_with("kind", "cut-order-payment"));
    assert_eq!(whole.len(), cut.len(), "the same policies");
    let sources = |policy: &serde_norway::Value| -> Vec<String> {
        policy["spec"]["ingress"]
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|rule| rule["from"].as_sequence().cloned().unwrap_or_default())
            .filter_map(|from| from["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as_str().map(str::to_owned))
            .collect()
    };
    for (before, after) in whole.iter().zip(&cut) {
        let name = before["metadata"]["name"].as_str().expect("a name");
        if name == "payment" {
            assert_eq!(sources(before), ["edge", "order"]);
            assert_eq!(sources(after), ["edge"], "only the order service loses its way in");
        } else {
            assert_eq!(before, after, "{name} is untouched");
        }
    }
}
