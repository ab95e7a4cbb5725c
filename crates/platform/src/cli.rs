//! What every binary's `main` does, so each `main.rs` stays a shim:
//! the subcommands, telemetry set-up and flush, signal handling, exit codes.

use std::{future::Future, process::ExitCode};

use crate::{
    metrics,
    shutdown::{self, Shutdown},
    telemetry::{Telemetry, TelemetryConfig},
};

/// The subcommands of every twinshop binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Serve (the default).
    Serve,
    /// Apply database migrations and declare the broker topology, then exit.
    Migrate,
    /// Exit 0 if this process's own /readyz answers 200 (for Docker's
    /// HEALTHCHECK; the images have no curl).
    Healthcheck,
}

pub fn exit_code(ok: bool) -> ExitCode {
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Starts telemetry and metrics, runs `work`, logs its error if any, and
/// flushes telemetry last.
pub async fn run(
    service: &str,
    telemetry: &TelemetryConfig,
    work: impl Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    let telemetry = match Telemetry::init(service, telemetry) {
        Ok(t) => t,
        Err(err) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("telemetry set-up failed: {err:#}");
            }
            return ExitCode::FAILURE;
        }
    };
    metrics::init();
    let result = work.await;
    if let Err(err) = &result {
        tracing::error!(error = format!("{err:#}"), "{service} failed");
    }
    telemetry.shutdown().await;
    exit_code(result.is_ok())
}

/// The `healthcheck` subcommand: reads only `{prefix}INTERNAL_PORT` (so it
/// works with just the port configured) and probes that port's `/readyz`.
pub async fn healthcheck(prefix: &str, default_internal_port: u16) -> ExitCode {
    #[derive(serde::Deserialize)]
    struct Port {
        internal_port: Option<u16>,
    }
    let port: Port = crate::config::load_or_exit(prefix);
    exit_code(crate::health::probe_readyz(port.internal_port.unwrap_or(default_internal_port)).await)
}

/// Begins `shutdown` on the first SIGTERM or SIGINT.
pub fn trigger_on_signal(shutdown: Shutdown) {
    tokio::spawn(async move {
        shutdown::signal().await;
        shutdown.trigger();
    });
}
