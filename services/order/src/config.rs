//! The order service's configuration (see the README's table).

use std::{net::IpAddr, time::Duration};

use serde::Deserialize;
use twinshop_platform::{
    config::{self, ConfigError, PlatformConfig, Secret, Variable},
    http::auth::JwtVerifierConfig,
    telemetry::TelemetryConfig,
};

use crate::domain::ConsistencyMode;

/// `ORDER_*`.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderConfig {
    #[serde(default = "default_bind")]
    pub bind_address: IpAddr,
    #[serde(default = "default_http_port")]
    pub http_port: u16,
    /// `/livez` `/readyz` `/metrics`.
    #[serde(default = "default_internal_port")]
    pub internal_port: u16,
    pub database_url: Secret<String>,
    #[serde(default = "default_pool")]
    pub db_max_connections: u32,
    pub amqp_url: Secret<String>,
    /// The user service's internal base URL, e.g. `http://user:9081`.
    pub user_service_url: String,
    /// The payment service's gRPC URL, e.g. `http://payment:9082`.
    pub payment_grpc_url: String,
    /// `strict` (default) or `available`.
    #[serde(default)]
    pub consistency_mode: ConsistencyMode,
    /// Deadline of one Charge/Refund, retries included (sent as `grpc-timeout`).
    #[serde(default = "default_payment_deadline")]
    pub payment_deadline_ms: u64,
    /// Timeout of one user lookup, retries included.
    #[serde(default = "default_user_timeout")]
    pub user_lookup_timeout_ms: u64,
    /// How often the sweeper runs.
    #[serde(default = "default_sweep")]
    pub sweep_interval_ms: u64,
    #[serde(default = "default_timeout")]
    pub request_timeout_ms: u64,
    #[serde(default)]
    pub migrate_on_start: bool,
}

fn default_bind() -> IpAddr {
    IpAddr::from([0, 0, 0, 0])
}
fn default_http_port() -> u16 {
    8083
}
/// The internal port when none is configured.
pub fn default_internal_port() -> u16 {
    9083
}
fn default_pool() -> u32 {
    10
}
fn default_payment_deadline() -> u64 {
    2_000
}
fn default_user_timeout() -> u64 {
    1_000
}
fn default_sweep() -> u64 {
    1_000
}
fn default_timeout() -> u64 {
    10_000
}

impl OrderConfig {
    pub fn payment_deadline(&self) -> Duration {
        Duration::from_millis(self.payment_deadline_ms)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub order: OrderConfig,
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
        let order: OrderConfig = config::from_vars("ORDER_", vars.clone())?;
        // The timeouts must nest: the request outlives the calls it makes.
        if order.payment_deadline_ms + order.user_lookup_timeout_ms >= order.request_timeout_ms {
            return Err(ConfigError {
                variable: "ORDER_REQUEST_TIMEOUT_MS".into(),
                problem: "must exceed ORDER_PAYMENT_DEADLINE_MS + ORDER_USER_LOOKUP_TIMEOUT_MS".into(),
            });
        }
        Ok(Self {
            order,
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
            config::variables::<OrderConfig>("ORDER_")?,
            config::variables::<JwtVerifierConfig>("JWT_")?,
            config::shared_variables()?,
        ]))
    }
}
