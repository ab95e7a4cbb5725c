//! One nginx instance run by the launcher: its own prefix directory, a
//! supervised master, reloads that wait for in-flight requests, and a kill
//! that takes the workers too. The edge (public routes) and the internal
//! balancer (order → several user or payment replicas, as kube-proxy is to a
//! Service) are two such instances, so killing one is not killing the other.
//!
//! Every configuration the launcher renders bounds how long an old worker
//! may keep its connections after a reload or a graceful stop
//! ([`WORKER_SHUTDOWN_TIMEOUT`], nginx's `worker_shutdown_timeout`), as a
//! pod's grace period bounds its drain: without it, one connection that
//! stays busy (a request hanging on an upstream, an HTTP/2 client that
//! keeps a stream open) keeps the old worker, and a reload, waiting for
//! as long as it lasts. A CI run of the rollout lab once waited 60 s.
//!
//! The prefix directory is world-traversable and the temp folders belong to
//! the worker user: with a 0700 prefix, bodies between 16 and 64 KiB (which
//! nginx buffers to disk) failed with a 500 because the worker (`nobody`)
//! could not reach its `client_body` folder.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    events::{EventKind, Events},
    logs::LogTarget,
    processes::{ProcessSpec, Readiness, Signal, children, is_alive, kill_tree, signal},
    supervisor::{RestartPolicy, Supervisor},
};

/// How long an old worker may finish its requests after a reload or a
/// graceful stop before nginx closes what it still holds: longer than any
/// request of ours may take (the services' deadlines are a few seconds).
pub const WORKER_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);

/// How long after its SIGHUP the master has to start the new workers.
const NEW_WORKERS_WITHIN: Duration = Duration::from_secs(10);

/// Configuration files to write into the prefix: `(file name, text)`;
/// `nginx.conf` is the main one.
pub type Files = Vec<(&'static str, String)>;

/// A running nginx.
#[derive(Debug)]
pub struct Nginx {
    name: String,
    prefix: PathBuf,
    binary: PathBuf,
    supervisor: Supervisor,
    events: Events,
}

fn nobody_uid() -> Option<u32> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find(|l| l.starts_with("nobody:"))?.split(':').nth(2)?.parse().ok()
}

