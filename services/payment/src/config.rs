//! The payment service's configuration (see the README's table).

use std::net::IpAddr;

use serde::Deserialize;
use twinshop_platform::{
    config::{self, ConfigError, PlatformConfig, Secret, Variable},
    http::auth::JwtVerifierConfig,
    telemetry::TelemetryConfig,
};

/// `PAYMENT_*`.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentConfig {
    #[serde(default = "default_bind")]
    pub bind_address: IpAddr,
    /// Public API.
    #[serde(default = "default_http_port")]
    pub http_port: u16,
    /// gRPC `Payments` + health + reflection, and `/livez` `/readyz` `/metrics`.
    #[serde(default = "default_internal_port")]
    pub internal_port: u16,
    pub database_url: Secret<String>,
    #[serde(default = "default_pool")]
    pub db_max_connections: u32,
    pub amqp_url: Secret<String>,
    #[serde(default = "default_timeout")]
    pub request_timeout_ms: u64,
    #[serde(default)]
    pub migrate_on_start: bool,
}

fn default_bind() -> IpAddr {
    IpAddr::from([0, 0, 0, 0])
}
fn default_http_port() -> u16 {
    8082
}
/// The internal port when none is configured.
pub fn default_internal_port() -> u16 {
    9082
}
fn default_pool() -> u32 {
    10
}
fn default_timeout() -> u64 {
    10_000
}

#[derive(Debug, Clone)]
pub struct Config {
    pub payment: PaymentConfig,
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
        Ok(Self {
            payment: config::from_vars("PAYMENT_", vars.clone())?,
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
            config::variables::<PaymentConfig>("PAYMENT_")?,
            config::variables::<JwtVerifierConfig>("JWT_")?,
            config::shared_variables()?,
        ]))
    }
}
