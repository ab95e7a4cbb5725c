//! Fault flags are for labs only: no deployment file switches them on.
//! Every rendered Kubernetes overlay and both compose files are read as
//! text, and every `*_FAULTS_ENABLED` found must be `false`.

use std::process::Command;

use twinshop_deploy_tests::repo_root;

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
        let out = Command::new("kubectl").arg("kustomize").arg(&overlay).output().expect("kubectl kustomize");
        assert!(out.status.success(), "{}: {}", overlay.display(), String::from_utf8_lossy(&out.stderr));
        texts.push((overlay.display().to_string(), String::from_utf8_lossy(&out.stdout).into_owned()));
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
