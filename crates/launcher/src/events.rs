//! What happened to which process, and when: started, ready, exited (with
//! code, signal, OOM kill), restarts scheduled, signals sent, edge changes,
//! partitions. Labs chart these against their workload's timeline, so every
//! event carries both a wall-clock time and the time since the system
//! started; callers either subscribe (a broadcast channel) or read the log.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant, SystemTime},
};

use tokio::sync::broadcast;

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit code, when it exited by itself.
    pub code: Option<i32>,
    /// The signal that ended it, when one did (9 for SIGKILL, ...).
    pub signal: Option<i32>,
    /// The kernel's OOM killer ended it (its cgroup's OOM-kill count grew).
    pub oom_killed: bool,
    /// The launcher asked it to stop (a graceful stop, a replacement, the end).
    pub expected: bool,
    /// How long it ran.
    pub ran_for: Duration,
}

impl ExitInfo {
    /// A short reason: `exit 0`, `signal 9`, `OOM-killed`.
    pub fn reason(&self) -> String {
        if self.oom_killed {
            "OOM-killed".into()
        } else if let Some(sig) = self.signal {
            format!("signal {sig}")
        } else {
            format!("exit {}", self.code.unwrap_or(-1))
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The process was spawned.
    Started {
        /// Its pid.
        pid: u32,
    },
    /// Its readiness check answered (for services: `/readyz` 200).
    Ready,
    /// It exited.
    Exited(ExitInfo),
    /// The kernel's OOM killer ended it (also reported in the [`EventKind::Exited`] that follows).
    OomKilled,
    /// It was started again (by the restart policy or the caller); `restarts` so far.
    Restarted {
        /// Starts after the first, this one included.
        restarts: u32,
    },
    /// Spawning it failed (missing binary, ...).
    SpawnFailed {
        /// Why.
        error: String,
    },
    /// The restart policy will start it again after `after`.
    RestartScheduled {
        /// Restarts so far, this one included.
        restart: u32,
        /// The backoff before it.
        after: Duration,
    },
    /// The launcher sent it a signal (kill, pause, resume, ...).
    Signalled {
        /// Signal name, e.g. `SIGSTOP`.
        signal: &'static str,
    },
    /// It was taken out of the edge's upstreams.
    OutOfEdge,
    /// It was put back into the edge's upstreams.
    IntoEdge,
    /// The edge reloaded its configuration; old workers finished their requests within `drained_in`.
    EdgeReloaded {
        /// Time from the reload until the old workers had exited.
        drained_in: Duration,
    },
    /// Its links to `peer` were cut.
    Partitioned {
        /// The other side.
        peer: String,
    },
    /// Its links to `peer` were restored.
    Healed {
        /// The other side.
        peer: String,
    },
    /// Its binary was replaced.
    Replaced {
        /// The new binary.
        program: String,
    },
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Wall-clock time.
    pub at: SystemTime,
    /// Time since the event log was created (the system's start).
    pub since_start: Duration,
    /// The process (`order-1`, `edge`, ...).
    pub process: String,
    /// What happened.
    pub kind: EventKind,
}

/// The event log of one system: cheap to clone, shared by every supervisor.
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<Event>,
    log: Arc<Mutex<Vec<Event>>>,
    start: Instant,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    /// An empty log; its clock starts now.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(1024);
        Self { tx, log: Arc::new(Mutex::new(Vec::new())), start: Instant::now() }
    }

    /// Records an event and sends it to subscribers.
    pub fn emit(&self, process: &str, kind: EventKind) {
        let event =
            Event { at: SystemTime::now(), since_start: self.start.elapsed(), process: process.to_owned(), kind };
        self.log.lock().unwrap_or_else(PoisonError::into_inner).push(event.clone());
        // No subscriber is fine: the log keeps everything.
        let _ = self.tx.send(event);
    }

    /// Events from now on (a lagging subscriber loses the oldest; the log keeps all).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Every event so far, oldest first.
    pub fn snapshot(&self) -> Vec<Event> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// When the log started.
    pub fn started_at(&self) -> Instant {
        self.start
    }

    /// Waits until an event (past or future) matches, or `timeout` passes.
    pub async fn wait_for(&self, timeout: Duration, matches: impl Fn(&Event) -> bool) -> Option<Event> {
        let mut rx = self.subscribe();
        if let Some(e) = self.snapshot().into_iter().find(|e| matches(e)) {
            return Some(e);
        }
        tokio::time::timeout(timeout, async {
            loop {
                match rx.recv().await {
                    Ok(e) if matches(&e) => return Some(e),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .await
        .ok()
        .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_are_logged_and_waited_for() {
        let events = Events::new();
        events.emit("order-1", EventKind::Ready);
        let e = events.wait_for(Duration::from_millis(10), |e| e.kind == EventKind::Ready).await;
        assert_eq!(e.map(|e| e.process), Some("order-1".to_owned()));
        let later = events.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            later.emit("edge", EventKind::OutOfEdge);
        });
        assert!(events.wait_for(Duration::from_secs(2), |e| e.process == "edge").await.is_some());
        assert_eq!(events.snapshot().len(), 2);
    }
}
