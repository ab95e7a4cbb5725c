//! The user service's configuration, read once from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `USER_BIND_ADDRESS` | `0.0.0.0` | address both ports bind to |
//! | `USER_HTTP_PORT` | `8081` | public API port |
//! | `USER_INTERNAL_PORT` | `9081` | internal lookup + `/livez` `/readyz` `/metrics` |
//! | `USER_DATABASE_URL` | required | Postgres URL (secret) |
//! | `USER_DB_MAX_CONNECTIONS` | `10` | pool size |
//! | `USER_REDIS_URL` | required | Redis URL (secret) |
//! | `USER_AMQP_URL` | required | RabbitMQ URL (secret) |
//! | `USER_CACHE_TTL_SECS` | `60` | lookup cache TTL, at most 60 |
//! | `USER_HASH_CONCURRENCY` | `0` (= cores) | password hashes at once |
//! | `USER_REQUEST_TIMEOUT_MS` | `10000` | per-request timeout |
//! | `USER_MIGRATE_ON_START` | `false` | dev convenience: migrate before serving |
//! | `JWT_PRIVATE_KEY` | required | Ed25519 PKCS#8 PEM (secret) |
//! | `JWT_PUBLIC_KEY` | required | Ed25519 SPKI PEM |
//! | `JWT_TTL_SECS` | `3600` | token lifetime |
//! | `SHUTDOWN_TIMEOUT`, `EVENTS_NAMESPACE` | see `twinshop_platform::config` | |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `RUST_LOG` | unset / `user` / `info` | telemetry |

use std::net::IpAddr;

use serde::Deserialize;
use twinshop_platform::{
    config::{self, ConfigError, PlatformConfig, Secret, Variable},
    http::auth::JwtVerifierConfig,
    telemetry::TelemetryConfig,
};

use crate::app::tokens::JwtIssuerConfig;

/// `USER_*`.
#[derive(Debug, Clone, Deserialize)]
pub struct UserConfig {
    #[serde(default = "default_bind")]
    pub bind_address: IpAddr,
    #[serde(default = "default_http_port")]
    pub http_port: u16,
    #[serde(default = "default_internal_port")]
    pub internal_port: u16,
    pub database_url: Secret<String>,
    #[serde(default = "default_pool")]
    pub db_max_connections: u32,
    pub redis_url: Secret<String>,
    pub amqp_url: Secret<String>,
    #[serde(default = "default_ttl")]
    pub cache_ttl_secs: u64,
    #[serde(default)]
    pub hash_concurrency: usize,
    #[serde(default = "default_timeout")]
    pub request_timeout_ms: u64,
    #[serde(default)]
    pub migrate_on_start: bool,
}

fn default_bind() -> IpAddr {
    IpAddr::from([0, 0, 0, 0])
}
fn default_http_port() -> u16 {
    8081
}
/// The internal port when none is configured.
pub fn default_internal_port() -> u16 {
    9081
}
fn default_pool() -> u32 {
    10
}
fn default_ttl() -> u64 {
    60
}
fn default_timeout() -> u64 {
    10_000
}

/// Everything the user service reads.
#[derive(Debug, Clone)]
pub struct Config {
    pub user: UserConfig,
    pub jwt_issuer: JwtIssuerConfig,
    pub jwt_verifier: JwtVerifierConfig,
    pub platform: PlatformConfig,
    pub telemetry: TelemetryConfig,
}

impl Config {
    /// Reads and checks every variable; the first problem is returned.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Like [`Config::from_env`], from an explicit list of variables (what
    /// tests and the deployment checks use).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let user: UserConfig = config::from_vars("USER_", vars.clone())?;
        if user.cache_ttl_secs == 0 || user.cache_ttl_secs > 60 {
            return Err(ConfigError { variable: "USER_CACHE_TTL_SECS".into(), problem: "must be from 1 to 60".into() });
        }
        Ok(Self {
            user,
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
            config::variables::<UserConfig>("USER_")?,
            config::variables::<JwtIssuerConfig>("JWT_")?,
            config::variables::<JwtVerifierConfig>("JWT_")?,
            config::shared_variables()?,
        ]))
    }
}
