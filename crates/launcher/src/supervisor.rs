//! One task per process, as a kubelet is per container: it spawns the
//! process, watches it become ready, records how it exits (code, signal,
//! OOM kill), restarts it with a backoff when the policy says so, and is the
//! only place that signals it, so "paused", "stopping" and "restarting" are
//! always known and reported as [`crate::events`].
//!
//! Callers hold a cheap [`Supervisor`] handle; commands go to the task over
//! a channel and its state comes back over a watch channel. When the last
//! handle is dropped the task SIGKILLs its process and ends.

use std::{
    os::unix::process::ExitStatusExt as _,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    events::{EventKind, Events, ExitInfo},
    logs::LogTarget,
    processes::{ProcessSpec, Readiness, Signal, signal, signal_name},
};

/// The delays between restarts: `initial`, doubled per quick exit up to
/// `max`; a process that ran `reset_after` or longer starts again from `initial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// A run this long resets the delay.
    pub reset_after: Duration,
}

impl Default for Backoff {
    /// 200 ms doubling to 10 s, reset after 30 s of running (a kubelet's
    /// shape, 10 s to 5 min, scaled down for labs that measure recovery).
    fn default() -> Self {
        Self { initial: Duration::from_millis(200), max: Duration::from_secs(10), reset_after: Duration::from_secs(30) }
    }
}

impl Backoff {
    /// The delay before restart number `quick_exits + 1` of a streak.
    pub fn delay(&self, quick_exits: u32) -> Duration {
        self.initial.saturating_mul(1 << quick_exits.min(16)).min(self.max)
    }
}

/// What happens when a process exits without being asked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// It stays down (the caller may start it again).
    #[default]
    Never,
    /// It is started again after a backoff (Kubernetes' `restartPolicy: Always`).
    OnExit(Backoff),
}

impl RestartPolicy {
    /// Restart on exit with the default [`Backoff`].
    pub fn on_exit() -> Self {
        Self::OnExit(Backoff::default())
    }
}

/// Where a process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Spawned, not ready yet.
    Starting,
    /// Ready (its readiness URL answered 200).
    Ready,
    /// Stopped by SIGSTOP.
    Paused,
    /// Asked to stop, draining.
    Stopping,
    /// Stopped on request.
    Stopped,
    /// Exited by itself and will not be restarted.
    Exited,
    /// Exited; the restart policy starts it again soon.
    BackingOff,
}

/// A snapshot of one process.
#[derive(Debug, Clone)]
pub struct ProcessStatus {
    /// Its pid while it runs.
    pub pid: Option<u32>,
    /// Where it is.
    pub phase: Phase,
    /// Whether it is ready now.
    pub ready: bool,
    /// Starts after the first (by the policy or by the caller).
    pub restarts: u32,
    /// How it last exited.
    pub last_exit: Option<ExitInfo>,
    /// The binary it runs (changes on replacement).
    pub program: PathBuf,
}

enum Cmd {
    Signal(Signal, oneshot::Sender<std::io::Result<()>>),
    Stop(Duration, oneshot::Sender<Option<ExitInfo>>),
    Start(Respawn, oneshot::Sender<Result<()>>),
}

/// What a start after a stop may change: the binary (a new release) and
/// the whole environment (the desired one again, or one changed by hand).
#[derive(Debug, Clone, Default)]
pub struct Respawn {
    /// Another binary; `None`: the same.
    pub program: Option<PathBuf>,
    /// Another environment (the whole of it, as [`ProcessSpec::env`]); `None`: the same.
    pub env: Option<Vec<(String, String)>>,
}

/// A handle on one supervised process.
#[derive(Debug, Clone)]
pub struct Supervisor {
    name: String,
    tx: mpsc::Sender<Cmd>,
    status: watch::Receiver<ProcessStatus>,
    abandoned: Arc<AtomicBool>,
}

