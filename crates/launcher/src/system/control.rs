//! Control of a running system, per process (service + replica): the
//! faults of the labs (SIGKILL, SIGSTOP/SIGCONT, cuts between namespaces,
//! a process cut from a backing service) and the operations of a rollout
//! (graceful stop, restart, replacement by another binary or with a
//! configuration changed by hand, taking a replica out of the edge and
//! putting it back), with the rolling replacement built from them, as
//! Kubernetes does it with an endpoints controller.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::System;
use crate::{
    events::{EventKind, ExitInfo},
    netns::Namespace,
    plan::{ProcessId, Service},
    processes::Signal,
    supervisor::Respawn,
};

/// One replica's replacement, timed.
#[derive(Debug, Clone)]
pub struct RolloutStep {
    /// Which replica.
    pub id: ProcessId,
    /// Taking it out of the edge: reload until the old workers finished their requests.
    pub out_of_edge: Duration,
    /// SIGTERM until it exited (its own drain).
    pub stop: Duration,
    /// How the old process ended.
    pub exit: Option<ExitInfo>,
    /// Spawning the replacement until its `/readyz` answered 200.
    pub start_to_ready: Duration,
    /// Putting it back into the edge.
    pub into_edge: Duration,
}

/// A rolling replacement of every replica of a service.
#[derive(Debug, Clone)]
pub struct RolloutReport {
    /// Which service.
    pub service: Service,
    /// One step per replica, in order.
    pub steps: Vec<RolloutStep>,
    /// The whole rollout.
    pub took: Duration,
}

impl System {
    /// Sends `sig` to one process.
    pub async fn signal(&self, id: ProcessId, sig: Signal) -> Result<()> {
        self.supervisor(id)?.signal(sig).await
    }

    /// SIGKILL: no drain (the restart policy applies).
    pub async fn kill(&self, id: ProcessId) -> Result<()> {
        self.supervisor(id)?.kill().await
    }

    /// SIGSTOP: the process hangs; connections to it are accepted by the
    /// kernel but never answered.
    pub async fn pause(&self, id: ProcessId) -> Result<()> {
        self.supervisor(id)?.pause().await
    }

    /// SIGCONT after [`System::pause`].
    pub async fn resume(&self, id: ProcessId) -> Result<()> {
        self.supervisor(id)?.resume().await
    }

    /// Graceful stop (SIGTERM, the plan's drain time, then SIGKILL); it
    /// stays stopped until [`System::start_process`]. The edge keeps routing
    /// to it (use [`System::take_out`] first for a clean stop).
    pub async fn stop_process(&self, id: ProcessId) -> Result<Option<ExitInfo>> {
        self.supervisor(id)?.stop(self.plan.drain).await
    }

    /// Starts a stopped process again and waits until it is ready.
    pub async fn start_process(&self, id: ProcessId) -> Result<()> {
        let sup = self.supervisor(id)?;
        sup.start_again(None).await?;
        sup.wait_ready(self.plan.ready_timeout).await
    }

    /// Graceful stop, then start, then ready.
    pub async fn restart(&self, id: ProcessId) -> Result<()> {
        self.stop_process(id).await?;
        self.start_process(id).await
    }

    /// Changes the CPU quota of `id` while it runs (an in-place resize of
    /// `resources.limits.cpu`); it stays in force across restarts. The
    /// process must have been started with a CPU limit ([`crate::Plan::limits`]).
    pub fn set_cpu(&self, id: ProcessId, cores: f64) -> Result<()> {
        let group = self.cgroup(id).with_context(|| format!("{id} has no cgroup: give it a CPU limit in the plan"))?;
        group.set_cpu(cores).with_context(|| format!("setting the CPU quota of {id}"))
    }

    /// Takes `id` out of the edge (and its internal balancer), returning
    /// once nginx's old workers have finished their in-flight requests.
    pub async fn take_out(&self, id: ProcessId) -> Result<Duration> {
        let edge = self.edge.as_ref().context("this system has no edge")?;
        edge.set_in_edge(id, false).await
    }

