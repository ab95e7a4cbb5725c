//! `conformance`: runs the suite against a base URL and prints the report.
//! Exits 0 only if every selected case passed.

use std::process::ExitCode;

use clap::Parser;
use twinshop_conformance::{Target, names, run};

#[derive(Debug, Parser)]
#[command(name = "conformance", version, about = "Checks a running twinshop deployment against API.md")]
struct Cli {
    /// Where the public API answers (the edge, or a monolith's public port).
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

#[expect(clippy::print_stdout, reason = "the report is this program's output")]
#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.list {
        for name in names().into_iter().filter(|n| cli.filter.as_deref().is_none_or(|f| n.contains(f))) {
            println!("{name}");
        }
        return ExitCode::SUCCESS;
    }
    let report = run(&Target { name: cli.build, base_url: cli.base_url }, cli.filter.as_deref()).await;
    println!("{report}");
    if report.passed.is_empty() && report.failed.is_empty() {
        eprintln!("no case matches the filter {:?}", cli.filter.unwrap_or_default());
        return ExitCode::from(2);
    }
    if report.is_success() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
