//! `conformance`: runs the suite and prints the report. Exits 0 only if
//! every selected case passed.
//!
//! - `conformance [--base-url URL]`: the public API (docs/api.md), against
//!   the edge or a monolith.
//! - `conformance internal --payment-grpc URL | --user-internal URL`: one
//!   service's internal contract alone (docs/api.md, "Internal contracts"),
//!   for a port of that service; see `twinshop_conformance::internal`.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use twinshop_conformance::{
    Report, Target,
    internal::{self, InternalTarget},
    names, run,
};

#[derive(Debug, Parser)]
#[command(
    name = "conformance",
    version,
    about = "Checks a running twinshop deployment against docs/api.md, or one service's internal contract alone",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Option<Command>,
}

/// What both suites take.
#[derive(Debug, Args)]
struct Common {
    /// Where the public API answers (the edge, or a monolith's public port).
    /// The internal suite sets up its users and wallets through it.
    #[arg(long, env = "TWINSHOP_BASE_URL", default_value = "http://127.0.0.1:8080")]
    base_url: String,
    /// Which build this is, for the report (e.g. microservices, monolith).
    #[arg(long, default_value = "unknown")]
    build: String,
    /// Run only the cases whose name contains this.
    #[arg(long, value_name = "SUBSTRING")]
    filter: Option<String>,
    /// Print the cases' names and exit.
    #[arg(long)]
    list: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check one service's internal contract by itself (the user lookup, or
    /// Payments with gRPC health and reflection): for a port of the user or
    /// payment service to another language.
    Internal(InternalArgs),
}

#[derive(Debug, Args)]
struct InternalArgs {
    #[command(flatten)]
    common: Common,
    /// The user service's internal base URL (the lookup), e.g. http://127.0.0.1:9081.
    #[arg(long, value_name = "URL", required_unless_present = "payment_grpc")]
    user_internal: Option<String>,
    /// The payment service's gRPC URL (plain HTTP/2), e.g. http://127.0.0.1:9082.
    #[arg(long, value_name = "URL")]
    payment_grpc: Option<String>,
    /// An Ed25519 private key (PKCS#8 PEM file) whose public half the
    /// target trusts, e.g. dev/keys/jwt-private.pem: the suite then signs
    /// its own tokens for fresh users instead of registering them through
    /// --base-url (so a payment port can be checked without a user service).
    #[arg(long, value_name = "FILE")]
    signing_key: Option<std::path::PathBuf>,
}

#[expect(clippy::print_stdout, reason = "the report is this program's output")]
fn print_names(names: Vec<&'static str>, filter: Option<&str>) {
    for name in names.into_iter().filter(|n| filter.is_none_or(|f| n.contains(f))) {
        println!("{name}");
    }
}

#[expect(clippy::print_stdout, reason = "the report is this program's output")]
fn finish(report: &Report, filter: Option<&str>) -> ExitCode {
    println!("{report}");
    if report.passed.is_empty() && report.failed.is_empty() {
        eprintln!("no case matches the filter {:?}", filter.unwrap_or_default());
        return ExitCode::from(2);
    }
    if report.is_success() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => {
            let common = cli.common;
            if common.list {
                print_names(names(), common.filter.as_deref());
                return ExitCode::SUCCESS;
            }
            let report = run(&Target { name: common.build, base_url: common.base_url }, common.filter.as_deref()).await;
            finish(&report, common.filter.as_deref())
        }
        Some(Command::Internal(args)) => {
            let common = args.common;
            let signing_key = match args.signing_key.as_deref().map(std::fs::read_to_string).transpose() {
                Ok(key) => key,
                Err(err) => {
                    eprintln!("--signing-key: {err}");
                    return ExitCode::from(2);
                }
            };
            let target = InternalTarget {
                name: common.build,
                base_url: common.base_url,
                user_internal: args.user_internal,
                payment_grpc: args.payment_grpc,
                signing_key,
            };
            if common.list {
                print_names(internal::names(&target), common.filter.as_deref());
                return ExitCode::SUCCESS;
            }
            let report = internal::run(&target, common.filter.as_deref()).await;
            finish(&report, common.filter.as_deref())
        }
    }
}
