//! No private key from git. The base (either build) and
//! `k8s/overlays/gitops`, which a GitOps agent applies straight from the
//! repository, render no Secret and no private key: what they reference is
//! created out of band (docs/concepts/gitops.md), and it is exactly the
//! list in `twinshop_deploy_tests::OUT_OF_BAND`, which `scripts/kind
//! secrets` creates. The two kind overlays still render the committed
//! development pair, from `dev/keys` (through `k8s/components/dev-keys`).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::Value;
use twinshop_deploy_tests::{OUT_OF_BAND, kustomize, objects, repo_root};

/// `kubectl kustomize` of `dir` (relative to the repository), as JSON values.
fn render(dir: &str) -> Vec<Value> {
    objects(&kustomize(dir))
}

/// A rendered Secret: its name, labels and decoded `data`.
struct Secret {
    name: String,
    labels: BTreeMap<String, String>,
    data: BTreeMap<String, Vec<u8>>,
}

/// The Secrets among `objects`. (Not k8s-openapi's type: kustomize folds
/// long base64 values over lines, which its decoder refuses.)
fn secrets(objects: &[Value]) -> Vec<Secret> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    objects
        .iter()
        .filter(|o| o["kind"] == "Secret")
        .map(|o| Secret {
            name: text(&o["metadata"]["name"]),
            labels: o["metadata"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), text(v)))
                .collect(),
            data: o["data"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    let b64: String = text(v).split_whitespace().collect();
                    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).expect("base64 Secret data");
                    (k.clone(), bytes)
                })
                .collect(),
        })
        .collect()
}

/// Every place in `objects` that holds a private key, one line each: any
/// text with a PEM private key header, the decoded `data` of Secrets too.
fn private_keys(objects: &[Value]) -> Vec<String> {
    let name = |o: &Value| format!("{}/{}", o["kind"].as_str().unwrap_or("?"), o["metadata"]["name"]);
    let mut found: Vec<String> = objects
        .iter()
        .filter(|o| o.to_string().contains("PRIVATE KEY"))
        .map(|o| format!("{} (text)", name(o)))
        .collect();
    for secret in secrets(objects) {
        for (key, value) in &secret.data {
            if String::from_utf8_lossy(value).contains("PRIVATE KEY") {
                found.push(format!("Secret/{} {key}", secret.name));
            }
        }
    }
    found
}

/// The Secrets and ConfigMaps the objects other than Secrets and ConfigMaps
/// reference by name (environment, `envFrom`, volumes).
fn references(objects: &[Value]) -> BTreeSet<(String, String)> {
    fn visit(value: &Value, refs: &mut BTreeSet<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (field, kind, name) in [
                    ("secretKeyRef", "Secret", "name"),
                    ("secretRef", "Secret", "name"),
                    ("secret", "Secret", "secretName"),
                    ("configMapKeyRef", "ConfigMap", "name"),
                    ("configMapRef", "ConfigMap", "name"),
                    ("configMap", "ConfigMap", "name"),
                ] {
                    if let Some(name) = map.get(field).and_then(|r| r[name].as_str()) {
                        refs.insert((kind.to_owned(), name.to_owned()));
                    }
                }
                map.values().for_each(|v| visit(v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| visit(v, refs)),
            _ => {}
        }
    }
    let mut refs = BTreeSet::new();
    objects.iter().filter(|o| o["kind"] != "ConfigMap" && o["kind"] != "Secret").for_each(|o| visit(o, &mut refs));
    refs
}

#[test]
fn the_base_and_the_gitops_overlay_render_no_secret_and_no_private_key() {
    for dir in ["k8s/base", "k8s/base/monolith", "k8s/overlays/gitops"] {
        let objects = render(dir);
        let names: Vec<_> = secrets(&objects).into_iter().map(|s| s.name).collect();
        assert!(names.is_empty(), "{dir} renders Secrets {names:?}; they belong out of band");
        let keys = private_keys(&objects);
        assert!(keys.is_empty(), "{dir} renders a private key: {keys:?}");
    }
}

