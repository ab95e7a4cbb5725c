//! Service discovery (seed 4.3): how a process finds the replicas of a peer
//! it calls, and how a replica makes itself found.
//!
//! Per link (the user lookup, payment's Charge/Refund), the caller chooses:
//! - **`static`** (the default): one address, `{P}USER_SERVICE_URL` or
//!   `{P}PAYMENT_GRPC_URL`. Discovery is the server's side: a load balancer
//!   or a Kubernetes Service behind that address picks the replica, per
//!   connection (L4, a ClusterIP) or per request (L7).
//! - **`dns`**: the caller resolves that URL's host name to every A record
//!   (a headless Service) and balances per call itself ([`dns`]).
//! - **`etcd`**: the caller watches a registry in etcd where every replica
//!   registered itself with a lease and heartbeats ([`etcd`], Eureka's
//!   model).
//!
//! Both client-side modes share one per-call balancer with passive ejection
//! ([`balancer`]). A process that serves links over the network registers
//! them in etcd when `{P}ETCD_ENDPOINTS` is set (the host does it once the
//! internal port serves, `host::server`).
//!
//! | variable (after the process's prefix) | default | meaning |
//! |---|---|---|
//! | `USER_DISCOVERY`, `PAYMENT_DISCOVERY` | `static` | per needed link: `static`, `dns` or `etcd` |
//! | `DNS_SERVER` | the system's (`/etc/resolv.conf`) | nameserver for `dns`: `ip` or `ip:port` |
//! | `ETCD_ENDPOINTS` | unset | etcd client URLs, comma separated: required by `etcd`; set in a providing process, it registers |
//! | `REGISTRY_PREFIX` | `/twinshop/services/` | keys are `<prefix><service>/<lease id>` |
//! | `REGISTRY_TTL_SECS` | `10` | lease of a registration (2–300): how long a crashed replica stays listed |
//! | `ADVERTISE_HOST` | the address that routes to etcd | the host others reach this replica at (a pod's IP) |

pub mod balancer;
pub mod dns;
pub mod etcd;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use serde::Deserialize;

pub use balancer::Balancer;

use crate::{
    config::{self, ConfigError, Variable},
    host::Env,
    links::{Link, LinkSpec},
    shutdown::Shutdown,
};

/// How a caller finds the replicas of one peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One configured address; the server side balances.
    #[default]
    Static,
    /// Every A record of the configured URL's host.
    Dns,
    /// The etcd registry.
    Etcd,
}

/// One link's mode: `{P}<SERVICE>_DISCOVERY`.
#[derive(Debug, Clone, Deserialize)]
struct LinkDiscovery {
    #[serde(default)]
    discovery: Mode,
}

/// The process-wide discovery settings (network transport only).
#[derive(Debug, Clone, Deserialize)]
pub struct DiscoveryConfig {
    pub dns_server: Option<String>,
    pub etcd_endpoints: Option<String>,
    #[serde(default = "default_prefix")]
    pub registry_prefix: String,
    #[serde(default = "default_ttl")]
    pub registry_ttl_secs: u64,
    pub advertise_host: Option<String>,
}

fn default_prefix() -> String {
    "/twinshop/services/".into()
}

fn default_ttl() -> u64 {
    10
}

/// The variables of one needed link, besides its address.
pub(crate) fn link_variables(prefix: &str, link: &LinkSpec) -> Result<Vec<Variable>, String> {
    config::variables::<LinkDiscovery>(&format!("{prefix}{}_", link.service.to_uppercase()))
}

impl DiscoveryConfig {
    /// Reads and checks the settings of `env`'s process, for the links it needs.
    pub(crate) fn read(env: &Env, needs: &[LinkSpec]) -> Result<Self, ConfigError> {
        let prefix = env.prefix();
        let c: Self = env.read()?;
        let malformed = |name: &str, problem: String| ConfigError { variable: format!("{prefix}{name}"), problem };
        if let Some(server) = &c.dns_server {
            dns::parse_server(server).map_err(|p| malformed("DNS_SERVER", p))?;
        }
        if !(2..=300).contains(&c.registry_ttl_secs) {
            return Err(malformed("REGISTRY_TTL_SECS", "must be 2 to 300".into()));
        }
        if !c.registry_prefix.starts_with('/') || !c.registry_prefix.ends_with('/') {
            return Err(malformed("REGISTRY_PREFIX", "must start and end with /".into()));
        }
        if let Some(endpoints) = &c.etcd_endpoints {
            etcd::endpoints(endpoints).map_err(|e| malformed("ETCD_ENDPOINTS", format!("is malformed ({e:#})")))?;
        }
        for link in needs {
            match mode(env, link)? {
                Mode::Static => {}
                Mode::Dns => {
                    let address = env.address(link.address_variable)?;
                    dns::Target::parse(&address).map_err(|p| malformed(link.address_variable, p))?;
                }
                Mode::Etcd if c.etcd_endpoints.is_none() => {
                    return Err(malformed(
                        "ETCD_ENDPOINTS",
                        format!("is required when {prefix}{}_DISCOVERY is etcd", link.service.to_uppercase()),
                    ));
                }
                Mode::Etcd => {}
            }
        }
        Ok(c)
    }

