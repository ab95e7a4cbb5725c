//! The two releases the rollout lab moves between: the binaries it was
//! given (release A) and the same code stamped with another release
//! identity (release B), built here. The copies live in
//! `target/rollout-releases-<pid>/{A,B}` while the lab runs.
//!
//! Release B costs one relink, not a second build: the identity is read by
//! each binary's `main.rs` (crates/platform/src/build_info.rs), so cargo
//! recompiles those units only (3.4 s in the dev profile here; a release
//! profile relinks with thin LTO, minutes). Both releases are copied under
//! the target folder, so a build someone else starts meanwhile cannot
//! change what runs, and release A's binaries are put back into `bin_dir`
//! afterwards (renamed over B's: a second relink would wait for cargo's
//! lock again, and a process running B's file keeps its inode).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail, ensure};
use twinshop_launcher::Service;

use crate::{
    common::say,
    identity::{self, Identity},
};

/// One release: its binaries and what they say they are.
#[derive(Debug, Clone)]
pub struct Release {
    /// `A` or `B`.
    pub name: &'static str,
    pub dir: PathBuf,
    pub identity: Identity,
}

/// Both releases, and where their copies are (removed by [`Releases::remove`]).
#[derive(Debug)]
pub struct Releases {
    pub a: Release,
    pub b: Release,
    root: PathBuf,
    /// Seconds the build of release B took.
    pub build_b_s: f64,
}

const SERVICES: [Service; 4] = [Service::User, Service::Payment, Service::Order, Service::Monolith];

/// The packages of the four binaries.
const PACKAGES: [&str; 4] = ["twinshop-user", "twinshop-payment", "twinshop-order", "twinshop-monolith"];

/// The identity every service binary in `dir` shares (an error if they differ).
fn identity_of(dir: &Path) -> Result<Identity> {
    let ids: Vec<Identity> =
        SERVICES.iter().map(|s| identity::of_binary(&dir.join(s.binary()))).collect::<Result<_>>()?;
    ensure!(ids.windows(2).all(|w| w[0] == w[1]), "the binaries in {} are not one release: {ids:?}", dir.display());
    Ok(ids[0].clone())
}

fn copy_release(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for s in SERVICES {
        std::fs::copy(from.join(s.binary()), to.join(s.binary()))
            .with_context(|| format!("copying {} to {}", s.binary(), to.display()))?;
    }
    Ok(())
}

/// Puts the binaries of `from` into `to`, each through a temporary file
/// renamed over the old one (a running binary cannot be written to).
fn put_back(from: &Path, to: &Path) -> Result<()> {
    for s in SERVICES {
        let tmp = to.join(format!(".{}.rollout-{}", s.binary(), std::process::id()));
        std::fs::copy(from.join(s.binary()), &tmp).with_context(|| format!("copying {}", s.binary()))?;
        std::fs::rename(&tmp, to.join(s.binary())).with_context(|| format!("putting {} back", s.binary()))?;
    }
    Ok(())
}

/// `cargo build` of the four binaries into `bin_dir`'s target folder with
/// this identity.
fn cargo_build(bin_dir: &Path, commit: &str, release: &str) -> Result<()> {
    let target = bin_dir.parent().context("the binary folder has no parent (target/)")?;
    ensure!(
        target.join("CACHEDIR.TAG").is_file(),
        "{} is no cargo target folder: give --bin-dir target/debug (or target/release), where release B can be built",
        bin_dir.display()
    );
    let mut cmd = std::process::Command::new("cargo");
    cmd.arg("build").arg("--quiet").arg("--bins");
    for p in PACKAGES {
        cmd.args(["-p", p]);
    }
    if bin_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    cmd.env("CARGO_TARGET_DIR", target)
        .env("TWINSHOP_COMMIT", commit)
        .env("TWINSHOP_RELEASE", release)
        .current_dir(crate::common::repo_root());
    let status = cmd.status().context("running cargo (is it on PATH?)")?;
    if !status.success() {
        bail!("cargo build with TWINSHOP_RELEASE={release} failed ({status})");
    }
    Ok(())
}

impl Releases {
    /// Copies release A from `bin_dir`, builds release B (`<A's release>-b`,
    /// same commit) and copies it, then puts release A back into `bin_dir`.
    pub fn prepare(bin_dir: &Path) -> Result<Self> {
        let bin_dir = std::path::absolute(bin_dir).context("the binary folder")?;
        let a_identity = identity_of(&bin_dir)?;
        ensure!(
            a_identity.commit != "unknown",
            "the binaries in {} were built without TWINSHOP_COMMIT: build them with TWINSHOP_COMMIT=$(git rev-parse HEAD) (make does)",
            bin_dir.display()
        );
        let target = bin_dir.parent().context("the binary folder has no parent (target/)")?;
        let root = target.join(format!("rollout-releases-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let a_dir = root.join("A");
        copy_release(&bin_dir, &a_dir)?;
        let b_release = format!("{}-b", a_identity.release.get(..100).unwrap_or(&a_identity.release));
        say(&format!("building release B ({b_release}): the same commit, another identity"));
        let started = std::time::Instant::now();
        cargo_build(&bin_dir, &a_identity.commit, &b_release)?;
        let build_b_s = started.elapsed().as_secs_f64();
        let b_dir = root.join("B");
        copy_release(&bin_dir, &b_dir)?;
        let b_identity = identity_of(&b_dir)?;
        ensure!(b_identity.release == b_release, "release B says {b_identity}");
        say("putting release A back into the binary folder");
        put_back(&a_dir, &bin_dir)?;
        let restored = identity_of(&bin_dir)?;
        ensure!(restored == a_identity, "the binary folder now says {restored}, not {a_identity}");
        Ok(Self {
            a: Release { name: "A", dir: a_dir, identity: a_identity },
            b: Release { name: "B", dir: b_dir, identity: b_identity },
            root,
            build_b_s,
        })
    }

    /// Removes the copies (about 250 MB each in the dev profile).
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