/// A fresh prefix directory `twinshop-<name>-l<pid>-<random>` with its temp folders.
fn make_prefix(name: &str) -> Result<PathBuf> {
    let prefix =
        std::env::temp_dir().join(format!("twinshop-{name}-l{}-{:08x}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&prefix).with_context(|| format!("creating {}", prefix.display()))?;
    std::fs::set_permissions(&prefix, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("opening {}", prefix.display()))?;
    let worker = rustix::process::geteuid().is_root().then(nobody_uid).flatten();
    for dir in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"] {
        let path = prefix.join(dir);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        if let Some(uid) = worker {
            std::os::unix::fs::chown(&path, Some(uid), None).with_context(|| format!("chown {}", path.display()))?;
        }
    }
    Ok(prefix)
}

fn write(prefix: &Path, files: &Files) -> Result<()> {
    for (name, text) in files {
        std::fs::write(prefix.join(name), text).with_context(|| format!("writing {name}"))?;
    }
    Ok(())
}

async fn validate(binary: &Path, prefix: &Path) -> Result<()> {
    let out = tokio::process::Command::new(binary)
        .args(["-t", "-q", "-e", "stderr", "-p"])
        .arg(prefix)
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .output()
        .await
        .context("running nginx -t")?;
    if !out.status.success() {
        bail!("the rendered nginx configuration is invalid: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

impl Nginx {
    /// Makes a prefix, writes what `render(prefix)` returns, validates it,
    /// starts nginx as process `name` and waits until `ready`.
    pub async fn start(
        name: &str,
        render: impl Fn(&Path) -> Result<Files>,
        ready: Readiness,
        events: Events,
        logs: LogTarget,
        restart: RestartPolicy,
        within: Duration,
    ) -> Result<Self> {
        let binary = crate::prereq::nginx().context("nginx (the edge) is missing: apt-get install -y nginx")?;
        let prefix = make_prefix(name)?;
        let written = match render(&prefix).and_then(|files| write(&prefix, &files)) {
            Ok(()) => validate(&binary, &prefix).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&prefix);
            return Err(e);
        }
        let p = prefix.display().to_string();
        let conf = prefix.join("nginx.conf").display().to_string();
        let spec = ProcessSpec {
            stop_signal: Signal::QUIT,
            ready,
            ..ProcessSpec::new(name, &binary).args(["-p", &p, "-c", &conf, "-e", "stderr", "-g", "daemon off;"])
        };
        let supervisor = Supervisor::start(spec, restart, events.clone(), logs);
        let nginx = Self { name: name.to_owned(), prefix, binary, supervisor, events };
        if let Err(e) = nginx.supervisor.wait_ready(within).await {
            let _ = nginx.stop(Duration::from_secs(2)).await;
            return Err(e);
        }
        Ok(nginx)
    }

    /// The prefix directory (rendered configuration, temp folders).
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The master's supervisor.
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Writes `files`, validates them, SIGHUPs the master and returns once
    /// every old worker has exited (each finishes its in-flight requests
    /// first, for at most [`WORKER_SHUTDOWN_TIMEOUT`] when the
    /// configuration sets it). Fails when the master starts no new workers
    /// (the reload did not take: its log says why) or when an old worker
    /// outlives that bound by 10 s.
    pub async fn reload(&self, files: &Files) -> Result<Duration> {
        write(&self.prefix, files)?;
        validate(&self.binary, &self.prefix).await?;
        let master = self.supervisor.pid().with_context(|| format!("{} is not running", self.name))?;
        let old = children(master);
        signal(master, Signal::HUP).with_context(|| format!("signalling {} to reload", self.name))?;
        let started = Instant::now();
        // The master starts the new workers before it tells the old ones to quit.
        while !children(master).iter().any(|pid| !old.contains(pid)) {
            if !is_alive(master) {
                bail!("{}'s master exited during the reload (see its log)", self.name);
            }
            if started.elapsed() > NEW_WORKERS_WITHIN {
                bail!(
                    "{} started no new workers within {} s of the SIGHUP: the reload did not take (see its log)",
                    self.name,
                    NEW_WORKERS_WITHIN.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let limit = WORKER_SHUTDOWN_TIMEOUT + Duration::from_secs(10);
        loop {
            // Still the master's children: a pid reused by another process is not an old worker.
            let now = children(master);
            let running: Vec<u32> = old.iter().copied().filter(|pid| now.contains(pid) && is_alive(*pid)).collect();
            if running.is_empty() {
                break;
            }
            if started.elapsed() > limit {
                bail!(
                    "{}'s old workers {running:?} still run {} s after the reload (holding {} sockets, their \
                     channels to the master included), past the worker_shutdown_timeout the launcher renders ({} s)",
                    self.name,
                    limit.as_secs(),
                    running.iter().map(|&pid| sockets(pid)).sum::<usize>(),
                    WORKER_SHUTDOWN_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let drained = started.elapsed();
        self.events.emit(&self.name, EventKind::EdgeReloaded { drained_in: drained });
        Ok(drained)
    }

    /// SIGKILL to the master *and* its workers (a killed container takes
    /// its whole process tree; orphaned workers would keep the port).
    pub async fn kill(&self) -> Result<()> {
        if let Some(master) = self.supervisor.pid() {
            // Frozen first: a master that sees a worker die forks a new one.
            let _ = signal(master, Signal::STOP);
            for worker in children(master) {
                let _ = signal(worker, Signal::KILL);
            }
        }
        self.supervisor.kill().await
    }

    /// The same as [`Nginx::kill`] without waiting (for `Drop`).
    pub fn kill_now(&self) {
        self.supervisor.abandon();
        if let Some(master) = self.supervisor.pid() {
            kill_tree(master);
        }
    }

    /// Graceful stop (SIGQUIT: workers finish their requests), then the prefix is removed.
    pub async fn stop(&self, grace: Duration) -> Result<()> {
        let workers = self.supervisor.pid().map(children).unwrap_or_default();
        self.supervisor.stop(grace).await?;
        for worker in workers {
            let _ = signal(worker, Signal::KILL);
        }
        let _ = std::fs::remove_dir_all(&self.prefix);
        Ok(())
    }
}

/// How many sockets process `pid` holds open (for a stuck worker's error).
fn sockets(pid: u32) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    fds.flatten()
        .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:")))
        .count()
}

/// The launcher pid in a prefix name `twinshop-<name>-l<pid>-<random>`.
fn owner(dir_name: &str) -> Option<u32> {
    let rest = dir_name.strip_prefix("twinshop-")?;
    let mut parts = rest.rsplitn(3, '-');
    let (_random, pid) = (parts.next()?, parts.next()?);
    pid.strip_prefix('l')?.parse().ok()
}

/// Kills the nginx of launchers that are gone and removes their prefixes.
pub fn remove_leftovers() -> usize {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let Some(pid) = owner(&entry.file_name().to_string_lossy()) else { continue };
        if Path::new(&format!("/proc/{pid}")).exists() || !entry.path().join("nginx.conf").exists() {
            continue;
        }
        let master = std::fs::read_to_string(entry.path().join("nginx.pid")).ok().and_then(|p| p.trim().parse().ok());
        if let Some(master) = master.filter(|&m| is_alive(m)) {
            kill_tree(master);
        }
        let _ = std::fs::remove_dir_all(entry.path());
        removed += 1;
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_name_their_launcher() {
        assert_eq!(owner("twinshop-edge-l4242-1a2b3c4d"), Some(4242));
        assert_eq!(owner("twinshop-balancer-l7-00000000"), Some(7));
        assert_eq!(owner("twinshop-edge.XXXXXX"), None);
        assert_eq!(owner("other-l1-2"), None);
    }
}
