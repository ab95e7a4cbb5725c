//! Graceful shutdown: one token that says "stop", one tracker that knows
//! what is still running, and a deadline.
//!
//! Why it exists: on SIGTERM an orchestrator gives a process a grace period
//! (`terminationGracePeriodSeconds`) and then kills it. Within
//! `SHUTDOWN_TIMEOUT` the process must stop accepting, let in-flight requests
//! and background tasks (outbox relay, consumers) finish, and flush
//! telemetry last. Every task a process spawns goes through [`Shutdown::spawn`]
//! so none is forgotten.

use std::{future::Future, time::Duration};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Cloneable handle: cancel it to stop everything, spawn tracked tasks on it.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolves once shutdown has begun.
    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// An owned future for APIs that want `'static` (e.g. `axum::serve`).
    pub fn cancelled_owned(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.token.clone().cancelled_owned()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Begins shutdown: every task watching [`Shutdown::cancelled`] stops.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Spawns a task that [`Shutdown::drain`] will wait for.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Triggers shutdown and waits up to `timeout` for every tracked task.
    /// Returns `false` if some were still running at the deadline (they are
    /// abandoned: the process is about to exit).
    pub async fn drain(&self, timeout: Duration) -> bool {
        self.trigger();
        self.tracker.close();
        let drained = tokio::time::timeout(timeout, self.tracker.wait()).await.is_ok();
        if drained {
            tracing::info!("all tasks drained");
        } else {
            tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "shutdown deadline reached with tasks still running"
            );
        }
        drained
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!(signal = "SIGINT", "shutdown requested"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutdown requested"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_waits_for_tasks_that_finish_after_cancellation() {
        let shutdown = Shutdown::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let watcher = shutdown.clone();
        shutdown.spawn(async move {
            watcher.cancelled().await;
            tokio::task::yield_now().await;
            let _ = tx.send("finished its work");
        });
        assert!(shutdown.drain(Duration::from_secs(5)).await);
        assert_eq!(rx.await.ok(), Some("finished its work"));
    }

    #[tokio::test]
    async fn drain_gives_up_at_the_deadline() {
        let shutdown = Shutdown::new();
        shutdown.spawn(std::future::pending::<()>());
        assert!(!shutdown.drain(Duration::from_millis(50)).await);
    }
}
