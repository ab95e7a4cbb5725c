//! `main` of every twinshop binary: the subcommands (serve, `migrate`,
//! `healthcheck`), the build's identity (`--version`, the first log line,
//! the `build_info` metric), configuration before anything else (exit 64 on
//! a bad variable; its fingerprint as the `config_info` metric), telemetry
//! set up first and flushed last, the drain on
//! SIGTERM/SIGINT, and the exit code.

use std::process::ExitCode;

use clap::{Command as ClapCommand, FromArgMatches as _, Subcommand as _};

use super::{Env, Host, Process, migrate, server::prepare};
use crate::{
    build_info::BuildInfo,
    cli::{self, Command},
    config, metrics,
    shutdown::Shutdown,
};

/// Runs `process` as a program: parses the command line, then serves,
/// migrates or checks health. What each binary's `main` calls, with the
/// identity `build_info!()` expands to in that `main.rs`.
pub fn main(process: &'static Process, build: BuildInfo) -> ExitCode {
    // Before telemetry starts, which logs it first (telemetry.rs).
    build.install();
    // clap keeps a `&'static str`; this runs once per process.
    let version: &'static str = build.to_string().leak();
    let matches = Command::augment_subcommands(ClapCommand::new(process.binary).about(process.about).version(version))
        .get_matches();
    let command = Command::from_arg_matches(&matches).ok().unwrap_or(Command::Serve);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("cannot start the async runtime: {err}");
            }
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(process, build, command))
}

async fn run(process: &'static Process, build: BuildInfo, command: Command) -> ExitCode {
    if command == Command::Healthcheck {
        return cli::healthcheck(process.prefix, process.internal_port).await;
    }
    let env = Env::load(process, std::env::vars()).unwrap_or_else(|err| config::exit_with(&err));
    let prepared = prepare(process, &env).unwrap_or_else(|err| config::exit_with(&err));
    let telemetry = env.telemetry.clone();
    let fingerprint = super::fingerprint::of(process, &env);
    cli::run(process.service, &telemetry, async move {
        metrics::build_info(&build);
        super::fingerprint::export(&fingerprint);
        match command {
            Command::Migrate => migrate(process, &env).await,
            Command::Serve | Command::Healthcheck => {
                let shutdown = Shutdown::new();
                let host = Host::build(process, env, prepared, shutdown.clone()).await?;
                cli::trigger_on_signal(shutdown);
                host.run().await
            }
        }
    })
    .await
}
