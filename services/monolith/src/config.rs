//! The monolith's configuration: the union of what the three areas need,
//! minus what only distribution needs (no broker, no peer addresses).

use std::net::IpAddr;

use serde::Deserialize;
use twinshop_order::domain::ConsistencyMode;
use twinshop_platform::{
    config::{self, ConfigError, PlatformConfig, Secret, Variable},
    http::auth::JwtVerifierConfig,
    telemetry::TelemetryConfig,
};
use twinshop_user::app::tokens::JwtIssuerConfig;

/// `MONOLITH_*`.
#[derive(Debug, Clone, Deserialize)]
pub struct MonolithConfig {
    #[serde(default = "default_bind")]
    pub bind_address: IpAddr,
    /// The whole public API.
    #[serde(default = "default_http_port")]
    pub http_port: u16,
    /// `/livez` `/readyz` `/metrics`.
    #[serde(default = "default_internal_port")]
    pub internal_port: u16,
    /// One database; each area lives in its own schema.
    pub database_url: Secret<String>,
    /// Pool size of each area (three pools).
    #[serde(default = "default_pool")]
    pub db_max_connections: u32,
    pub redis_url: Secret<String>,
    #[serde(default)]
    pub consistency_mode: ConsistencyMode,
    /// Bound of one in-process Charge/Refund, as the gRPC deadline is.
    #[serde(default = "default_payment_deadline")]
    pub payment_deadline_ms: u64,
    #[serde(default = "default_sweep")]
    pub sweep_interval_ms: u64,
    #[serde(default = "default_timeout")]
    pub request_timeout_ms: u64,
    #[serde(default = "default_ttl")]
    pub cache_ttl_secs: u64,
    #[serde(default)]
    pub hash_concurrency: usize,
    #[serde(default)]
    pub migrate_on_start: bool,
}

fn default_bind() -> IpAddr {
    IpAddr::from([0, 0, 0, 0])
}
fn default_http_port() -> u16 {
    8090
}
/// The internal port when none is configured.
pub fn default_internal_port() -> u16 {
    9090
}
fn default_pool() -> u32 {
    8
}
fn default_payment_deadline() -> u64 {
    2_000
}
fn default_sweep() -> u64 {
    1_000
}
fn default_timeout() -> u64 {
    10_000
}
fn default_ttl() -> u64 {
    60
}

#[derive(Debug, Clone)]
pub struct Config {
    pub monolith: MonolithConfig,
    pub jwt_issuer: JwtIssuerConfig,
    pub jwt_verifier: JwtVerifierConfig,
    pub platform: PlatformConfig,
    pub telemetry: TelemetryConfig,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Like [`Config::from_env`], from an explicit list of variables (what
    /// tests and the deployment checks use).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let monolith: MonolithConfig = config::from_vars("MONOLITH_", vars.clone())?;
        if monolith.cache_ttl_secs == 0 || monolith.cache_ttl_secs > 60 {
            return Err(ConfigError {
                variable: "MONOLITH_CACHE_TTL_SECS".into(),
                problem: "must be from 1 to 60".into(),
            });
        }
        if monolith.payment_deadline_ms >= monolith.request_timeout_ms {
            return Err(ConfigError {
                variable: "MONOLITH_REQUEST_TIMEOUT_MS".into(),
                problem: "must exceed MONOLITH_PAYMENT_DEADLINE_MS".into(),
            });
        }
        Ok(Self {
            monolith,
            jwt_issuer: config::from_vars("JWT_", vars.clone())?,
            jwt_verifier: config::from_vars("JWT_", vars.clone())?,
            platform: config::from_vars("", vars.clone())?,
            telemetry: config::from_vars("OTEL_", vars.clone())?,
        })
    }

    /// Every environment variable this binary reads, derived from the same
    /// structs [`Config::from_env`] reads (keep the two lists of parts in
    /// step). The deployment tests hold the compose file and the Kubernetes
    /// manifests to it.
    pub fn variables() -> Result<Vec<Variable>, String> {
        Ok(config::merge_variables([
            config::variables::<MonolithConfig>("MONOLITH_")?,
            config::variables::<JwtIssuerConfig>("JWT_")?,
            config::variables::<JwtVerifierConfig>("JWT_")?,
            config::shared_variables()?,
        ]))
    }
}
