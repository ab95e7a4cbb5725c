//! The `loadtest` binary: a shim over [`twinshop_loadtest::cli`].

use std::process::ExitCode;

use clap::Parser as _;
use twinshop_loadtest::cli::{Cli, run, runtime};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = runtime(cli.threads()).and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::from(2)
        }
    }
}
