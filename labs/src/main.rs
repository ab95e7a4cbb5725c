//! `lab`: list the labs, or run one.
//!
//! ```text
//! lab list
//! lab run faults [--build microservices|monolith|both] [--quick] [--self-test] [--out DIR] [--bin-dir DIR]
//! ```
//! Exit code 0 when the lab showed its concept, 1 when it did not, 2 when
//! it could not run.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use twinshop_labs::{
    catalog,
    common::{Builds, LabArgs, say},
};

#[derive(Parser)]
#[command(name = "lab", about = "twinshop's labs: each concept shown by an experiment that can fail")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The labs and what each shows.
    List,
    /// Runs one lab.
    Run {
        /// The lab (`lab list`).
        name: String,
        /// Which build(s).
        #[arg(long, value_enum, default_value = "both")]
        build: Builds,
        /// The CI variant: about a minute per build.
        #[arg(long)]
        quick: bool,
        /// The lab's self-test (for `faults`: the checker's).
        #[arg(long)]
        self_test: bool,
        /// Where the report goes (default: lab-results/NAME).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The binaries to start.
        #[arg(long, default_value = "target/debug")]
        bin_dir: PathBuf,
        /// Seeds the workload's choices.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(err) => {
            say(&format!("cannot start the runtime: {err}"));
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::List => {
            for lab in catalog::LABS {
                say(&format!("{:<14} {} — {}", lab.name, lab.seed, lab.claim));
            }
            ExitCode::SUCCESS
        }
        Command::Run { name, build, quick, self_test, out, bin_dir, seed } => {
            let args = LabArgs {
                builds: build,
                quick,
                self_test,
                out: out.unwrap_or_else(|| PathBuf::from("lab-results").join(&name)),
                bin_dir,
                seed,
                command: std::env::args().collect::<Vec<_>>().join(" "),
            };
            // Interrupted, the lab's future is dropped: the systems it
            // started, its namespaces and its backing servers go with it.
            let run = runtime.block_on(async {
                tokio::select! {
                    outcome = catalog::run(&name, &args) => Some(outcome),
                    () = interrupted() => None,
                }
            });
            let Some(run) = run else {
                say(&format!("lab {name}: interrupted; what it started is stopped"));
                return ExitCode::from(130);
            };
            match run {
                Ok(outcome) if outcome.passed => {
                    say(&format!("lab {name}: PASSED"));
                    ExitCode::SUCCESS
                }
                Ok(_) => {
                    say(&format!("lab {name}: FAILED (the concept was not shown)"));
                    ExitCode::FAILURE
                }
                Err(err) => {
                    say(&format!("lab {name} could not run: {err:#}"));
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