    /// Waits until `id` is ready, then puts it back into the edge.
    pub async fn put_back(&self, id: ProcessId) -> Result<Duration> {
        self.supervisor(id)?.wait_ready(self.plan.ready_timeout).await?;
        let edge = self.edge.as_ref().context("this system has no edge")?;
        edge.set_in_edge(id, true).await
    }

    /// Replaces one process by a new one running `program` (a new release;
    /// `None`: the same binary) with the plan's environment (whatever was
    /// changed by hand is gone, as in a pod made anew from its template):
    /// out of the edge, SIGTERM and wait for its exit, start the
    /// replacement, wait until ready, back into the edge.
    pub async fn replace(&self, id: ProcessId, program: Option<PathBuf>) -> Result<RolloutStep> {
        self.replace_with(id, program, &[]).await
    }

    /// [`System::replace`] with `changes` on top of the plan's environment:
    /// the *pet* path of `lab run rollout`, a process changed by hand
    /// (another value, or a variable the plan does not set), which only a
    /// drift check can tell from its siblings. An empty value removes the
    /// variable.
    pub async fn replace_with(
        &self,
        id: ProcessId,
        program: Option<PathBuf>,
        changes: &[(&str, &str)],
    ) -> Result<RolloutStep> {
        let sup = self.supervisor(id)?;
        let mut env = self.env(id, false);
        for (key, value) in changes {
            env.retain(|(k, _)| k != key);
            if !value.is_empty() {
                env.push(((*key).to_owned(), (*value).to_owned()));
            }
        }
        let behind_edge = self.edge.is_some();
        let t = Instant::now();
        let out_of_edge = if behind_edge { self.take_out(id).await? } else { Duration::ZERO };
        let t_out = t.elapsed();
        let exit = sup.stop(self.plan.drain).await?;
        let stop = t.elapsed() - t_out;
        let t_start = Instant::now();
        sup.respawn(Respawn { program, env: Some(env) }).await?;
        sup.wait_ready(self.plan.ready_timeout).await?;
        let start_to_ready = t_start.elapsed();
        let into_edge = if behind_edge { self.put_back(id).await? } else { Duration::ZERO };
        Ok(RolloutStep { id, out_of_edge, stop, exit, start_to_ready, into_edge })
    }

    /// Replaces every replica of `service`, one at a time (see
    /// [`System::replace`]), with the binary of the same name in `bin_dir`
    /// (`None`: the same binary). With two or more replicas behind the edge
    /// no request fails (for a client that resends a request reset on an
    /// idle keepalive connection, see [`crate::edge`]); with one, requests
    /// get 503 while it is replaced.
    pub async fn rolling_replace(&self, service: Service, bin_dir: Option<&Path>) -> Result<RolloutReport> {
        let started = Instant::now();
        let program = bin_dir.map(|d| d.join(service.binary()));
        if let Some(p) = &program
            && !p.is_file()
        {
            bail!("{} is missing", p.display());
        }
        let ids: Vec<ProcessId> = self.procs.keys().filter(|id| id.service == service).copied().collect();
        if ids.is_empty() {
            bail!("no {} process in this system", service.name());
        }
        let mut steps = Vec::new();
        for id in ids {
            steps.push(self.replace(id, program.clone()).await.with_context(|| format!("replacing {id}"))?);
        }
        Ok(RolloutReport { service, steps, took: started.elapsed() })
    }

    /// SIGKILL to the edge's master and workers (the restart policy applies).
    pub async fn kill_edge(&self) -> Result<()> {
        self.edge.as_ref().context("this system has no edge")?.kill().await
    }

    fn ns(&self, id: ProcessId) -> Result<&Namespace> {
        self.proc(id)?.ns.as_ref().with_context(|| format!("{id} has no namespace: start the plan with namespaces"))
    }

