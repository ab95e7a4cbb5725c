//! The one report pipeline: every report (a run, a comparison, a lab) is
//! built as a [`Document`] and written as JSON (the results, for machines
//! and re-rendering), Markdown (for READMEs and pull requests) and one
//! self-contained HTML page with SVG charts (for people).
//!
//! Why it exists: reports used to be written twice, once per format, and
//! twice again for `compare`; the formats drifted (a sentence in one, a
//! chart in the other). Now a report is data, written once, and the
//! renderers decide only how it looks.
//!
//! # Layout
//!
//! - [`doc`]: the model (sections of paragraphs, verdicts, tables, lists,
//!   preformatted text and charts); depends on std only;
//! - [`markdown`], [`html`]: its two renderings;
//! - [`svg`]: the charts, as SVG text we write ourselves (bars, lines);
//! - [`run`]: the run report and the pieces that describe steps (tables,
//!   charts, a step's section), reused by `compare` and by the labs;
//! - [`write_files`]: `results.json`, `report.md`, `report.html` (and, on
//!   request, each chart as an `.svg` file the Markdown links to).
//!
//! `doc`, `markdown`, `html` and `svg` know nothing of load tests: a lab
//! crate builds its own [`Document`] and calls [`write_files`].

pub mod doc;
pub mod html;
pub mod markdown;
pub mod run;
pub mod svg;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Serialize;

pub use self::{
    doc::{Block, Chart, Document, Section, Shown, Table, Text},
    run::{RunReport, steps_table},
};
use crate::step::StepResult;

/// Where [`write_files`] put its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    /// `results.json`.
    pub json: PathBuf,
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
    /// The charts as SVG files, when asked for ([`ChartFiles::Write`]).
    pub charts: Vec<PathBuf>,
}

/// Whether the charts also go into files of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartFiles {
    /// Only inline in the HTML; the Markdown has none.
    Inline,
    /// Also `NN-title.svg` beside the reports, linked from the Markdown
    /// (so a committed report shows its charts on a code host).
    Write,
}

/// Writes `results.json` (the `results` as pretty JSON), `report.md` and
/// `report.html` of `doc` into `dir` (created if missing).
pub fn write_files(dir: &Path, results: &impl Serialize, doc: &Document, charts: ChartFiles) -> Result<ReportFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut files = ReportFiles {
        json: dir.join("results.json"),
        markdown: dir.join("report.md"),
        html: dir.join("report.html"),
        charts: Vec::new(),
    };
    let json = serde_json::to_string_pretty(results).context("encoding the results")?;
    write(&files.json, &json)?;
    let markdown = match charts {
        ChartFiles::Inline => markdown::render(doc),
        ChartFiles::Write => {
            let names: Vec<String> =
                doc.charts().enumerate().map(|(i, c)| format!("{:02}-{}.svg", i + 1, slug(&c.title))).collect();
            for (chart, name) in doc.charts().zip(&names) {
                let path = dir.join(name);
                write(&path, &chart.svg)?;
                files.charts.push(path);
            }
            markdown::render_with(doc, markdown::Charts::Linked(&names))
        }
    };
    write(&files.markdown, &markdown)?;
    write(&files.html, &html::render(doc))?;
    Ok(files)
}

/// The run report of `results` (see [`run::document`]), charts inline.
pub fn write_reports(dir: &Path, title: &str, results: &[StepResult]) -> Result<ReportFiles> {
    let report = RunReport::new(title, results);
    write_files(dir, &report, &run::document(&report), ChartFiles::Inline)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A file-name-safe form of a title: lowercase letters and digits joined
/// by `-`, at most 48 characters.
pub fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(48);
    let trimmed = out.trim_end_matches('-').to_owned();
    if trimmed.is_empty() { "chart".to_owned() } else { trimmed }
}

/// A rate, for people: `498.3`.
pub fn fmt_rps(rps: f64) -> String {
    if rps >= 100.0 { format!("{rps:.0}") } else { format!("{rps:.1}") }
}

