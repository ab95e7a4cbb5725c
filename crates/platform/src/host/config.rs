//! What every hosted process reads, declared once: its ports, its
//! database, its request timeout, and (for the network transport) its
//! broker and peers. An area's own settings are read by the area through
//! [`Env`], with the same prefix.
//!
//! | variable (after the prefix, e.g. `ORDER_`) | default | meaning |
//! |---|---|---|
//! | `BIND_ADDRESS` | `0.0.0.0` | address both ports bind to |
//! | `HTTP_PORT` | per binary | public API |
//! | `INTERNAL_PORT` | per binary | internal contracts, `/livez` `/readyz` `/metrics` |
//! | `DATABASE_URL` | required | Postgres URL (secret); several areas in one process get a schema each |
//! | `DB_MAX_CONNECTIONS` | per binary | pool size of each area |
//! | `REQUEST_TIMEOUT_MS` | `10000` | per-request timeout of both ports |
//! | `MAX_IN_FLIGHT` | 8 per core | requests at once on the public port; beyond, a short queue for bursts, then `503 overloaded` ([`crate::http::shed`]) |
//! | `INTERNAL_MAX_IN_FLIGHT` | 16 per core | likewise for the internal contracts (never the probes) |
//! | `MIGRATE_ON_START` | `false` | dev convenience: run `migrate` before serving |
//! | `FAULTS_ENABLED` | `false` | serve the labs' fault flags on the internal port (`platform::faults`); never in a deployment |
//! | `AMQP_URL` | required (network transport) | RabbitMQ URL (secret) |
//! | `USER_SERVICE_URL`, `PAYMENT_GRPC_URL` | required where an area needs that link (network transport) | a peer's internal address (in `dns` discovery, the name to resolve) |
//! | `USER_DISCOVERY`, `PAYMENT_DISCOVERY`, `DNS_SERVER`, `ETCD_ENDPOINTS`, `REGISTRY_PREFIX`, `REGISTRY_TTL_SECS`, `ADVERTISE_HOST` | see [`crate::discovery`] | client-side discovery and registration (network transport) |

use std::{net::IpAddr, time::Duration};

use serde::{Deserialize, de::DeserializeOwned};

use super::Process;
use crate::{
    config::{self, ConfigError, PlatformConfig, Secret, Variable},
    http::auth::JwtVerifierConfig,
    telemetry::TelemetryConfig,
};

/// The settings every hosted process has, read with its prefix.
#[derive(Debug, Clone, Deserialize)]
pub struct ProcessConfig {
    #[serde(default = "default_bind")]
    pub bind_address: IpAddr,
    /// `None`: the binary's default.
    pub http_port: Option<u16>,
    /// `None`: the binary's default.
    pub internal_port: Option<u16>,
    pub database_url: Secret<String>,
    /// `None`: the binary's default.
    pub db_max_connections: Option<u32>,
    #[serde(default = "default_timeout")]
    pub request_timeout_ms: u64,
    /// `None`: [`PUBLIC_IN_FLIGHT_PER_CORE`] per core.
    pub max_in_flight: Option<usize>,
    /// `None`: [`INTERNAL_IN_FLIGHT_PER_CORE`] per core.
    pub internal_max_in_flight: Option<usize>,
    #[serde(default)]
    pub migrate_on_start: bool,
    /// Serve fault flags on the internal port (labs only).
    #[serde(default)]
    pub faults_enabled: bool,
}

fn default_bind() -> IpAddr {
    IpAddr::from([0, 0, 0, 0])
}

fn default_timeout() -> u64 {
    10_000
}

/// The public port's default bound on requests in flight, per core the
/// process may use (`std::thread::available_parallelism`, which honours a
/// container's CPU quota). Under overload every permit is taken, so the
/// bound is what the requests served queue behind: by Little's law, the
/// monolith's throughput at the SLO on 2 cores (799 rps,
/// docs/loadtest/2026-11-25) times the SLO (p99 25 ms) is about 20
/// requests; 16 keeps the wait under it. A burst beyond the bound (fifty
/// orders at once) waits in the queue instead of being refused
/// ([`crate::http::shed`]).
pub const PUBLIC_IN_FLIGHT_PER_CORE: usize = 8;

/// The internal port's: twice the public one, so the peers' calls of one
/// busy caller (each request it admits makes at most one call at a time)
/// are never the ones refused, with room for a second caller replica.
pub const INTERNAL_IN_FLIGHT_PER_CORE: usize = 2 * PUBLIC_IN_FLIGHT_PER_CORE;

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// What only the network transport needs.
#[derive(Debug, Clone, Deserialize)]
pub struct NetworkConfig {
    pub amqp_url: Secret<String>,
}

