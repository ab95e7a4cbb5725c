//! A running system: [`System::start`] turns a [`Plan`] into databases,
//! processes (in their namespaces and cgroups, under their supervisors) and
//! the edge, in that order, waiting for each to be ready; [`System::stop`]
//! drains everything and removes what the start created. Control at run
//! time (signals, replacement, the edge, partitions) is in `control`,
//! stopping and cleanup in `teardown`.

mod control;
mod env;
mod teardown;

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use futures_util::future::join_all;

pub use control::{RolloutReport, RolloutStep};

use crate::{
    Plan, broker,
    cgroups::{Cgroup, CgroupRun, Hierarchy},
    databases,
    edge::{Edge, EdgeConfig, InternalBalancer, Member},
    events::{Events, ExitInfo},
    netns::{Namespace, Network},
    plan::{Build, DatabaseMode, PortChoice, ProcessId, Service},
    processes::{ProcessSpec, Readiness},
    supervisor::{Phase, Supervisor},
};

/// One process of the system, as a caller sees it.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    /// Which one.
    pub id: ProcessId,
    /// Its pid while it runs.
    pub pid: Option<u32>,
    /// Where it is in its life.
    pub phase: Phase,
    /// Starts after the first.
    pub restarts: u32,
    /// How it last exited.
    pub last_exit: Option<ExitInfo>,
    /// Its address: 127.0.0.1, or its own in its namespace.
    pub address: Ipv4Addr,
    /// Its public API port.
    pub http_port: u16,
    /// Its internal port (`/readyz`, `/metrics`, lookups, gRPC).
    pub internal_port: u16,
    /// Its network namespace's name, when namespaced.
    pub netns: Option<String>,
    /// Its cgroup directories, when limited.
    pub cgroup: Option<Vec<PathBuf>>,
    /// The binary it runs.
    pub program: PathBuf,
}

impl ProcessInfo {
    /// `http://<address>:<internal port>`.
    pub fn internal_url(&self) -> String {
        format!("http://{}:{}", self.address, self.internal_port)
    }

    /// `http://<address>:<http port>`.
    pub fn public_url(&self) -> String {
        format!("http://{}:{}", self.address, self.http_port)
    }
}

/// What [`System::stop`] did.
#[derive(Debug, Default)]
pub struct StopReport {
    /// How each process ended (`None`: it was not running).
    pub exits: Vec<(String, Option<ExitInfo>)>,
    /// Databases dropped.
    pub dropped_databases: Vec<String>,
    /// What was deleted from RabbitMQ.
    pub broker: Option<broker::Deleted>,
    /// Cleanup steps that failed (the rest still ran).
    pub problems: Vec<String>,
    /// How long the whole stop took.
    pub took: Duration,
}

struct Proc {
    /// `None` until the process is started.
    sup: Option<Supervisor>,
    http_port: u16,
    internal_port: u16,
    ns: Option<Namespace>,
    cgroup: Option<Cgroup>,
}

impl Proc {
    fn sup(&self) -> Result<&Supervisor> {
        self.sup.as_ref().context("the process was never started")
    }
}

/// A running build. Methods take `&self`: share it (`Arc`) between a
/// workload and a nemesis.
pub struct System {
    plan: Plan,
    events: Events,
    procs: BTreeMap<ProcessId, Proc>,
    edge: Option<Edge>,
    network: Option<Network>,
    cgroups: Option<CgroupRun>,
    databases: BTreeMap<Service, String>,
    created_databases: Vec<String>,
    events_namespace: String,
    balancers: BTreeMap<Service, u16>,
    keys: (String, String),
    stopped: bool,
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("build", &self.plan.build)
            .field("processes", &self.procs.keys().map(ToString::to_string).collect::<Vec<_>>())
            .field("edge", &self.edge.as_ref().map(Edge::url))
            .field("events_namespace", &self.events_namespace)
            .finish_non_exhaustive()
    }
}

fn read_key(dir: &Path, name: &str) -> Result<String> {
    let path = dir.join(name);
    std::fs::read_to_string(&path).with_context(|| format!("reading the JWT key {}", path.display()))
}

impl System {
    /// Starts everything the plan asks for and waits until the edge (or,
    /// without one, every process) is ready. On failure, what was created is removed.
    pub async fn start(plan: Plan) -> Result<System> {
        let keys = (read_key(&plan.keys_dir, "jwt-private.pem")?, read_key(&plan.keys_dir, "jwt-public.pem")?);
        let events_namespace = plan
            .events_namespace
            .clone()
            .unwrap_or_else(|| format!("launch_l{}_{:08x}", std::process::id(), rand::random::<u32>()));
        let mut system = System {
            plan,
            events: Events::new(),
            procs: BTreeMap::new(),
            edge: None,
            network: None,
            cgroups: None,
            databases: BTreeMap::new(),
            created_databases: Vec::new(),
            events_namespace,
            balancers: BTreeMap::new(),
            keys,
            stopped: false,
        };
        match system.start_inner().await {
            Ok(()) => Ok(system),
            Err(e) => {
                let report = system.stop_inner().await;
                let problems = report.problems.join("; ");
                if problems.is_empty() {
                    Err(e)
                } else {
                    Err(e.context(format!("cleanup after the failed start: {problems}")))
                }
            }
        }
    }

