//! `payment-service`: a shim around [`twinshop_payment::App`].

use clap::Parser;
use twinshop_payment::{
    App,
    config::{self, Config},
    migrate,
    startup::SERVICE,
};
use twinshop_platform::{cli, config as env_config, shutdown::Shutdown};

#[derive(Parser)]
#[command(name = "payment-service", version, about = "twinshop payment service")]
struct Cli {
    #[command(subcommand)]
    command: Option<cli::Command>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let command = Cli::parse().command.unwrap_or(cli::Command::Serve);
    if command == cli::Command::Healthcheck {
        return cli::healthcheck("PAYMENT_", config::default_internal_port()).await;
    }
    let config = Config::from_env().unwrap_or_else(|err| env_config::exit_with(&err));
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