/// The environment of one process: the variables it was started with, read
/// under its prefix. Everything is parsed once, before any port is bound.
#[derive(Debug, Clone)]
pub struct Env {
    vars: Vec<(String, String)>,
    prefix: &'static str,
    pub process: ProcessConfig,
    pub platform: PlatformConfig,
    pub telemetry: TelemetryConfig,
    pub jwt: JwtVerifierConfig,
    /// `Some` in the network transport.
    pub network: Option<NetworkConfig>,
}

impl Env {
    /// Reads the common settings of `process` from `vars`.
    pub fn load(process: &Process, vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let common: ProcessConfig = config::from_vars(process.prefix, vars.clone())?;
        for (name, bound) in
            [("MAX_IN_FLIGHT", common.max_in_flight), ("INTERNAL_MAX_IN_FLIGHT", common.internal_max_in_flight)]
        {
            if bound == Some(0) {
                let variable = format!("{}{name}", process.prefix);
                return Err(ConfigError {
                    variable,
                    problem: "must be at least 1 (unset: derived from the cores)".into(),
                });
            }
        }
        let network = match process.transport {
            super::Transport::Network => Some(config::from_vars(process.prefix, vars.clone())?),
            super::Transport::InProcess => None,
        };
        Ok(Self {
            process: common,
            platform: config::from_vars("", vars.clone())?,
            telemetry: config::from_vars("OTEL_", vars.clone())?,
            jwt: config::from_vars("JWT_", vars.clone())?,
            network,
            prefix: process.prefix,
            vars,
        })
    }

    /// Every variable the process was started with (what
    /// [`super::fingerprint`] reads; secrets included, so never log it).
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }

    /// The process's prefix, e.g. `ORDER_`.
    pub fn prefix(&self) -> &'static str {
        self.prefix
    }

    /// Reads `T` under the process's prefix (an area's own settings).
    pub fn read<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        config::from_vars(self.prefix, self.vars.clone())
    }

    /// Reads `T` under another prefix (settings shared across processes,
    /// such as `JWT_`).
    pub fn read_prefixed<T: DeserializeOwned>(&self, prefix: &str) -> Result<T, ConfigError> {
        config::from_vars(prefix, self.vars.clone())
    }

    /// `(public, internal)`: the ports configured, or `process`'s defaults.
    pub fn ports(&self, process: &Process) -> (u16, u16) {
        (
            self.process.http_port.unwrap_or(process.http_port),
            self.process.internal_port.unwrap_or(process.internal_port),
        )
    }

    /// The per-request timeout of both ports.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.process.request_timeout_ms)
    }

    /// `(public, internal)`: the bounds on requests in flight, configured
    /// or derived from the cores.
    pub fn max_in_flight(&self) -> (usize, usize) {
        (
            self.process.max_in_flight.unwrap_or(PUBLIC_IN_FLIGHT_PER_CORE * cores()),
            self.process.internal_max_in_flight.unwrap_or(INTERNAL_IN_FLIGHT_PER_CORE * cores()),
        )
    }

    /// A peer's address: `{prefix}{variable}`.
    pub(crate) fn address(&self, variable: &str) -> Result<String, ConfigError> {
        let name = format!("{}{variable}", self.prefix);
        self.vars
            .iter()
            .find(|(k, v)| k == &name && !v.is_empty())
            .map(|(_, v)| v.clone())
            .ok_or(ConfigError { variable: name, problem: "is required but not set".into() })
    }
}

/// Every variable `process` reads, derived from the structs above, the
/// areas' own settings and the links they need (deployment tests hold the
/// compose files and manifests to this list).
pub fn variables(process: &Process) -> Result<Vec<Variable>, String> {
    let mut parts = vec![
        config::variables::<ProcessConfig>(process.prefix)?,
        config::variables::<JwtVerifierConfig>("JWT_")?,
        config::shared_variables()?,
    ];
    if process.transport == super::Transport::Network {
        parts.extend([
            config::variables::<NetworkConfig>(process.prefix)?,
            config::variables::<crate::discovery::DiscoveryConfig>(process.prefix)?,
        ]);
    }
    for area in process.areas {
        parts.push(area.variables(process.prefix)?);
        if process.transport == super::Transport::Network {
            // Each needed link: its address, and how it is found.
            for link in area.needs() {
                let name = format!("{}{}", process.prefix, link.address_variable);
                parts.push(vec![Variable { name, required: true }]);
                parts.push(crate::discovery::link_variables(process.prefix, link)?);
            }
        }
    }
    Ok(config::merge_variables(parts))
}