    /// The lease TTL of a registration.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.registry_ttl_secs)
    }
}

/// The discovery mode of `link` in `env`'s process.
pub(crate) fn mode(env: &Env, link: &LinkSpec) -> Result<Mode, ConfigError> {
    let prefix = format!("{}{}_", env.prefix(), link.service.to_uppercase());
    Ok(env.read_prefixed::<LinkDiscovery>(&prefix)?.discovery)
}

/// A client of `L`'s provider as `env` configures it: one address, or a
/// balancer kept up to date by DNS or the registry (its tasks run on
/// `shutdown`).
pub(crate) fn connect<L: Link + ?Sized>(
    env: &Env,
    discovery: &DiscoveryConfig,
    shutdown: &Shutdown,
) -> anyhow::Result<Arc<L>> {
    let spec = L::SPEC;
    let mode = mode(env, &spec)?;
    if mode == Mode::Static {
        return L::connect(&env.address(spec.address_variable)?);
    }
    let balancer = Balancer::<L>::new(spec.service, L::connect)?;
    match mode {
        Mode::Dns => {
            let target = dns::Target::parse(&env.address(spec.address_variable)?).map_err(anyhow::Error::msg)?;
            let server =
                discovery.dns_server.as_deref().map(dns::parse_server).transpose().map_err(anyhow::Error::msg)?;
            let resolver = dns::resolver(server)?;
            tracing::info!(link = spec.name, name = target.host, "discovering endpoints by DNS");
            shutdown.spawn(dns::follow(balancer.clone(), target, resolver, shutdown.clone()));
        }
        Mode::Etcd => {
            let endpoints = discovery.etcd_endpoints.as_deref().context("no etcd endpoints configured")?;
            let prefix = etcd::service_prefix(&discovery.registry_prefix, spec.service);
            tracing::info!(link = spec.name, prefix, "discovering endpoints in etcd");
            shutdown.spawn(etcd::follow(balancer.clone(), etcd::channel(endpoints)?, prefix, shutdown.clone()));
        }
        Mode::Static => unreachable!("handled above"),
    }
    shutdown.spawn(balancer.clone().probe_until(shutdown.clone()));
    Ok(L::balanced(balancer))
}

/// The host this replica is reached at: `ADVERTISE_HOST`, else the local
/// address the kernel picks to reach the first etcd endpoint (a pod's IP,
/// a namespace's own address).
pub(crate) async fn advertise_host(discovery: &DiscoveryConfig, etcd_endpoints: &str) -> anyhow::Result<String> {
    if let Some(host) = &discovery.advertise_host {
        return Ok(host.clone());
    }
    let first = etcd_endpoints.split(',').next().unwrap_or_default().trim();
    let target = dns::Target::parse(first).map_err(|p| anyhow::anyhow!("etcd endpoint {first:?} {p}"))?;
    let etcd: SocketAddr = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .with_context(|| format!("resolving {}", target.host))?
        .next()
        .with_context(|| format!("{} has no address", target.host))?;
    let socket = tokio::net::UdpSocket::bind(if etcd.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })
        .await
        .context("a socket to find the local address")?;
    // A UDP "connect" sends nothing: it only chooses the route and source.
    socket.connect(etcd).await.context("finding the route to etcd")?;
    let ip = socket.local_addr()?.ip();
    Ok(if ip.is_ipv6() { format!("[{ip}]") } else { ip.to_string() })
}

/// Registers the links `env`'s process serves, at its internal port, until
/// shutdown (nothing when `ETCD_ENDPOINTS` is unset or it serves none).
pub(crate) async fn register(
    discovery: DiscoveryConfig,
    services: Vec<&'static str>,
    internal_port: u16,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let Some(endpoints) = discovery.etcd_endpoints.clone() else { return Ok(()) };
    if services.is_empty() {
        return Ok(());
    }
    let host = advertise_host(&discovery, &endpoints).await?;
    let url = format!("http://{host}:{internal_port}");
    let registration = etcd::Registration {
        entries: services.into_iter().map(|s| (s, url.clone())).collect(),
        prefix: discovery.registry_prefix.clone(),
        ttl: discovery.ttl(),
    };
    let channel = etcd::channel(&endpoints)?;
    shutdown.spawn(etcd::register(channel, registration, shutdown.clone()));
    Ok(())
}
