//! What every lab shares: its arguments, the list of checks that decide
//! whether its concept was shown, and how its report is written.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use serde::Serialize;
use twinshop_launcher::Build;
use twinshop_loadtest::report::{
    ChartFiles, ReportFiles,
    doc::{Block, Document, Section, Table, Text},
    write_files,
};

/// Which build(s) a lab runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Builds {
    Microservices,
    Monolith,
    Both,
}

impl Builds {
    /// The builds, microservices first.
    pub fn list(self) -> Vec<Build> {
        match self {
            Self::Microservices => vec![Build::Microservices],
            Self::Monolith => vec![Build::Monolith],
            Self::Both => vec![Build::Microservices, Build::Monolith],
        }
    }
}

/// What `lab run` was asked.
#[derive(Debug, Clone)]
pub struct LabArgs {
    pub builds: Builds,
    /// The CI variant: about a minute per build, fewer steps.
    pub quick: bool,
    /// The checker's (or lab's) self-test instead of the experiment.
    pub self_test: bool,
    /// Where the report goes.
    pub out: PathBuf,
    /// The binaries to start (target/debug or target/release).
    pub bin_dir: PathBuf,
    /// Seeds the workload's choices.
    pub seed: u64,
    /// The command line, for the report.
    pub command: String,
}

/// A named assertion of a lab: what was expected, what was seen.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub evidence: String,
}

/// The checks of one run, in order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Checks(pub Vec<Check>);

impl Checks {
    /// Records one check.
    pub fn check(&mut self, name: impl Into<String>, passed: bool, evidence: impl Into<String>) -> bool {
        self.0.push(Check { name: name.into(), passed, evidence: evidence.into() });
        passed
    }

    /// Whether every check held.
    pub fn all_passed(&self) -> bool {
        self.0.iter().all(|c| c.passed)
    }

    /// The checks as a report table.
    pub fn table(&self) -> Table {
        let mut t = Table::new(&["check", "verdict", "evidence"]);
        for c in &self.0 {
            let verdict = if c.passed { "PASSED".to_owned() } else { "FAILED".to_owned() };
            t.rows.push(vec![c.name.clone(), verdict, c.evidence.clone()]);
        }
        t
    }

    /// One line per check for the terminal.
    pub fn print(&self, title: &str) {
        let mut out = format!("{title}\n");
        for c in &self.0 {
            let _ = writeln!(out, "  {} {}: {}", if c.passed { "ok  " } else { "FAIL" }, c.name, c.evidence);
        }
        say(&out);
    }
}

/// What a lab run ended with.
#[derive(Debug, Clone)]
pub struct LabOutcome {
    pub passed: bool,
    pub files: Option<ReportFiles>,
}

/// Writes a line to the terminal (labs are command-line programs).
#[allow(clippy::print_stdout)]
pub fn say(line: &str) {
    println!("{line}");
}

/// The commit this binary was built from, if the working tree is a git
/// checkout (`git rev-parse`), with `-dirty` when it has changes.
pub fn commit() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let head = run(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{head}-dirty") } else { head }
}

/// The machine, in one line: cores, memory, kernel.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok()))
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores, {:.1} GiB, Linux {}", mem_kib as f64 / 1024.0 / 1024.0, kernel.trim())
}

/// The section every report ends with: how it was made.
pub fn provenance(args: &LabArgs, started: &str, took_s: f64) -> Section {
    let mut s = Section::new("How this report was made");
    let mut t = Table::new(&["", ""]);
    for (k, v) in [
        ("command", args.command.clone()),
        ("commit", commit()),
        ("machine", machine()),
        ("started (UTC)", started.to_owned()),
        ("took", format!("{took_s:.0} s")),
        ("variant", if args.quick { "quick (CI)".into() } else { "full".into() }),
        ("binaries", args.bin_dir.display().to_string()),
    ] {
        t.rows.push(vec![k.to_owned(), v]);
    }
    s.table(t);
    s
}

/// A verdict block.
pub fn verdict(passed: bool, text: &str) -> Block {
    Block::Verdict { passed, text: Text::markup(text) }
}

/// Writes the report and says where it went.
pub fn write_report(dir: &Path, results: &impl Serialize, doc: &Document) -> Result<ReportFiles> {
    let files =
        write_files(dir, results, doc, ChartFiles::Write).with_context(|| format!("writing {}", dir.display()))?;
    say(&format!("report: {}", files.markdown.display()));
    Ok(files)
}

/// The repository's root (labs run from a checkout).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Now, as RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into())
}
