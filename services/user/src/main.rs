//! `user-service`: a shim. Parse the command line and the environment,
//! start telemetry, build the app, run it until SIGTERM/SIGINT.

use clap::{Parser, Subcommand};
use twinshop_platform::{
    config, health, metrics,
    shutdown::{self, Shutdown},
    telemetry::Telemetry,
};
use twinshop_user::{App, config::Config, migrate, startup::SERVICE};

#[derive(Parser)]
#[command(name = "user-service", version, about = "twinshop user service")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the public and internal APIs (the default).
    Serve,
    /// Apply database migrations and declare the broker topology, then exit.
    Migrate,
    /// Exit 0 if this service's /readyz (on USER_INTERNAL_PORT) answers 200.
    Healthcheck,
}

#[derive(serde::Deserialize)]
struct PortOnly {
    #[serde(default = "default_internal_port")]
    internal_port: u16,
}

fn default_internal_port() -> u16 {
    9081
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Healthcheck) = cli.command {
        let port: PortOnly = config::load_or_exit("USER_");
        return if health::probe_readyz(port.internal_port).await { 0.into() } else { 1.into() };
    }
    let config = Config::from_env().unwrap_or_else(|err| config::exit_with(&err));
    let telemetry = match Telemetry::init(SERVICE, &config.telemetry) {
        Ok(t) => t,
        Err(err) => {
            eprintln!("telemetry setup failed: {err:#}");
            return 1.into();
        }
    };
    metrics::init();
    let result = match cli.command {
        Some(Command::Migrate) => migrate(&config).await,
        _ => serve(&config).await,
    };
    let code = match result {
        Ok(()) => 0,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "user service failed");
            1
        }
    };
    telemetry.shutdown().await;
    code.into()
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    let app = App::build(config, shutdown.clone()).await?;
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        shutdown::signal().await;
        trigger.trigger();
    });
    app.run().await
}
