//! The machine tools the launcher drives: nginx (the edge), iproute2 and
//! iptables (namespaces). The library only finds them and says plainly what
//! is missing; [`ensure`] also installs one from the distribution's packages
//! (as `scripts/run-local` always did for nginx), for the binary and tests.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};

use crate::processes::find_binary;

/// The nginx binary, if installed.
pub fn nginx() -> Option<PathBuf> {
    find_binary("nginx")
}

/// Finds `binary`, installing Debian's `package` first when it is missing
/// (`apt-get update` + `apt-get install -y`, as root or through sudo).
pub fn ensure(binary: &str, package: &str) -> Result<PathBuf> {
    if let Some(path) = find_binary(binary) {
        return Ok(path);
    }
    eprintln!("{binary} is missing; installing {package} from the distribution's packages...");
    let root = rustix::process::geteuid().is_root();
    let apt = |args: &[&str]| -> Result<()> {
        let mut cmd = if root { std::process::Command::new("apt-get") } else { std::process::Command::new("sudo") };
        if !root {
            cmd.arg("apt-get");
        }
        let status = cmd
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(std::process::Stdio::null())
            .status()
            .context("running apt-get (is this Debian or Ubuntu?)")?;
        if !status.success() {
            bail!("apt-get {} failed ({status})", args.join(" "));
        }
        Ok(())
    };
    apt(&["update", "-qq"])?;
    apt(&["install", "-y", "-qq", package])?;
    find_binary(binary).with_context(|| format!("{binary} is still missing after installing {package}"))
}