impl Supervisor {
    /// Starts `spec` under `policy` at once; output goes to `logs`, events to `events`.
    pub fn start(spec: ProcessSpec, policy: RestartPolicy, events: Events, logs: LogTarget) -> Self {
        let (tx, rx) = mpsc::channel(16);
        let initial = ProcessStatus {
            pid: None,
            phase: Phase::Starting,
            ready: false,
            restarts: 0,
            last_exit: None,
            program: spec.program.clone(),
        };
        let (status_tx, status) = watch::channel(initial);
        let name = spec.name.clone();
        let abandoned = Arc::new(AtomicBool::new(false));
        let task = Task { spec, policy, events, logs, rx, status: status_tx, abandoned: abandoned.clone() };
        tokio::spawn(task.run());
        Self { name, tx, status, abandoned }
    }

    /// From now on the process is not restarted, whatever the policy (the
    /// system is being torn down without waiting, from `Drop`).
    pub fn abandon(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
    }

    /// Its name (`order-1`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where it is now.
    pub fn status(&self) -> ProcessStatus {
        self.status.borrow().clone()
    }

    /// Its pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.status.borrow().pid
    }

    /// Follows its status.
    pub fn watch(&self) -> watch::Receiver<ProcessStatus> {
        self.status.clone()
    }

    async fn ask<T>(&self, cmd: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(cmd(reply)).await.map_err(|_| anyhow!("{}'s supervisor has ended", self.name))?;
        answer.await.map_err(|_| anyhow!("{}'s supervisor has ended", self.name))
    }

    /// Sends `sig` to the process (recorded as an event).
    pub async fn signal(&self, sig: Signal) -> Result<()> {
        self.ask(|r| Cmd::Signal(sig, r)).await?.with_context(|| format!("signalling {}", self.name))
    }

    /// SIGKILL: no drain, no goodbye (the restart policy applies).
    pub async fn kill(&self) -> Result<()> {
        self.signal(Signal::KILL).await
    }

    /// SIGSTOP: a hung process, which is not a dead one.
    pub async fn pause(&self) -> Result<()> {
        self.signal(Signal::STOP).await
    }

    /// SIGCONT after [`Supervisor::pause`].
    pub async fn resume(&self) -> Result<()> {
        self.signal(Signal::CONT).await
    }

    /// Graceful stop: the stop signal, up to `grace` to drain, then SIGKILL.
    /// It stays stopped (no restart) until [`Supervisor::start_again`].
    pub async fn stop(&self, grace: Duration) -> Result<Option<ExitInfo>> {
        self.ask(|r| Cmd::Stop(grace, r)).await
    }

    /// Starts a stopped (or exited) process again, with another binary if
    /// `program` is given (a new release). Returns once it is spawned.
    pub async fn start_again(&self, program: Option<PathBuf>) -> Result<()> {
        self.respawn(Respawn { program, env: None }).await
    }

    /// Starts a stopped (or exited) process again with what `change` says.
    /// Returns once it is spawned.
    pub async fn respawn(&self, change: Respawn) -> Result<()> {
        self.ask(|r| Cmd::Start(change, r)).await?
    }

    /// Waits until it is ready; fails at once if it exits for good first.
    pub async fn wait_ready(&self, within: Duration) -> Result<()> {
        let mut rx = self.status.clone();
        let status = tokio::time::timeout(within, rx.wait_for(|s| s.ready || s.phase == Phase::Exited))
            .await
            .map_err(|_| anyhow!("{} was not ready within {within:?}", self.name))?
            .map_err(|_| anyhow!("{}'s supervisor has ended", self.name))?
            .clone();
        if !status.ready {
            let reason = status.last_exit.map_or_else(|| "it could not be started".to_owned(), |e| e.reason());
            bail!("{} exited before it was ready ({reason})", self.name);
        }
        Ok(())
    }
}

struct Task {
    spec: ProcessSpec,
    policy: RestartPolicy,
    events: Events,
    logs: LogTarget,
    rx: mpsc::Receiver<Cmd>,
    status: watch::Sender<ProcessStatus>,
    abandoned: Arc<AtomicBool>,
}

