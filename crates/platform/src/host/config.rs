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
//! | `OUTBOX_MIN_GAP_MS` | `50` | least time between two relay passes a notification starts ([`crate::outbox::RelaySettings::min_gap`]); `0`: a pass per notification |
//! | `MIGRATE_ON_START` | `false` | dev convenience: run `migrate` before serving |
//! | `FAULTS_ENABLED` | `false` | serve the labs' fault flags on the internal port (`platform::faults`); never in a deployment |
//! | `AMQP_URL` | required (network transport) | RabbitMQ URL (secret) |
//! | `CONSUMER_CONCURRENCY` | `16` (network transport) | messages each queue's consumer takes at once: RabbitMQ's prefetch, and the handlers running together, each holding one of the pool's connections while it runs ([`crate::amqp::ConsumerSettings`]) |
//! | `USER_SERVICE_URL`, `PAYMENT_GRPC_URL` | required where an area needs that link (network transport) | a peer's internal address (in `dns` discovery, the name to resolve) |
//! | `USER_DISCOVERY`, `PAYMENT_DISCOVERY`, `DNS_SERVER`, `ETCD_ENDPOINTS`, `REGISTRY_PREFIX`, `REGISTRY_TTL_SECS`, `ADVERTISE_HOST` | see [`crate::discovery`] | client-side discovery and registration (network transport) |

use std::{net::IpAddr, num::NonZeroU16, time::Duration};

use serde::{Deserialize, de::DeserializeOwned};

use super::Process;
use crate::{
    amqp::ConsumerSettings,
    config::{self, ConfigError, PlatformConfig, Secret, Variable},
    http::auth::JwtVerifierConfig,
    outbox::RelaySettings,
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
    /// `None`: [`crate::outbox::DEFAULT_MIN_GAP`].
    pub outbox_min_gap_ms: Option<u64>,
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

/// The largest `OUTBOX_MIN_GAP_MS` accepted: events wait up to the gap
/// under load, and a second is already longer than the relay's poll.
pub const MAX_OUTBOX_MIN_GAP_MS: u64 = 1000;

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// What only the network transport needs.
#[derive(Debug, Clone, Deserialize)]
pub struct NetworkConfig {
    pub amqp_url: Secret<String>,
    /// `None`: [`ConsumerSettings::default`]'s; never zero.
    pub consumer_concurrency: Option<NonZeroU16>,
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
        if common.outbox_min_gap_ms.is_some_and(|ms| ms > MAX_OUTBOX_MIN_GAP_MS) {
            return Err(ConfigError {
                variable: format!("{}OUTBOX_MIN_GAP_MS", process.prefix),
                problem: format!("must be at most {MAX_OUTBOX_MIN_GAP_MS} (events wait up to that long under load)"),
            });
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

    /// The relays' settings: the defaults, with the configured least gap
    /// between passes.
    pub fn relay_settings(&self) -> RelaySettings {
        let defaults = RelaySettings::default();
        let min_gap = self.process.outbox_min_gap_ms.map_or(defaults.min_gap, Duration::from_millis);
        RelaySettings { min_gap, ..defaults }
    }

    /// How each queue's consumer runs (network transport): the defaults,
    /// with the configured concurrency.
    pub fn consumer_settings(&self) -> ConsumerSettings {
        let defaults = ConsumerSettings::default();
        let configured = self.network.as_ref().and_then(|n| n.consumer_concurrency);
        let concurrency = configured.map_or(defaults.concurrency, NonZeroU16::get);
        ConsumerSettings { concurrency, ..defaults }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Transport;

    const PROCESS: Process = Process {
        binary: "test-service",
        service: "test",
        about: "a process hosting nothing",
        prefix: "TEST_",
        http_port: 1,
        internal_port: 2,
        db_max_connections: 1,
        transport: Transport::InProcess,
        areas: &[],
    };

    fn load(extra: &[(&str, &str)]) -> Result<Env, ConfigError> {
        let base = [("TEST_DATABASE_URL", "postgres://localhost/test"), ("JWT_PUBLIC_KEY", "unused here")];
        Env::load(&PROCESS, base.iter().chain(extra).map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn the_relays_least_gap_is_read_under_the_prefix_and_bounded() {
        let default = load(&[]).expect("defaults load");
        assert_eq!(default.relay_settings().min_gap, crate::outbox::DEFAULT_MIN_GAP);
        let unprefixed = load(&[("OUTBOX_MIN_GAP_MS", "7")]).expect("loads");
        assert_eq!(unprefixed.relay_settings().min_gap, crate::outbox::DEFAULT_MIN_GAP, "read under the prefix only");
        let zero = load(&[("TEST_OUTBOX_MIN_GAP_MS", "0")]).expect("zero: a pass per notification");
        assert_eq!(zero.relay_settings().min_gap, Duration::ZERO);
        let most = load(&[("TEST_OUTBOX_MIN_GAP_MS", "1000")]).expect("the largest accepted");
        assert_eq!(most.relay_settings().min_gap, Duration::from_secs(1));

        let err = load(&[("TEST_OUTBOX_MIN_GAP_MS", "1001")]).expect_err("beyond a second");
        assert_eq!(err.variable, "TEST_OUTBOX_MIN_GAP_MS");
        let err = load(&[("TEST_OUTBOX_MIN_GAP_MS", "soon")]).expect_err("not a number");
        assert_eq!(err.variable, "TEST_OUTBOX_MIN_GAP_MS");
    }

    #[test]
    fn the_consumers_concurrency_is_read_in_the_network_transport_and_at_least_one() {
        const NETWORK: Process = Process { transport: Transport::Network, ..PROCESS };
        let load = |extra: &[(&str, &str)]| {
            let base = [
                ("TEST_DATABASE_URL", "postgres://localhost/test"),
                ("TEST_AMQP_URL", "amqp://localhost"),
                ("JWT_PUBLIC_KEY", "unused here"),
            ];
            Env::load(&NETWORK, base.iter().chain(extra).map(|(k, v)| (k.to_string(), v.to_string())))
        };
        let default = load(&[]).expect("defaults load");
        assert_eq!(default.consumer_settings().concurrency, ConsumerSettings::default().concurrency);
        let four = load(&[("TEST_CONSUMER_CONCURRENCY", "4")]).expect("loads");
        assert_eq!(four.consumer_settings().concurrency, 4);
        let err = load(&[("TEST_CONSUMER_CONCURRENCY", "0")]).expect_err("none at once");
        assert_eq!(err.variable, "TEST_CONSUMER_CONCURRENCY");
        let err = load(&[("TEST_CONSUMER_CONCURRENCY", "70000")]).expect_err("beyond a u16");
        assert_eq!(err.variable, "TEST_CONSUMER_CONCURRENCY");
        assert!(variables(&NETWORK).expect("variables").iter().any(|v| v.name == "TEST_CONSUMER_CONCURRENCY"));
    }
}
