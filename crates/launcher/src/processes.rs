//! Spawning one process the way a pod's container starts: its own
//! environment only, optionally inside its cgroup and its network
//! namespace; plus signals and `/proc` figures for the processes we started
//! (CPU time, resident and peak resident memory: what labs and `loadtest
//! compare` measure a process by).
//!
//! The process is started through wrappers that `exec`, so the pid we hold
//! is the service's own from the first instruction on:
//! `sh -c 'echo $$ > …/cgroup.procs; exec "$@"'` joins the cgroup (before
//! the namespace: `ip netns exec` remounts `/sys`, hiding the cgroup
//! mounts), then `ip netns exec NAME` enters the namespace, then the binary.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

pub use rustix::process::Signal;

use crate::cgroups::Cgroup;

/// When a started process counts as ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// As soon as it is spawned.
    Spawned,
    /// When a GET of the URL answers 200 (a service's `/readyz`).
    HttpOk(String),
    /// When a GET of the URL gets any HTTP answer (the edge).
    HttpAnswers(String),
    /// When a TCP connection to `host:port` is accepted.
    Tcp(String),
}

/// How to start one process.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// Its name in logs and events (`order-1`).
    pub name: String,
    /// The binary.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its whole environment besides [`base_env`] (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// The network namespace to run in.
    pub netns: Option<String>,
    /// The cgroup to run in.
    pub cgroup: Option<Cgroup>,
    /// When it counts as ready.
    pub ready: Readiness,
    /// The signal that asks it to stop gracefully (SIGTERM; nginx: SIGQUIT).
    pub stop_signal: Signal,
}

impl ProcessSpec {
    /// `program` with no arguments, environment, namespace or cgroup.
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            netns: None,
            cgroup: None,
            ready: Readiness::Spawned,
            stop_signal: Signal::TERM,
        }
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// When it counts as ready.
    pub fn ready(mut self, ready: Readiness) -> Self {
        self.ready = ready;
        self
    }

    /// Runs it in `cgroup`.
    pub fn cgroup(mut self, cgroup: Cgroup) -> Self {
        self.cgroup = Some(cgroup);
        self
    }

    /// Runs it in network namespace `netns`.
    pub fn netns(mut self, netns: impl Into<String>) -> Self {
        self.netns = Some(netns.into());
        self
    }

    /// The command line as executed: wrappers first, then the program.
    pub fn command_line(&self) -> Vec<String> {
        let mut line = Vec::new();
        if let Some(cgroup) = &self.cgroup {
            line.extend(["/bin/sh".to_owned(), "-c".to_owned(), JOIN_SCRIPT.to_owned(), "sh".to_owned()]);
            line.extend(cgroup.procs_files().iter().map(|p| p.display().to_string()));
            line.push("--".to_owned());
        }
        if let Some(ns) = &self.netns {
            line.extend([ip_binary().display().to_string(), "netns".into(), "exec".into(), ns.clone()]);
        }
        line.push(self.program.display().to_string());
        line.extend(self.args.iter().cloned());
        line
    }

    /// A command ready to spawn: clean environment, piped output, killed on drop.
    pub fn command(&self) -> tokio::process::Command {
        let line = self.command_line();
        let mut cmd = tokio::process::Command::new(&line[0]);
        cmd.args(&line[1..])
            .env_clear()
            .envs(base_env())
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }
}

/// Writes the shell's pid to each file before `--`, then execs the rest.
const JOIN_SCRIPT: &str = r#"while [ "$1" != -- ]; do echo $$ > "$1" || exit 126; shift; done; shift; exec "$@""#;

/// The environment every process gets besides its own: `PATH`, `HOME`, `LANG`.
pub fn base_env() -> Vec<(String, String)> {
    ["PATH", "HOME", "LANG", "TZ"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v)))
        .collect()
}

/// The `ip` binary (iproute2), wherever the distribution put it.
pub fn ip_binary() -> PathBuf {
    find_binary("ip").unwrap_or_else(|| PathBuf::from("ip"))
}

/// `name` in `PATH` or the usual system directories.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: Signal) -> std::io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad pid"))?;
    rustix::process::kill_process(pid, sig).map_err(Into::into)
}