/// A share as a percentage: `0.25 %`.
pub fn fmt_pct(share: f64) -> String {
    format!("{:.2} %", share * 100.0)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{
        check::CheckReport,
        engine::Model,
        mix::Mix,
        setup::SetupConfig,
        stats::{EndpointStats, Percentiles, Summary},
        step::{GeneratorCost, OrderCounts},
    };

    fn percentiles(p50: u64) -> Percentiles {
        Percentiles {
            count: 10,
            min_us: p50 / 2,
            mean_us: p50 as f64,
            p50_us: p50,
            p90_us: p50 * 2,
            p99_us: p50 * 4,
            p999_us: p50 * 8,
            max_us: p50 * 10,
        }
    }

    /// A step result as a run would produce it, without running anything.
    pub(crate) fn sample_step(label: &str, rate: f64, p50: u64, passed: bool) -> StepResult {
        let endpoint = |name: &str, count: u64, errors: u64| EndpointStats {
            name: name.to_owned(),
            count,
            ok: count - errors,
            errors,
            error_rate: errors as f64 / count as f64,
            throughput_rps: count as f64 / 10.0,
            latency: percentiles(p50),
            service_time: percentiles(p50 / 2),
            statuses: BTreeMap::from([("201".to_owned(), count - errors), ("503".to_owned(), errors)]),
            problem_codes: if errors > 0 {
                BTreeMap::from([("payment_unavailable".to_owned(), errors)])
            } else {
                BTreeMap::new()
            },
            transport_errors: BTreeMap::new(),
        };
        StepResult {
            label: label.to_owned(),
            group: "mono".to_owned(),
            base_url: "http://127.0.0.1:8080".to_owned(),
            model: Model::Open { rate },
            offered_rps: Some(rate),
            mix: Mix::default(),
            seed: 7,
            started_at: "2026-11-20T10:00:00Z".to_owned(),
            duration_s: 10.0,
            warmup_s: 1.0,
            max_requests: 1_000_000,
            window_s: 10.0,
            setup: SetupConfig { users: 10, wallet_cents: 1_000_000, concurrency: 4 },
            setup_s: 1.5,
            summary: Summary {
                overall: EndpointStats { name: "all".into(), ..endpoint("all", 1000, 2) },
                endpoints: vec![endpoint("POST /v1/orders", 1000, 2)],
                tags: BTreeMap::new(),
                send_lag: percentiles(100),
                backlogged: 0,
                unsent: 0,
            },
            orders: OrderCounts { confirmed: 990, rejected: 8, pending: 0, failed: 2, cancelled: 0 },
            generator: Some(GeneratorCost { cpu_ms: 420.0, cpu_us_per_request: 42.0 }),
            check: Some(CheckReport {
                passed,
                users_checked: 10,
                orders_checked: 1000,
                violation_count: usize::from(!passed),
                violations: if passed { vec![] } else { vec!["u: money not conserved".into()] },
                ..CheckReport::default()
            }),
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn reports_are_written_and_the_json_reads_back() {
        let dir = std::env::temp_dir().join(format!("loadtest-report-{}", uuid::Uuid::now_v7().simple()));
        let steps = [sample_step("a", 100.0, 1_000, true)];
        let files = write_reports(&dir, "t", &steps).expect("reports written");
        let back: RunReport =
            serde_json::from_str(&std::fs::read_to_string(&files.json).expect("json")).expect("parses");
        // Floats may differ in the last bit after a round trip; the rest may not.
        assert_eq!(back.steps.len(), 1);
        assert_eq!((back.steps[0].label.as_str(), back.steps[0].summary.overall.count), ("a", 1000));
        assert_eq!(back.steps[0].check, steps[0].check);
        assert!(std::fs::read_to_string(&files.markdown).expect("md").contains("| a |"));
        assert!(std::fs::read_to_string(&files.html).expect("html").contains("<svg"));
        assert!(files.charts.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn charts_can_be_written_as_files_the_markdown_links() {
        let dir = std::env::temp_dir().join(format!("loadtest-charts-{}", uuid::Uuid::now_v7().simple()));
        let report = RunReport::new("t", &[sample_step("a", 100.0, 1_000, true)]);
        let files = write_files(&dir, &report, &run::document(&report), ChartFiles::Write).expect("written");
        assert_eq!(files.charts.len(), 1);
        let name = files.charts[0].file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        assert_eq!(name, "01-latency-percentiles-per-endpoint-a.svg");
        let svg = std::fs::read_to_string(&files.charts[0]).expect("svg");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "a standalone SVG file");
        let md = std::fs::read_to_string(&files.markdown).expect("md");
        assert!(md.contains(&format!("]({name})")), "{md}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn slugs_are_file_name_safe() {
        assert_eq!(slug("Latency vs offered load (median over runs)"), "latency-vs-offered-load-median-over-runs");
        assert_eq!(slug("CPU <per> order: µs"), "cpu-per-order-s");
        assert_eq!(slug("—"), "chart");
    }
}