#[test]
fn the_kind_overlays_still_render_the_dev_key_pair_marked_dev_only() {
    let private = std::fs::read_to_string(repo_root().join("dev/keys/jwt-private.pem")).expect("dev/keys");
    let public = std::fs::read_to_string(repo_root().join("dev/keys/jwt-public.pem")).expect("dev/keys");
    for dir in ["k8s/overlays/kind", "k8s/overlays/monolith"] {
        let objects = render(dir);
        let key = secrets(&objects)
            .into_iter()
            .find(|s| s.name.starts_with("jwt-private-key-"))
            .unwrap_or_else(|| panic!("{dir}: no jwt-private-key Secret"));
        let pem = key.data.get("jwt-private.pem").expect("jwt-private.pem");
        assert_eq!(String::from_utf8_lossy(pem), private, "{dir}: not dev/keys' private key");
        let labels = &key.labels;
        assert_eq!(labels.get("twinshop.dev/dev-only").map(String::as_str), Some("true"), "{dir}: {labels:?}");
        let config: ConfigMap = objects
            .iter()
            .find(|o| {
                o["kind"] == "ConfigMap"
                    && o["metadata"]["name"].as_str().is_some_and(|n| n.starts_with("jwt-public-key-"))
            })
            .map(|o| serde_json::from_value(o.clone()).expect("a valid ConfigMap"))
            .unwrap_or_else(|| panic!("{dir}: no jwt-public-key ConfigMap"));
        assert_eq!(config.data.and_then(|d| d.get("jwt-public.pem").cloned()), Some(public.clone()), "{dir}");
        assert_eq!(private_keys(&objects).len(), 1, "{dir}: the private key is in one Secret and nowhere else");
    }
}

#[test]
fn what_the_gitops_overlay_references_is_created_out_of_band_by_the_recipe() {
    let objects = render("k8s/overlays/gitops");
    let rendered: BTreeSet<(String, String)> = objects
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap_or_default().to_owned(),
                o["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let missing: BTreeSet<_> = references(&objects).difference(&rendered).cloned().collect();
    let microservices: BTreeSet<(String, String)> = OUT_OF_BAND
        .iter()
        .filter(|(_, name, _)| !name.starts_with("monolith-"))
        .map(|(kind, name, _)| ((*kind).to_owned(), (*name).to_owned()))
        .collect();
    assert_eq!(missing, microservices, "the objects the GitOps overlay expects out of band");
    // The recipe creates every one of them (and the monolith's too), with
    // every key.
    let recipe = std::fs::read_to_string(repo_root().join("scripts/kind")).expect("scripts/kind");
    let recipe = &recipe[recipe.find("\nsecrets() {").expect("the secrets() recipe in scripts/kind")..];
    for (kind, name, keys) in OUT_OF_BAND {
        assert!(recipe.contains(name), "scripts/kind secrets does not create {kind} {name}");
        for key in *keys {
            assert!(recipe.contains(&format!("{key}=")), "scripts/kind secrets sets no {key} (for {name})");
        }
    }
}

#[test]
fn the_checks_catch_a_secret_or_key_that_slipped_in() {
    let mut objects = render("k8s/overlays/gitops");
    assert!(private_keys(&objects).is_empty());
    // A dev key Secret added by mistake, as `data` (base64) …
    objects.extend(render("k8s/overlays/kind").into_iter().filter(|o| o["kind"] == "Secret"));
    assert!(private_keys(&objects).iter().any(|k| k.contains("jwt-private.pem")), "{:?}", private_keys(&objects));
    // … or as plain text anywhere.
    objects.push(serde_json::json!({"kind": "ConfigMap", "metadata": {"name": "oops"},
        "data": {"k": "-----BEGIN PRIVATE KEY-----"}}));
    assert!(private_keys(&objects).iter().any(|k| k.contains("oops")));
    let refs = references(&render("k8s/overlays/kind"));
    assert!(refs.iter().any(|(kind, name)| kind == "Secret" && name.starts_with("jwt-private-key-")), "{refs:?}");
}