async fn ready_when(ready: Readiness) {
    loop {
        let ok = match &ready {
            Readiness::Spawned => true,
            Readiness::HttpOk(url) => crate::readiness::is_ok(url).await,
            Readiness::HttpAnswers(url) => crate::readiness::status(url).await.is_some(),
            Readiness::Tcp(addr) => crate::readiness::accepts(addr).await,
        };
        if ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Task {
    fn emit(&self, kind: EventKind) {
        self.events.emit(&self.spec.name, kind);
    }

    fn set(&self, f: impl FnOnce(&mut ProcessStatus)) {
        self.status.send_modify(f);
    }

    async fn run(mut self) {
        let mut want = true;
        let mut quick_exits = 0u32;
        let mut spawns = 0u32;
        let mut start_reply: Option<oneshot::Sender<Result<()>>> = None;
        loop {
            if !want {
                match self.rx.recv().await {
                    None => return,
                    Some(Cmd::Start(change, reply)) => {
                        self.apply(change);
                        want = true;
                        quick_exits = 0;
                        start_reply = Some(reply);
                    }
                    Some(Cmd::Stop(_, reply)) => drop(reply.send(None)),
                    Some(Cmd::Signal(_, reply)) => drop(reply.send(Err(not_running()))),
                }
                continue;
            }
            let oom_before = self.spec.cgroup.as_ref().map_or(0, crate::cgroups::Cgroup::oom_kills);
            let spawned = self.spec.command().spawn();
            let mut child = match spawned {
                Ok(child) => child,
                Err(e) => {
                    let error = format!("{}: {e}", self.spec.program.display());
                    self.emit(EventKind::SpawnFailed { error: error.clone() });
                    self.set(|s| s.phase = Phase::Exited);
                    if let Some(r) = start_reply.take() {
                        let _ = r.send(Err(anyhow!("starting {}: {error}", self.spec.name)));
                    }
                    want = false;
                    continue;
                }
            };
            let pid = child.id().unwrap_or(0);
            // The pumps end by themselves when the process closes its output.
            if let Some(out) = child.stdout.take() {
                drop(self.logs.pump(&self.spec.name, out));
            }
            if let Some(err) = child.stderr.take() {
                drop(self.logs.pump(&self.spec.name, err));
            }
            spawns += 1;
            let restarted = spawns > 1;
            self.set(|s| {
                s.pid = Some(pid);
                s.phase = Phase::Starting;
                s.ready = false;
                if restarted {
                    s.restarts += 1;
                }
            });
            self.emit(EventKind::Started { pid });
            if restarted {
                let restarts = self.status.borrow().restarts;
                self.emit(EventKind::Restarted { restarts });
            }
            if let Some(r) = start_reply.take() {
                let _ = r.send(Ok(()));
            }
            let started = Instant::now();
            let ready = ready_when(self.spec.ready.clone());
            tokio::pin!(ready);
            let mut ready_done = false;
            let mut stop_reply = None;
            let mut expected = false;
            let exit = loop {
                tokio::select! {
                    st = child.wait() => break st,
                    () = &mut ready, if !ready_done => {
                        ready_done = true;
                        self.set(|s| {
                            s.ready = true;
                            if s.phase == Phase::Starting {
                                s.phase = Phase::Ready;
                            }
                        });
                        self.emit(EventKind::Ready);
                    }
                    cmd = self.rx.recv() => match cmd {
                        None => {
                            let _ = child.start_kill();
                            break child.wait().await;
                        }
                        Some(Cmd::Signal(sig, reply)) => {
                            let sent = signal(pid, sig);
                            if sent.is_ok() {
                                self.emit(EventKind::Signalled { signal: signal_name(sig) });
                                self.set(|s| {
                                    if sig == Signal::STOP {
                                        s.phase = Phase::Paused;
                                    } else if sig == Signal::CONT && s.phase == Phase::Paused {
                                        s.phase = if s.ready { Phase::Ready } else { Phase::Starting };
                                    }
                                });
                            }
                            let _ = reply.send(sent);
                        }
                        Some(Cmd::Stop(grace, reply)) => {
                            want = false;
                            expected = true;
                            stop_reply = Some(reply);
                            self.set(|s| s.phase = Phase::Stopping);
                            let _ = signal(pid, self.spec.stop_signal);
                            // A paused process must run to drain.
                            let _ = signal(pid, Signal::CONT);
                            match tokio::time::timeout(grace, child.wait()).await {
                                Ok(st) => break st,
                                Err(_) => {
                                    let _ = signal(pid, Signal::KILL);
                                    break child.wait().await;
                                }
                            }
                        }
                        Some(Cmd::Start(_, reply)) => {
                            let _ = reply.send(Err(anyhow!("{} is already running", self.spec.name)));
                        }
                    },
                }
            };
            let oom = self.spec.cgroup.as_ref().is_some_and(|c| c.oom_kills() > oom_before);
            let restarts = matches!(self.policy, RestartPolicy::OnExit(_)) && !self.abandoned.load(Ordering::SeqCst);
            let info = ExitInfo {
                code: exit.as_ref().ok().and_then(std::process::ExitStatus::code),
                signal: exit.as_ref().ok().and_then(|s| s.signal()),
                oom_killed: oom,
                expected,
                ran_for: started.elapsed(),
            };
            self.set(|s| {
                s.pid = None;
                s.ready = false;
                s.last_exit = Some(info.clone());
                s.phase = match (want, restarts) {
                    (false, _) => Phase::Stopped,
                    (true, true) => Phase::BackingOff,
                    (true, false) => Phase::Exited,
                };
            });
            if oom {
                self.emit(EventKind::OomKilled);
            }
            self.emit(EventKind::Exited(info.clone()));
            if let Some(r) = stop_reply {
                let _ = r.send(Some(info.clone()));
            }
            let RestartPolicy::OnExit(backoff) = self.policy else {
                want = false;
                continue;
            };
            if !restarts {
                want = false;
                continue;
            }
            if !want {
                continue;
            }
            if info.ran_for >= backoff.reset_after {
                quick_exits = 0;
            }
            let delay = backoff.delay(quick_exits);
            quick_exits += 1;
            let restart = self.status.borrow().restarts + 1;
            self.emit(EventKind::RestartScheduled { restart, after: delay });
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    cmd = self.rx.recv() => match cmd {
                        None => return,
                        Some(Cmd::Stop(_, reply)) => {
                            want = false;
                            self.set(|s| s.phase = Phase::Stopped);
                            let _ = reply.send(None);
                            break;
                        }
                        Some(Cmd::Start(change, reply)) => {
                            self.apply(change);
                            start_reply = Some(reply);
                            break;
                        }
                        Some(Cmd::Signal(_, reply)) => drop(reply.send(Err(not_running()))),
                    },
                }
            }
        }
    }

    fn apply(&mut self, change: Respawn) {
        if let Some(env) = change.env {
            self.spec.env = env;
        }
        if let Some(program) = change.program.filter(|p| *p != self.spec.program) {
            self.emit(EventKind::Replaced { program: program.display().to_string() });
            self.set(|s| s.program = program.clone());
            self.spec.program = program;
        }
    }
}