    /// Cuts the link between two processes both ways (iptables DROP in both
    /// namespaces): connections between them hang until their timeouts.
    pub async fn partition(&self, a: ProcessId, b: ProcessId) -> Result<()> {
        let network = self.network.as_ref().context("this system has no namespaces")?;
        network.cut(self.ns(a)?, self.ns(b)?).await?;
        self.events.emit(&a.to_string(), EventKind::Partitioned { peer: b.to_string() });
        self.events.emit(&b.to_string(), EventKind::Partitioned { peer: a.to_string() });
        Ok(())
    }

    /// Restores the link cut by [`System::partition`].
    pub async fn heal(&self, a: ProcessId, b: ProcessId) -> Result<()> {
        let network = self.network.as_ref().context("this system has no namespaces")?;
        network.heal(self.ns(a)?, self.ns(b)?).await?;
        self.events.emit(&a.to_string(), EventKind::Healed { peer: b.to_string() });
        self.events.emit(&b.to_string(), EventKind::Healed { peer: a.to_string() });
        Ok(())
    }

    /// Cuts every replica of `a` from every replica of `b`, including the
    /// path through an internal balancer (order → several user or payment replicas).
    pub async fn partition_services(&self, a: Service, b: Service) -> Result<()> {
        self.service_links(a, b, true).await
    }

    /// Restores what [`System::partition_services`] cut.
    pub async fn heal_services(&self, a: Service, b: Service) -> Result<()> {
        self.service_links(a, b, false).await
    }

    async fn service_links(&self, a: Service, b: Service, cut: bool) -> Result<()> {
        let network = self.network.as_ref().context("this system has no namespaces")?;
        let of = |s: Service| self.procs.keys().filter(move |id| id.service == s).copied();
        for x in of(a) {
            for y in of(b) {
                if cut { self.partition(x, y).await? } else { self.heal(x, y).await? }
            }
        }
        for (caller, callee) in [(a, b), (b, a)] {
            if let Some(&port) = self.balancers.get(&callee) {
                for x in of(caller) {
                    let ns = self.ns(x)?;
                    if cut {
                        network.block(ns, network.gateway(), port).await?;
                    } else {
                        network.unblock(ns, network.gateway(), port).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Cuts the edge (on the host) from `id`'s public port: the edge's
    /// connections to it hang until nginx's connect timeout, then it tries
    /// another replica or answers 503.
    pub async fn cut_from_edge(&self, id: ProcessId) -> Result<()> {
        let network = self.network.as_ref().context("this system has no namespaces")?;
        network.block_inbound(self.ns(id)?, network.gateway(), self.proc(id)?.http_port).await?;
        self.events.emit(&id.to_string(), EventKind::Partitioned { peer: "edge".into() });
        Ok(())
    }

    /// Undoes [`System::cut_from_edge`].
    pub async fn heal_from_edge(&self, id: ProcessId) -> Result<()> {
        let network = self.network.as_ref().context("this system has no namespaces")?;
        network.unblock_inbound(self.ns(id)?, network.gateway(), self.proc(id)?.http_port).await?;
        self.events.emit(&id.to_string(), EventKind::Healed { peer: "edge".into() });
        Ok(())
    }

    /// Cuts `id` from a service on the host's loopback (Postgres 5432,
    /// Redis 6379, RabbitMQ 5672, ...): its connections there hang.
    pub async fn block_host_port(&self, id: ProcessId, port: u16) -> Result<()> {
        let network = self.network.as_ref().context("this system has no namespaces")?;
        network.block(self.ns(id)?, network.gateway(), port).await
    }

    /// Undoes [`System::block_host_port`].
    pub async fn unblock_host_port(&self, id: ProcessId, port: u16) -> Result<()> {
        let network = self.network.as_ref().context("this system has no namespaces")?;
        network.unblock(self.ns(id)?, network.gateway(), port).await
    }
}
