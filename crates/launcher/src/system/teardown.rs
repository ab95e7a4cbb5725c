//! Stopping a system: drain every process, then remove what its start
//! created (broker namespace, fresh databases, cgroups, namespaces, nginx
//! prefixes), in that order. A system dropped without [`System::stop`] (a
//! failed test) still gets the same cleanup, from a helper thread, since
//! `Drop` cannot wait.

use std::time::Instant;

use anyhow::Result;
use futures_util::future::join_all;

use super::{StopReport, System};
use crate::{broker, databases, edge::Edge, plan::DatabaseMode};

impl System {
    /// Drains everything (SIGTERM, nginx SIGQUIT; SIGKILL after the drain
    /// time), then removes the broker namespace, fresh databases, cgroups
    /// and namespaces.
    pub async fn stop(mut self) -> Result<StopReport> {
        Ok(self.stop_inner().await)
    }

    pub(super) async fn stop_inner(&mut self) -> StopReport {
        let started = Instant::now();
        self.stopped = true;
        let drain = self.plan.drain;
        let mut report = StopReport::default();
        let edge_stop = async {
            match &self.edge {
                Some(edge) => edge.stop(drain).await.err().map(|e| format!("edge: {e:#}")),
                None => None,
            }
        };
        let stops = join_all(
            self.procs
                .iter()
                .filter_map(|(id, p)| p.sup.as_ref().map(|s| (id, s)))
                .map(|(id, sup)| async move { (id.to_string(), sup.stop(drain).await) }),
        );
        let (edge_problem, exits) = tokio::join!(edge_stop, stops);
        report.problems.extend(edge_problem);
        for (name, result) in exits {
            match result {
                Ok(exit) => report.exits.push((name, exit)),
                Err(e) => report.problems.push(format!("{name}: {e:#}")),
            }
        }
        if self.plan.events_namespace.is_none() {
            match broker::delete_namespace(&self.plan.backing.amqp, &self.events_namespace).await {
                Ok(deleted) => report.broker = Some(deleted),
                Err(e) => report.problems.push(format!("broker namespace {}: {e:#}", self.events_namespace)),
            }
        }
        if matches!(self.plan.databases, DatabaseMode::Fresh { keep: false }) {
            for db in std::mem::take(&mut self.created_databases) {
                match databases::drop_database(&self.plan.backing, &db).await {
                    Ok(()) => report.dropped_databases.push(db),
                    Err(e) => report.problems.push(format!("{e:#}")),
                }
            }
        }
        if let Some(run) = self.cgroups.take()
            && let Err(e) = run.remove().await
        {
            report.problems.push(format!("cgroups: {e:#}"));
        }
        if let Some(network) = self.network.take()
            && let Err(e) = network.destroy().await
        {
            report.problems.push(format!("namespaces: {e:#}"));
        }
        report.took = started.elapsed();
        report
    }
}

impl Drop for System {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        // Kill what runs now (the supervisors would too, but only once
        // their tasks notice), nginx's workers included.
        for sup in self.procs.values().filter_map(|p| p.sup.as_ref()) {
            sup.abandon();
            if let Some(pid) = sup.pid() {
                let _ = crate::processes::signal(pid, crate::processes::Signal::KILL);
            }
        }
        if let Some(edge) = &self.edge {
            edge.kill_now();
        }
        let (network, cgroups, prefixes) =
            (self.network.take(), self.cgroups.take(), self.edge.as_ref().map(Edge::prefixes).unwrap_or_default());
        let databases = match self.plan.databases {
            DatabaseMode::Fresh { keep: false } => std::mem::take(&mut self.created_databases),
            _ => Vec::new(),
        };
        let (backing, amqp_ns) =
            (self.plan.backing.clone(), self.plan.events_namespace.is_none().then(|| self.events_namespace.clone()));
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                if let Some(network) = network {
                    let _ = network.destroy().await;
                }
                if let Some(run) = cgroups {
                    let _ = run.remove().await;
                }
                for db in databases {
                    let _ = databases::drop_database(&backing, &db).await;
                }
                if let Some(ns) = amqp_ns {
                    let _ = broker::delete_namespace(&backing.amqp, &ns).await;
                }
            });
            for prefix in prefixes {
                let _ = std::fs::remove_dir_all(prefix);
            }
        });
        let _ = cleanup.join();
    }
}