fn not_running() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotFound, "the process is not running")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_max() {
        let b =
            Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(1), reset_after: Duration::ZERO };
        let delays: Vec<u128> = (0..6).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    }

    #[tokio::test]
    async fn a_killed_process_comes_back_and_a_stopped_one_does_not() {
        let events = Events::new();
        let spec = ProcessSpec::new("sleeper", "/bin/sleep").args(["30"]);
        let policy = RestartPolicy::OnExit(Backoff { initial: Duration::from_millis(50), ..Backoff::default() });
        let sup = Supervisor::start(spec, policy, events.clone(), LogTarget::Discard);
        sup.wait_ready(Duration::from_secs(5)).await.expect("ready");
        let first = sup.pid().expect("pid");
        sup.kill().await.expect("kill");
        let mut rx = sup.watch();
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| s.restarts == 1 && s.pid.is_some()))
            .await
            .expect("restarted in time")
            .expect("watch");
        assert_ne!(sup.pid(), Some(first));
        let killed = events.snapshot().into_iter().find_map(|e| match e.kind {
            EventKind::Exited(info) => Some(info),
            _ => None,
        });
        assert_eq!(killed.map(|i| (i.signal, i.expected)), Some((Some(9), false)));
        let stopped = sup.stop(Duration::from_secs(5)).await.expect("stop").expect("it ran");
        assert_eq!((stopped.signal, stopped.expected), (Some(15), true));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(sup.status().phase, Phase::Stopped);
        sup.start_again(Some("/bin/sleep".into())).await.expect("start again");
        assert!(sup.pid().is_some());
        sup.stop(Duration::from_secs(5)).await.expect("stop");
    }
}
