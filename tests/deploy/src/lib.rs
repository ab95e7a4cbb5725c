//! What the deployment files must agree on with the binaries they run.
//!
//! Why it exists: a schema can say that a compose file or a Deployment is
//! well-formed, not that it runs *our* binaries correctly. This crate knows
//! each binary (its image, the variables it reads, the ports it binds) from
//! the binaries' own config code, so the tests in `tests/` can check the
//! compose files and the rendered Kubernetes manifests against it: every
//! required variable set, none set that nothing reads, values that parse,
//! ports that match. A renamed variable or port fails here, not at deploy.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use serde::Deserialize as _;
use serde_json::Value;

use twinshop_platform::{
    config::{ConfigError, Variable},
    host::{self, Process},
};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `kubectl kustomize` of `dir` (a folder with a kustomization, absolute or
/// relative to the repository), as the text kubectl prints.
///
/// Panics with what to do when kubectl is missing or fails: the overlays
/// need kustomize 5 (kubectl 1.27 or newer), which `scripts/install-kubectl`
/// installs and `make test` runs first.
pub fn kustomize(dir: impl AsRef<Path>) -> String {
    let dir = repo_root().join(dir);
    let out = match Command::new("kubectl").arg("kustomize").arg(&dir).output() {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run kubectl ({e}): these tests render the manifests with `kubectl kustomize` \
             (kubectl 1.27 or newer); scripts/install-kubectl installs one"
        ),
    };
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}(kubectl 1.27 or newer is needed; scripts/install-kubectl)",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 manifests")
}

/// `overlay` with `component`, rendered as a user of the component's page
/// would combine them: a kustomization of their own (here under
/// `target/deploy-tests/`) that names both.
pub fn kustomize_with(overlay: &str, component: &str) -> String {
    let dir = repo_root().join("target/deploy-tests").join(format!("{overlay}+{component}"));
    std::fs::create_dir_all(&dir).expect("a folder under target/");
    // kustomize takes only relative paths, from the kustomization's folder.
    let kustomization =
        format!("resources: [../../../k8s/overlays/{overlay}]\ncomponents: [../../../k8s/components/{component}]\n");
    std::fs::write(dir.join("kustomization.yaml"), kustomization).expect("writing the kustomization");
    kustomize(&dir)
}

/// The objects of a rendered stream of YAML documents, as JSON values.
pub fn objects(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("a YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

/// What a deployment needs to know about one twinshop binary.
#[derive(Debug)]
pub struct Binary {
    /// The binary's name, as `cargo build` and the Dockerfile's `BIN` know it.
    pub name: &'static str,
    /// The image repository it is deployed as (any tag).
    pub image: &'static str,
    /// What the binary hosts: its areas, prefix, transport and defaults.
    process: &'static Process,
}

/// The parts of a binary's configuration a deployment has to agree with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub http_port: u16,
    pub internal_port: u16,
    pub shutdown_timeout_secs: u64,
}

/// Every twinshop binary.
pub const BINARIES: [Binary; 4] = [
    Binary { name: "user-service", image: "twinshop/user-service", process: &twinshop_user::SERVICE },
    Binary { name: "payment-service", image: "twinshop/payment-service", process: &twinshop_payment::SERVICE },
    Binary { name: "order-service", image: "twinshop/order-service", process: &twinshop_order::SERVICE },
    Binary { name: "monolith", image: "twinshop/monolith", process: &twinshop_monolith::MONOLITH },
];

/// The binary an image reference runs (`twinshop/order-service:dev`,
/// `localhost:5001/twinshop/order-service@sha256:…` → order-service), if it
/// is one of ours.
pub fn binary_for_image(image: &str) -> Option<&'static Binary> {
    let repository = image.split('@').next().unwrap_or(image);
    let repository = match repository.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => repository,
    };
    // A registry host (`localhost:5001/`, `ghcr.io/`) is not part of the name.
    let repository = match repository.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => rest,
        _ => repository,
    };
    BINARIES.iter().find(|b| b.image == repository)
}

/// What the renderings that carry no secret (the bases, `k8s/overlays/gitops`)
/// reference without rendering: `(kind, name, keys)` of the objects created
/// out of band (docs/concepts/gitops.md; `scripts/kind secrets` runs the
/// recipe). The kind overlays render them all, DEV ONLY. `scripts/check-k8s`
/// has the same list.
pub const OUT_OF_BAND: &[(&str, &str, &[&str])] = &[
    ("Secret", "user-db-credentials", &["password", "database-url"]),
    ("Secret", "payment-db-credentials", &["password", "database-url"]),
    ("Secret", "order-db-credentials", &["password", "database-url"]),
    ("Secret", "monolith-db-credentials", &["password", "database-url"]),
    ("Secret", "rabbitmq-credentials", &["username", "password", "amqp-url"]),
    ("Secret", "redis-credentials", &["redis-url"]),
    ("Secret", "jwt-private-key", &["jwt-private.pem"]),
    ("ConfigMap", "jwt-public-key", &["jwt-public.pem"]),
];

