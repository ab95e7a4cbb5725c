//! `monolith`: a shim around [`twinshop_monolith::App`].

use clap::Parser;
use twinshop_monolith::{App, config::Config, migrate, startup::SERVICE};
use twinshop_platform::{cli, config, health, shutdown::Shutdown};

#[derive(Parser)]
#[command(name = "monolith", version, about = "twinshop as one process")]
struct Cli {
    #[command(subcommand)]
    command: Option<cli::Command>,
}

#[derive(serde::Deserialize)]
struct PortOnly {
    #[serde(default = "default_internal_port")]
    internal_port: u16,
}

fn default_internal_port() -> u16 {
    9090
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let command = Cli::parse().command.unwrap_or(cli::Command::Serve);
    if command == cli::Command::Healthcheck {
        let port: PortOnly = config::load_or_exit("MONOLITH_");
        return cli::exit_code(health::probe_readyz(port.internal_port).await);
    }
    let config = Config::from_env().unwrap_or_else(|err| config::exit_with(&err));
    cli::run(SERVICE, &config.telemetry, async {
        match command {
            cli::Command::Migrate => migrate(&config).await,
            _ => {
                let shutdown = Shutdown::new();
                let app = App::build(&config, shutdown.clone()).await?;
                cli::trigger_on_signal(shutdown);
                app.run().await
            }
        }
    })
    .await
}