    async fn start_inner(&mut self) -> Result<()> {
        let plan = self.plan.clone();
        for service in plan.build.services() {
            let bin = plan.bin_dir.join(service.binary());
            if !bin.is_file() {
                bail!("{} is missing: build the binaries first (cargo build --bins)", bin.display());
            }
        }
        crate::nginx::remove_leftovers();
        if let Ok(dropped) = databases::drop_leftovers(&plan.backing).await
            && !dropped.is_empty()
        {
            plan.logs.line("launch", &format!("dropped databases left by a crashed run: {}", dropped.join(", ")));
        }
        let ids = plan.processes();
        self.balancers = self.choose_ports_and_balancers(&ids)?;
        if plan.namespaces {
            let mut network = Network::create().await?;
            for id in &ids {
                let ns = network.add(&id.to_string()).await?;
                if let Some(p) = self.procs.get_mut(id) {
                    p.ns = Some(ns);
                }
            }
            self.network = Some(network);
        }
        let limited: Vec<_> = ids.iter().filter_map(|id| plan.limits_of(*id).map(|l| (*id, l))).collect();
        if !limited.is_empty() {
            let hierarchy = Hierarchy::detect()?;
            let _ = crate::cgroups::remove_leftovers(&hierarchy).await;
            let run = CgroupRun::new(hierarchy);
            self.cgroups = Some(run.clone());
            for (id, limits) in limited {
                let group = run.group(&id.to_string(), limits)?;
                if let Some(p) = self.procs.get_mut(&id) {
                    p.cgroup = Some(group);
                }
            }
        }
        self.prepare_databases().await?;
        let specs: Vec<ProcessSpec> = ids.iter().map(|id| self.spec(*id)).collect();
        for (id, spec) in ids.iter().zip(specs) {
            let sup = Supervisor::start(spec, plan.restart, self.events.clone(), plan.logs.clone());
            if let Some(p) = self.procs.get_mut(id) {
                p.sup = Some(sup);
            }
        }
        let waits = self.procs.values().filter_map(|p| p.sup.as_ref()).map(|s| s.wait_ready(plan.ready_timeout));
        for result in join_all(waits).await {
            result.context("see the process's log")?;
        }
        if let Some(edge_plan) = &plan.edge {
            let port = match edge_plan.port {
                Some(port) => port,
                None => crate::ports::free_port()?,
            };
            let config = EdgeConfig {
                build: plan.build,
                port,
                all_addresses: edge_plan.all_addresses,
                templates: edge_plan.templates.clone(),
                shop: edge_plan.shop.clone(),
                jaeger_ui: edge_plan.jaeger_ui.clone(),
                internal: self.balancers.iter().map(|(&service, &port)| InternalBalancer { service, port }).collect(),
            };
            let members = self.procs.iter().map(|(id, p)| (*id, self.member(p))).collect();
            let edge =
                Edge::start(config, members, self.events.clone(), plan.logs.clone(), plan.restart, plan.ready_timeout)
                    .await?;
            self.edge = Some(edge);
        }
        Ok(())
    }

    /// Ports per process (and balancers), with placeholder supervisors replaced once started.
    fn choose_ports_and_balancers(&mut self, ids: &[ProcessId]) -> Result<BTreeMap<Service, u16>> {
        let plan = &self.plan;
        let balanced: Vec<Service> = [Service::User, Service::Payment]
            .into_iter()
            .filter(|s| plan.edge.is_some() && plan.replicas_of(*s) > 1)
            .collect();
        let mut free = match &plan.ports {
            PortChoice::Free => crate::ports::free_ports(ids.len() * 2 + balanced.len())?,
            PortChoice::Classic { .. } => Vec::new(),
        }
        .into_iter();
        for id in ids {
            // In namespaces, replicas share their service's ports, each at its own address (as pods).
            let first = ProcessId::new(id.service, 1);
            let shared = self.procs.get(&first).filter(|_| plan.namespaces).map(|p| (p.http_port, p.internal_port));
            let (http, internal) = match (&plan.ports, shared) {
                (_, Some(ports)) => ports,
                (PortChoice::Free, None) => (free.next().unwrap_or_default(), free.next().unwrap_or_default()),
                (PortChoice::Classic { overrides }, None) => {
                    let (http, internal) = id.service.classic_ports();
                    let var = |suffix: &str, default: u16| {
                        overrides.get(&format!("{}{suffix}", id.service.env_prefix())).copied().unwrap_or(default)
                    };
                    let step = 100 * (id.replica - 1);
                    (var("HTTP_PORT", http) + step, var("INTERNAL_PORT", internal) + step)
                }
            };
            self.procs
                .insert(*id, Proc { sup: None, http_port: http, internal_port: internal, ns: None, cgroup: None });
        }
        let mut balancers = BTreeMap::new();
        for service in balanced {
            let port = match free.next() {
                Some(port) => port,
                None => crate::ports::free_port()?,
            };
            balancers.insert(service, port);
        }
        Ok(balancers)
    }