/// `SIGTERM`, `SIGKILL`, ... for events and messages.
pub fn signal_name(sig: Signal) -> &'static str {
    match sig {
        s if s == Signal::TERM => "SIGTERM",
        s if s == Signal::KILL => "SIGKILL",
        s if s == Signal::STOP => "SIGSTOP",
        s if s == Signal::CONT => "SIGCONT",
        s if s == Signal::HUP => "SIGHUP",
        s if s == Signal::QUIT => "SIGQUIT",
        s if s == Signal::INT => "SIGINT",
        _ => "signal",
    }
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|state| *state != "Z" && *state != "X"))
}

/// Fields of `/proc/<pid>/stat` after the command name (state first).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// The pids whose parent is `pid` (nginx's workers, say).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|&p| stat_fields(p).and_then(|f| f.get(1).and_then(|pp| pp.parse::<u32>().ok())) == Some(pid))
        .collect()
}

/// SIGKILL to `pid` and its children, freezing it first (SIGSTOP) so it
/// cannot replace a child in between: an nginx master whose worker dies
/// forks a new one, which would outlive it holding the port.
pub fn kill_tree(pid: u32) {
    let _ = signal(pid, Signal::STOP);
    for child in children(pid) {
        let _ = signal(child, Signal::KILL);
    }
    let _ = signal(pid, Signal::KILL);
}

/// CPU time (user + system) `pid` has used so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let fields = stat_fields(pid)?;
    // After the name: state(0) ppid(1) ... utime(11) stime(12), in clock ticks.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Some(Duration::from_secs_f64(ticks as f64 / hz as f64))
}

/// Resident memory of `pid` now, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmRSS:")
}

/// What a process's resident memory is made of, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resident {
    /// All of it (`VmRSS`).
    pub total: u64,
    /// Its own pages: heap, stacks, buffers (`RssAnon`). A replica adds
    /// these wherever it runs.
    pub anon: u64,
    /// Pages mapped from files, mostly its binary's code (`RssFile`):
    /// shared, through the page cache, by every process of the same binary
    /// on one machine.
    pub file: u64,
}

/// Resident memory of `pid` now, by kind.
pub fn resident(pid: u32) -> Option<Resident> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| status_field(&status, name);
    Some(Resident { total: field("VmRSS:")?, anon: field("RssAnon:")?, file: field("RssFile:")? })
}

/// The most resident memory `pid` has had since it started (its high-water
/// mark), in bytes: what a run's memory report gives per process.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmHWM:")
}

/// A `kB` field of `/proc/<pid>/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    status_field(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?, field)
}

/// A `kB` field of a `/proc/<pid>/status` text, in bytes.
fn status_field(status: &str, field: &str) -> Option<u64> {
    let kb: u64 = status.lines().find_map(|l| l.strip_prefix(field))?.split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_joins_the_cgroup_before_the_namespace() {
        let spec = ProcessSpec::new("x", "/bin/true").args(["a"]).netns("ts1-x");
        let line = spec.command_line();
        assert_eq!(line[1..4], ["netns", "exec", "ts1-x"]);
        assert_eq!(line[4..], ["/bin/true", "a"]);
    }

    #[test]
    fn our_own_process_has_cpu_time_and_memory() {
        assert!(cpu_time(std::process::id()).is_some());
        assert!(rss_bytes(std::process::id()).is_some_and(|b| b > 0));
        let (now, peak) = (rss_bytes(std::process::id()), peak_rss_bytes(std::process::id()));
        assert!(now.zip(peak).is_some_and(|(now, peak)| peak >= now), "{now:?} {peak:?}");
        assert!(is_alive(std::process::id()));
    }

    #[test]
    fn resident_memory_is_its_own_pages_plus_its_mapped_files() {
        // Touch 8 MiB of our own, so the anonymous part is not trivially small.
        let block = vec![1u8; 8 << 20];
        let r = resident(std::process::id()).expect("our own status");
        assert!(r.anon >= 8 << 20, "{r:?}");
        assert!(r.file > 0, "the test binary's code is mapped: {r:?}");
        // The kernel sums three parts (anon, file, shmem); sampled apart, so give a page of slack.
        assert!(r.anon + r.file <= r.total + 4096, "{r:?}");
        drop(block);
    }
}