/// The keys of the out-of-band object `kind`/`name`, if it is one.
pub fn out_of_band(kind: &str, name: &str) -> Option<&'static [&'static str]> {
    OUT_OF_BAND.iter().find(|(k, n, _)| *k == kind && *n == name).map(|(_, _, keys)| *keys)
}

/// One variable as a deployment sets it: a literal value, or `None` when it
/// comes from somewhere the test cannot read (a Secret's value, a field
/// reference, a host variable).
pub type Environment = BTreeMap<String, Option<String>>;

impl Binary {
    pub fn variables(&self) -> Vec<Variable> {
        host::variables(self.process)
            .unwrap_or_else(|err| panic!("{}: its config structs cannot be listed: {err}", self.name))
    }

    /// Everything wrong with starting this binary with `env`, one line
    /// each: a required variable missing, a variable it does not read, or a
    /// configuration it would refuse. On success, the settings it would run
    /// with.
    pub fn check_environment(&self, env: &Environment) -> Result<Settings, Vec<String>> {
        let known = self.variables();
        let mut problems = Vec::new();
        for var in known.iter().filter(|v| v.required) {
            if !env.contains_key(&var.name) {
                problems.push(format!("{} requires {}, which is not set", self.name, var.name));
            }
        }
        for name in env.keys() {
            if !known.iter().any(|v| &v.name == name) {
                problems.push(format!("{name} is set but {} does not read it", self.name));
            }
        }
        // Values the test cannot see get a placeholder that parses for a
        // string (they are URLs and keys).
        let vars: Vec<_> = env.iter().map(|(k, v)| (k.clone(), v.clone().unwrap_or_else(|| "opaque".into()))).collect();
        let checked: Result<Settings, ConfigError> = host::check(self.process, vars).map(|env| {
            let (http_port, internal_port) = env.ports(self.process);
            Settings { http_port, internal_port, shutdown_timeout_secs: env.platform.shutdown_timeout }
        });
        match checked {
            Ok(settings) if problems.is_empty() => Ok(settings),
            Ok(_) => Err(problems),
            Err(err) => {
                problems.push(format!("{} would refuse to start: {err}", self.name));
                Err(problems)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_map_to_binaries_with_any_tag_or_registry_port() {
        assert_eq!(binary_for_image("twinshop/order-service:dev").map(|b| b.name), Some("order-service"));
        assert_eq!(binary_for_image("twinshop/monolith").map(|b| b.name), Some("monolith"));
        assert_eq!(binary_for_image("twinshop/monolith@sha256:abc").map(|b| b.name), Some("monolith"));
        assert_eq!(binary_for_image("localhost:5001/twinshop/monolith:dev").map(|b| b.name), Some("monolith"));
        assert_eq!(
            binary_for_image("localhost:5001/twinshop/user-service@sha256:abc").map(|b| b.name),
            Some("user-service")
        );
        assert!(binary_for_image("localhost:5001/other/user-service:dev").is_none());
        assert!(binary_for_image("postgres:16").is_none());
    }

    #[test]
    fn every_binary_lists_its_variables_and_the_check_finds_drift() {
        for binary in &BINARIES {
            let vars = binary.variables();
            assert!(vars.iter().any(|v| v.required), "{}: {vars:?}", binary.name);
            // The list is complete: the required variables alone start it.
            let required: Environment =
                vars.iter().filter(|v| v.required).map(|v| (v.name.clone(), Some("http://example:1".into()))).collect();
            assert!(binary.check_environment(&required).is_ok(), "{}: {required:?}", binary.name);
            assert!(vars.iter().any(|v| v.name == "SHUTDOWN_TIMEOUT" && !v.required), "{}", binary.name);
            assert!(vars.iter().any(|v| v.name == "RUST_LOG"), "{}", binary.name);
        }
        let order = binary_for_image("twinshop/order-service").expect("order");
        let mut env: Environment = order
            .variables()
            .into_iter()
            .filter(|v| v.required)
            .map(|v| (v.name, Some("http://example:1".to_owned())))
            .collect();
        let settings = order.check_environment(&env).expect("the required variables are enough");
        assert_eq!((settings.http_port, settings.internal_port), (8083, 9083));
        env.insert("ORDER_HTTP_PORT".into(), Some("18083".into()));
        assert_eq!(order.check_environment(&env).map(|s| s.http_port), Ok(18083));
        env.insert("ORDER_CONSISTENCY_MODE".into(), Some("sometimes".into()));
        assert_eq!(order.check_environment(&env).map_err(|p| p.len()), Err(1), "a value it would refuse");
        env.remove("ORDER_CONSISTENCY_MODE");
        env.insert("ORDER_DATABSE_URL".into(), Some("typo".into()));
        env.remove("ORDER_DATABASE_URL");
        let problems = order.check_environment(&env).expect_err("one missing, one unknown");
        assert!(problems.iter().any(|p| p.contains("requires ORDER_DATABASE_URL")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("ORDER_DATABSE_URL is set but")), "{problems:?}");
    }
}