    async fn prepare_databases(&mut self) -> Result<()> {
        let plan = self.plan.clone();
        for &service in plan.build.services() {
            let name = match &plan.databases {
                DatabaseMode::Fresh { .. } => databases::fresh_name(service.name()),
                DatabaseMode::Named { suffix } => databases::named(service.name(), suffix)?,
            };
            if databases::create_if_missing(&plan.backing, &name).await? {
                self.created_databases.push(name.clone());
            }
            self.databases.insert(service, name);
        }
        // Migrations per service (not per replica), on the host side.
        for &service in plan.build.services() {
            let env = self.env(ProcessId::new(service, 1), true);
            let bin = plan.bin_dir.join(service.binary());
            databases::migrate(&bin, &env, &plan.logs, &format!("{} migrate", service.name())).await?;
        }
        Ok(())
    }

    fn spec(&self, id: ProcessId) -> ProcessSpec {
        let p = &self.procs[&id];
        let address = p.ns.as_ref().map_or(Ipv4Addr::LOCALHOST, |ns| ns.address);
        let mut spec = ProcessSpec::new(id.to_string(), self.plan.bin_dir.join(id.service.binary()));
        spec.env = self.env(id, false);
        spec.netns = p.ns.as_ref().map(|ns| ns.name.clone());
        spec.cgroup = p.cgroup.clone();
        spec.ready = Readiness::HttpOk(format!("http://{address}:{}/readyz", p.internal_port));
        spec
    }

    fn member(&self, p: &Proc) -> Member {
        let address = p.ns.as_ref().map_or(Ipv4Addr::LOCALHOST, |ns| ns.address);
        Member {
            public: format!("{address}:{}", p.http_port),
            internal: format!("{address}:{}", p.internal_port),
            in_edge: true,
        }
    }

    /// The base URL of the edge, if the plan has one.
    pub fn url(&self) -> Option<String> {
        self.edge.as_ref().map(Edge::url)
    }

    /// The event log of every process (and the edge).
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The plan it was started from.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Which build runs.
    pub fn build(&self) -> Build {
        self.plan.build
    }

    /// `EVENTS_NAMESPACE` of every process.
    pub fn events_namespace(&self) -> &str {
        &self.events_namespace
    }

    /// Host-side URL of `service`'s database (for checks of invariants).
    pub fn database_url(&self, service: Service) -> Option<String> {
        self.databases.get(&service).map(|db| databases::database_url(&self.plan.backing, db))
    }

    /// The name of `service`'s database.
    pub fn database(&self, service: Service) -> Option<&str> {
        self.databases.get(&service).map(String::as_str)
    }

    /// The edge, if any.
    pub fn edge(&self) -> Option<&Edge> {
        self.edge.as_ref()
    }

    /// The network of the namespaces, if the plan asked for them.
    pub fn network(&self) -> Option<&Network> {
        self.network.as_ref()
    }

    /// Every process, in plan order.
    pub fn processes(&self) -> Vec<ProcessInfo> {
        self.procs.keys().filter_map(|id| self.process(*id).ok()).collect()
    }

    /// One process.
    pub fn process(&self, id: ProcessId) -> Result<ProcessInfo> {
        let p = self.proc(id)?;
        let status = p.sup()?.status();
        Ok(ProcessInfo {
            id,
            pid: status.pid,
            phase: status.phase,
            restarts: status.restarts,
            last_exit: status.last_exit,
            address: p.ns.as_ref().map_or(Ipv4Addr::LOCALHOST, |ns| ns.address),
            http_port: p.http_port,
            internal_port: p.internal_port,
            netns: p.ns.as_ref().map(|ns| ns.name.clone()),
            cgroup: p.cgroup.as_ref().map(|c| c.dirs().to_vec()),
            program: status.program,
        })
    }

    fn proc(&self, id: ProcessId) -> Result<&Proc> {
        self.procs.get(&id).with_context(|| format!("{id} is not part of this system"))
    }

    /// The supervisor of one process (signals, status, readiness).
    pub fn supervisor(&self, id: ProcessId) -> Result<&Supervisor> {
        self.proc(id)?.sup()
    }

    /// The cgroup of one process, when limited.
    pub fn cgroup(&self, id: ProcessId) -> Option<&Cgroup> {
        self.procs.get(&id).and_then(|p| p.cgroup.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labs share one system between a workload and a nemesis.
    #[test]
    fn a_system_can_be_shared_between_tasks() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<System>();
        shareable::<Supervisor>();
    }
}
