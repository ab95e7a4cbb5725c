//! The `loadtest` command line.
//!
//! Why it exists: flags are parsed and checked here, once, into a
//! [`StepConfig`]; everything else takes that typed config. Exit codes:
//! 0 when the run stayed correct, 1 when the correctness check failed,
//! 2 when the run could not be carried out (clap also uses 2 for bad flags).

use std::{io::Write as _, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context as _, Result, bail, ensure};
use clap::{Args, Parser, Subcommand};

use crate::{
    engine::Model,
    mix::{DEFAULT_MIX, Mix},
    report::{RunReport, run::verdict, write_reports},
    step::{StepConfig, StepResult, run_step},
};

/// The open model's rate when neither `--rate` nor `--users` is given.
pub const DEFAULT_RATE: f64 = 200.0;

#[derive(Debug, Parser)]
#[command(name = "loadtest", version, about = "Load generator and benchmark for the twinshop public API")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// One measured run against one base URL: setup, warm-up, measure, check, report.
    Run(RunArgs),
    /// Re-renders the reports from one or more results.json files (their steps, in order).
    Report(ReportArgs),
    /// The monolith and the microservices side by side on this machine: throughput at the SLO,
    /// CPU per order by process, memory, database ceilings, hop cost (see the README).
    Compare(crate::compare::CompareArgs),
    /// Two variants of one build (other binaries or other environment), measured alternately
    /// at one fixed rate: our own CPU per request, the mean paired difference and its
    /// standard error (how each cut of issue 16 was justified).
    Ab(crate::compare::ab::AbArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A results.json written by a run (repeatable).
    #[arg(long = "input", required = true)]
    pub inputs: Vec<PathBuf>,
    /// Where results.json, report.md and report.html go.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "twinshop load test")]
    pub title: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The public API's base URL (plain http); no traffic goes anywhere else.
    #[arg(long, env = "LOADTEST_BASE_URL")]
    pub base_url: String,
    /// Open model (the default, 200 rps): requests per second, timed from their intended send time.
    #[arg(long, conflicts_with = "users")]
    pub rate: Option<f64>,
    /// Closed model: this many concurrent users in a loop (for finding peak throughput).
    #[arg(long)]
    pub users: Option<usize>,
    /// The measured window (e.g. 30s, 500ms, 2m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// At most this many measured requests, whatever the duration.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_requests: u64,
    /// Unmeasured load before the window.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Users registered, logged in and funded before the run (not measured).
    #[arg(long, default_value_t = 100)]
    pub setup_users: usize,
    /// Scenario weights.
    #[arg(long, default_value = DEFAULT_MIX)]
    pub mix: Mix,
    /// Where results.json, report.md and report.html go.
    #[arg(long, default_value = "loadtest-out")]
    pub out: PathBuf,
    /// Seed of the scenario choices (default: from the clock; recorded in the results).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Per-request timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Open model: requests in flight before the schedule waits (late requests keep their full latency).
    #[arg(long, default_value_t = 2048)]
    pub max_in_flight: usize,
    /// A name for this run in the reports.
    #[arg(long)]
    pub label: Option<String>,
    /// Skip the correctness check.
    #[arg(long)]
    pub no_check: bool,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Generator threads. 1 (the default) runs everything on one thread:
    /// no cross-thread wake-ups, about a third less CPU per request, and
    /// never more than one core taken from the system under test.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

impl Cli {
    /// The generator threads the command asks for.
    pub fn threads(&self) -> usize {
        match &self.command {
            Command::Run(args) => args.threads,
            Command::Report(_) | Command::Compare(_) | Command::Ab(_) => 1,
        }
    }
}

/// The tokio runtime for `threads` generator threads (1: current-thread).
pub fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    Ok(builder.enable_all().build()?)
}

/// `30s`, `500ms`, `2m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.parse().map_err(|_| anyhow::anyhow!("{s:?} is not a duration like 30s or 500ms"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1e3,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => bail!("unknown unit in {s:?} (use ms, s, m or h)"),
    };
    ensure!(secs.is_finite() && secs <= 86_400.0, "{s:?} is out of range");
    Ok(Duration::from_secs_f64(secs))
}

