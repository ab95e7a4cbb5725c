//! The payment service's configuration (see the README's table).

use std::net::IpAddr;

use serde::Deserialize;
use twinshop_platform::{
    config::{self, ConfigError, PlatformConfig, Secret},
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
        Ok(Self {
            payment: config::from_env("PAYMENT_")?,
            jwt_verifier: config::from_env("JWT_")?,
            platform: config::from_env("")?,
            telemetry: config::from_env("OTEL_")?,
        })
    }
}
