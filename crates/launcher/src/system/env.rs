//! The environment of each process: exactly the variables README.md's
//! "Configuration" documents for its binary, filled in from the plan, then
//! the plan's extra variables (for every process, then per service), which
//! win (a loopback URL in them is reached through the gateway from a
//! namespace, like the backing services). Nothing is inherited from the
//! launcher's own environment.
//!
//! The extra variables are the plan's for every process, then its
//! service's, then its own (`Plan::process_env`).

use std::net::Ipv4Addr;

use super::System;
use crate::{
    databases::database_url,
    plan::{ProcessId, Service},
};

/// `url` with a loopback host replaced by `host` (a namespaced process
/// reaches the host's 127.0.0.1 at its bridge's gateway). A bare
/// `127.0.0.1:port` (a DNS server's address) is replaced too.
pub(crate) fn via(url: &str, host: Ipv4Addr) -> String {
    let host = host.to_string();
    if let Some(port) = url.strip_prefix("127.0.0.1:").filter(|p| p.parse::<u16>().is_ok()) {
        return format!("{host}:{port}");
    }
    ["127.0.0.1", "localhost"].iter().fold(url.to_owned(), |acc, lo| {
        acc.replacen(&format!("@{lo}:"), &format!("@{host}:"), 1).replacen(
            &format!("//{lo}:"),
            &format!("//{host}:"),
            1,
        )
    })
}

/// Worker threads for each of `processes` sharing `cores`: at least one.
pub(crate) fn workers_each(cores: usize, processes: usize) -> usize {
    (cores / processes.max(1)).max(1)
}

/// The cores this launcher may use (its own CPU quota honoured).
fn machine_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl System {
    /// `id`'s environment; `host_side` for a one-off run outside its
    /// namespace (`migrate`).
    pub(crate) fn env(&self, id: ProcessId, host_side: bool) -> Vec<(String, String)> {
        let plan = &self.plan;
        let p = &self.procs[&id];
        let gateway = self.network.as_ref().map(crate::netns::Network::gateway);
        // How this process reaches the host's loopback services.
        let local = match (gateway, host_side) {
            (Some(gw), false) => gw,
            _ => Ipv4Addr::LOCALHOST,
        };
        let backing = |url: &str| via(url, local);
        let svc = id.service;
        let pre = svc.env_prefix();
        let all_addresses = plan.edge.as_ref().is_some_and(|e| e.all_addresses);
        let bind = if p.ns.is_some() || all_addresses { "0.0.0.0" } else { "127.0.0.1" };
        let mut env: Vec<(String, String)> = vec![
            ("RUST_LOG".into(), "info".into()),
            ("JWT_PUBLIC_KEY".into(), self.keys.1.clone()),
            (format!("{pre}BIND_ADDRESS"), bind.into()),
            (format!("{pre}HTTP_PORT"), p.http_port.to_string()),
            (format!("{pre}INTERNAL_PORT"), p.internal_port.to_string()),
        ];
        if svc != Service::Monolith {
            env.push(("EVENTS_NAMESPACE".into(), self.events_namespace.clone()));
        }
        // The async runtime's worker threads (tokio reads the variable):
        // the machine's cores shared among the processes started here, as
        // CPU requests share a node among pods. Left to tokio under a CPU
        // quota, which it sees itself. Three services with two workers
        // each on two cores spent 11.6 % more CPU per request than with
        // one each (issue 16, `loadtest ab`).
        if plan.limits_of(id).and_then(|l| l.cpu_cores).is_none() {
            env.push(("TOKIO_WORKER_THREADS".into(), workers_each(machine_cores(), self.procs.len()).to_string()));
        }
        if let Some(db) = self.databases.get(&svc) {
            env.push((format!("{pre}DATABASE_URL"), backing(&database_url(&plan.backing, db))));
        }
        if matches!(svc, Service::User | Service::Monolith) {
            env.push((format!("{pre}REDIS_URL"), backing(&plan.backing.redis)));
            env.push(("JWT_PRIVATE_KEY".into(), self.keys.0.clone()));
        }
        if matches!(svc, Service::User | Service::Payment | Service::Order) {
            env.push((format!("{pre}AMQP_URL"), backing(&plan.backing.amqp)));
        }
        if svc == Service::Order {
            env.push(("ORDER_USER_SERVICE_URL".into(), self.peer_url(Service::User, local)));
            env.push(("ORDER_PAYMENT_GRPC_URL".into(), self.peer_url(Service::Payment, local)));
        }
        // Extra variables naming a loopback URL mean the host's loopback
        // too (a lab's proxy, a private broker): a namespaced process
        // reaches it through its gateway, like the backing services.
        let extra = plan
            .env_all
            .iter()
            .chain(plan.env.get(&svc).into_iter().flatten())
            .chain(plan.process_env.get(&id).into_iter().flatten());
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k.clone(), backing(v)));
        }
        env
    }

    /// Where order reaches `service`'s internal port: its balancer when it
    /// has several replicas (through the host's loopback), else replica 1.
    fn peer_url(&self, service: Service, local: Ipv4Addr) -> String {
        if let Some(port) = self.balancers.get(&service) {
            return format!("http://{local}:{port}");
        }
        let id = ProcessId::new(service, 1);
        match self.procs.get(&id) {
            Some(p) => {
                let address = p.ns.as_ref().map_or(Ipv4Addr::LOCALHOST, |ns| ns.address);
                format!("http://{address}:{}", p.internal_port)
            }
            None => "http://127.0.0.1:9".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_backing_urls_are_reached_through_the_gateway() {
        let gw = Ipv4Addr::new(10, 88, 7, 1);
        assert_eq!(
            via("postgres://postgres@127.0.0.1:5432/twinshop_user?sslmode=disable", gw),
            "postgres://postgres@10.88.7.1:5432/twinshop_user?sslmode=disable"
        );
        assert_eq!(via("redis://127.0.0.1:6379", gw), "redis://10.88.7.1:6379");
        assert_eq!(via("amqp://guest:guest@localhost:5672/%2f", gw), "amqp://guest:guest@10.88.7.1:5672/%2f");
        assert_eq!(via("amqp://guest:guest@rabbit.example:5672/%2f", gw), "amqp://guest:guest@rabbit.example:5672/%2f");
        assert_eq!(via("127.0.0.1:5353", gw), "10.88.7.1:5353");
        assert_eq!(via("127.0.0.1:5353,x", gw), "127.0.0.1:5353,x");
    }

    #[test]
    fn the_cores_are_shared_among_the_processes_with_at_least_one_worker_each() {
        assert_eq!(workers_each(2, 1), 2, "the monolith alone on two cores");
        assert_eq!(workers_each(2, 3), 1, "three services on two cores");
        assert_eq!(workers_each(8, 3), 2);
        assert_eq!(workers_each(1, 0), 1);
    }
}
