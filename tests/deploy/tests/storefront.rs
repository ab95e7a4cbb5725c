//! The storefront (`web/shop`) reaches the edge in every deployment, at the
//! directory the routing template serves `/shop/` from (`SHOP_ROOT`), with
//! its trace links' target (`JAEGER_UI_URL`) set:
//!
//! - Kubernetes: the ConfigMap `web/kustomization.yaml` generates lists
//!   every file of `web/shop` (a file left out would be a 404 on kind
//!   only), and each overlay's edge mounts it read-only at `SHOP_ROOT`;
//! - compose: both files bind-mount `./web/shop` read-only at `SHOP_ROOT`.
//!
//! The local run's edge is checked by `tests/e2e` and the launcher's own
//! tests; what nginx serves from the template, by `tests/edge.rs`.

use std::collections::BTreeSet;

use serde_json::Value;
use twinshop_deploy_tests::{kustomize, objects, repo_root};

/// The file names in `web/shop`.
fn shop_files() -> BTreeSet<String> {
    let dir = repo_root().join("web/shop");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .collect()
}

fn yaml(path: &str) -> Value {
    let full = repo_root().join(path);
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_storefronts_configmap_lists_every_file_of_web_shop() {
    let kustomization = yaml("web/kustomization.yaml");
    let generator = kustomization["configMapGenerator"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["name"] == "storefront"))
        .expect("web/kustomization.yaml generates the ConfigMap `storefront`");
    let listed: BTreeSet<String> = generator["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            let f = f.as_str().expect("a file");
            f.strip_prefix("shop/").unwrap_or_else(|| panic!("{f} is not in web/shop")).to_owned()
        })
        .collect();
    assert_eq!(listed, shop_files(), "web/kustomization.yaml lists exactly the files of web/shop");
}

fn render(overlay: &str) -> Vec<Value> {
    objects(&kustomize(format!("k8s/overlays/{overlay}")))
}

/// The object of `kind` whose name is `name` or `name-<hash>`.
fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| {
            let n = o["metadata"]["name"].as_str().unwrap_or("");
            o["kind"] == kind && (n == name || n.rsplit_once('-').is_some_and(|(base, _)| base == name))
        })
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn every_overlays_edge_mounts_the_storefront_where_its_config_says() {
    let overlays = std::fs::read_dir(repo_root().join("k8s/overlays")).expect("k8s/overlays");
    let mut checked = 0;
    for overlay in overlays.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()) {
        let objects = render(&overlay);
        let config = &find(&objects, "ConfigMap", "edge-config")["data"];
        let root = config["SHOP_ROOT"].as_str().unwrap_or_else(|| panic!("{overlay}: edge-config has no SHOP_ROOT"));
        assert!(config["JAEGER_UI_URL"].is_string(), "{overlay}: edge-config has no JAEGER_UI_URL");

        let storefront = find(&objects, "ConfigMap", "storefront");
        let keys: BTreeSet<String> = storefront["data"].as_object().expect("data").keys().cloned().collect();
        assert_eq!(keys, shop_files(), "{overlay}: the storefront ConfigMap has every file of web/shop");

        let pod = &find(&objects, "Deployment", "edge")["spec"]["template"]["spec"];
        let volume = pod["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["configMap"]["name"] == storefront["metadata"]["name"]))
            .unwrap_or_else(|| panic!("{overlay}: the edge has no volume of ConfigMap storefront"));
        let mount = pod["containers"][0]["volumeMounts"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["name"] == volume["name"]))
            .unwrap_or_else(|| panic!("{overlay}: the edge does not mount the storefront"));
        assert_eq!(mount["mountPath"], root, "{overlay}: mounted where the template serves /shop/ from");
        assert_eq!(mount["readOnly"], true, "{overlay}: read-only");
        checked += 1;
    }
    assert!(checked >= 3, "the kind, monolith and gitops overlays at least");
}

#[test]
fn both_compose_files_mount_the_storefront_read_only_where_the_edge_serves_it_from() {
    for file in ["docker-compose.yml", "docker-compose.monolith.yml"] {
        let edge = &yaml(file)["services"]["edge"];
        let root = edge["environment"]["SHOP_ROOT"].as_str().unwrap_or_else(|| panic!("{file}: edge has no SHOP_ROOT"));
        assert!(edge["environment"]["JAEGER_UI_URL"].is_string(), "{file}: edge has no JAEGER_UI_URL");
        let volumes: Vec<&str> =
            edge["volumes"].as_array().expect("volumes").iter().filter_map(Value::as_str).collect();
        assert!(
            volumes.contains(&format!("./web/shop:{root}:ro").as_str()),
            "{file}: the edge mounts ./web/shop read-only at {root}: {volumes:?}"
        );
    }
}