impl RunArgs {
    /// The step these flags describe.
    pub fn step_config(&self) -> Result<StepConfig> {
        let model = match (self.rate, self.users) {
            (_, Some(users)) => {
                ensure!(users >= 1, "--users must be at least 1");
                Model::Closed { users }
            }
            (rate, None) => {
                let rate = rate.unwrap_or(DEFAULT_RATE);
                ensure!(rate.is_finite() && rate > 0.0 && rate <= 1e6, "--rate must be above 0 and at most 1e6");
                Model::Open { rate }
            }
        };
        ensure!(!self.duration.is_zero(), "--duration must be above 0");
        ensure!(self.max_requests >= 1, "--max-requests must be at least 1");
        ensure!(self.setup_users >= 1, "--setup-users must be at least 1");
        ensure!(self.max_in_flight >= 1, "--max-in-flight must be at least 1");
        ensure!(!self.timeout.is_zero(), "--timeout must be above 0");
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
        });
        let mut config = StepConfig::new(&self.base_url, model);
        config.label = self.label.clone().unwrap_or_else(|| model.describe());
        config.duration = self.duration;
        config.max_requests = self.max_requests;
        config.warmup = self.warmup;
        config.mix = self.mix;
        config.seed = seed;
        config.request_timeout = self.timeout;
        config.max_in_flight = self.max_in_flight;
        config.progress = !self.quiet;
        config.check = !self.no_check;
        Ok(config)
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run(args) => {
            let config = args.step_config()?;
            let step = run_step(&config, args.setup_users).await?;
            let title = format!("twinshop load test: {}", step.label);
            let files = write_reports(&args.out, &title, std::slice::from_ref(&step))?;
            let l = step.latency();
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{}: {} requests, {:.1} rps achieved, p50 {} p99 {} max {}, {} errors",
                step.label,
                step.summary.overall.count,
                step.achieved_rps(),
                crate::stats::fmt_us(l.p50_us as f64),
                crate::stats::fmt_us(l.p99_us as f64),
                crate::stats::fmt_us(l.max_us as f64),
                step.summary.overall.errors
            )?;
            let report = RunReport::new(&title, std::slice::from_ref(&step));
            writeln!(out, "{}", verdict(&report).replace("**", ""))?;
            writeln!(out, "reports: {}, {}, {}", files.json.display(), files.markdown.display(), files.html.display())?;
            Ok(if step.correct() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Compare(args) => crate::compare::run(args).await,
        Command::Ab(args) => crate::compare::ab::run(args).await,
        Command::Report(args) => {
            let mut steps = Vec::new();
            for input in &args.inputs {
                let text = std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
                let report: RunReport = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a results file", input.display()))?;
                steps.extend(report.steps);
            }
            let files = write_reports(&args.out, &args.title, &steps)?;
            writeln!(
                std::io::stdout().lock(),
                "reports: {}, {}, {}",
                files.json.display(),
                files.markdown.display(),
                files.html.display()
            )?;
            Ok(if steps.iter().all(StepResult::correct) { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<StepConfig> {
        let mut argv = vec!["loadtest", "run", "--base-url", "http://127.0.0.1:1"];
        argv.extend(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Run(run) => run.step_config(),
            Command::Report(_) | Command::Compare(_) | Command::Ab(_) => bail!("not a run"),
        }
    }

    #[test]
    fn durations_take_the_usual_units() {
        assert_eq!(parse_duration("30s").ok(), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms").ok(), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m").ok(), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5").ok(), Some(Duration::from_millis(1500)));
        assert!(parse_duration("3 weeks").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn the_open_model_is_the_default_and_users_select_the_closed_one() {
        assert_eq!(parse(&[]).expect("defaults").model, Model::Open { rate: DEFAULT_RATE });
        assert_eq!(parse(&["--rate", "50"]).expect("rate").model, Model::Open { rate: 50.0 });
        assert_eq!(parse(&["--users", "8"]).expect("users").model, Model::Closed { users: 8 });
        assert!(parse(&["--rate", "50", "--users", "8"]).is_err());
        assert!(parse(&["--rate", "0"]).is_err());
    }

    #[test]
    fn flags_reach_the_step_config() {
        let c =
            parse(&["--duration", "3s", "--max-requests", "99", "--warmup", "0s", "--mix", "browse=1", "--seed", "5"])
                .expect("flags");
        assert_eq!((c.duration, c.max_requests, c.warmup, c.seed), (Duration::from_secs(3), 99, Duration::ZERO, 5));
        assert_eq!(c.mix.total(), 1);
    }
}
