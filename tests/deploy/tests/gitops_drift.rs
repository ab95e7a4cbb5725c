//! `scripts/gitops-drift` against a stand-in `kubectl` (no cluster can run
//! here): one Deployment (`redis`, git says 1 replica) and one
//! NetworkPolicy, and an "agent" that repairs both a second after they
//! were changed, or never does, or does not manage them at all. The script
//! must report each repair with its time and exit 0, report a missing
//! repair and exit 1, and refuse objects no agent manages.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use twinshop_deploy_tests::repo_root;

/// `kubectl` as the script calls it. FAKE_AGENT: argo or flux (repairs after
/// a second, tracking annotation or labels), lazy (Argo CD's annotation,
/// never repairs), none (no agent's marks). State in FAKE_STATE.
const FAKE_KUBECTL: &str = r#"#!/bin/sh
state=$FAKE_STATE mode=$FAKE_AGENT
while [ $# -gt 0 ]; do case $1 in --context|-n) shift 2 ;; *) break ;; esac; done
verb=$1 obj=$2 jsonpath=""
[ "${3:-}" = -o ] && jsonpath=$4
value() { cat "$state/$1" 2>/dev/null || echo 1; }
case $verb in
  get)
    case $obj in
      networkpolicy/*) [ "$(value policy)" = 1 ] || { echo "NotFound" >&2; exit 1; } ;;
    esac
    case $jsonpath in
      *tracking-id*) case $mode in argo|lazy) printf 'twinshop:apps/Deployment:twinshop/redis' ;; esac ;;
      *fluxcd*) [ "$mode" = flux ] && printf 'twinshop' ;;
      *readyReplicas*) printf '%s' "$(value ready)" ;;
      *replicas*) printf '%s' "$(value replicas)" ;;
    esac
    exit 0 ;;
  scale)
    echo 0 >"$state/replicas"; : >"$state/ready"
    case $mode in argo|flux) (sleep 1; echo 1 >"$state/replicas"; sleep 1; echo 1 >"$state/ready") & ;; esac ;;
  delete)
    echo 0 >"$state/policy"
    case $mode in argo|flux) (sleep 1; echo 1 >"$state/policy") & ;; esac ;;
esac
"#;

/// A scratch directory with the stand-in on its PATH; removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("twinshop-gitops-drift-{}-{name}", std::process::id()));
        fs::create_dir_all(dir.join("bin")).expect("scratch dir");
        fs::create_dir_all(dir.join("state")).expect("scratch dir");
        let kubectl = dir.join("bin/kubectl");
        fs::write(&kubectl, FAKE_KUBECTL).expect("stand-in kubectl");
        let chmod = Command::new("chmod").arg("+x").arg(&kubectl).status().expect("chmod");
        assert!(chmod.success());
        Self(dir)
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.0.join(sub)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn drift(agent: &str, timeout: &str) -> (Output, String) {
    let scratch = Scratch::new(agent);
    let path = format!("{}:{}", scratch.path("bin").display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new(Path::new(&repo_root()).join("scripts/gitops-drift"))
        .args(["--context", "kind-test", "--timeout", timeout])
        .env("PATH", path)
        .env("FAKE_AGENT", agent)
        .env("FAKE_STATE", scratch.path("state"))
        .output()
        .expect("scripts/gitops-drift runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out, text)
}

#[test]
fn drift_repaired_by_an_agent_is_reported_with_its_time() {
    for (agent, name) in [("argo", "Argo CD Application twinshop"), ("flux", "Flux Kustomization twinshop")] {
        let (out, text) = drift(agent, "20");
        assert!(out.status.success(), "{agent}: {text}");
        assert!(text.contains(&format!("managed by {name}")), "{agent}: {text}");
        assert!(text.contains("reverted to 1 replica after") && text.contains("the pod ready after"), "{text}");
        assert!(text.contains("recreated after"), "{text}");
        assert!(text.contains("both drifts undone"), "{text}");
    }
}

#[test]
fn drift_nobody_repairs_fails_the_script() {
    let (out, text) = drift("lazy", "2");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("NOT reverted within 2 s (spec.replicas is 0)"), "{text}");
    assert!(text.contains("NOT recreated within 2 s"), "{text}");
}

#[test]
fn objects_no_agent_manages_are_not_touched() {
    let (out, text) = drift("none", "2");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("managed by no GitOps agent"), "{text}");
    assert!(!text.contains("by hand"), "it changed something: {text}");
}
