//! Reports of a list of step results: JSON (for machines and for
//! `compare`), Markdown (for READMEs and pull requests) and a
//! self-contained HTML page with SVG charts (for people).
//!
//! Why it exists: one run and a whole comparison are both "a list of
//! [`StepResult`]s", so every writer takes a slice of them and the tables
//! are computed once ([`Table`]) and rendered twice. `compare` adds its
//! own sections to the HTML [`html::Page`] and its own charts through
//! [`svg::bar_chart`].

pub mod html;
pub mod markdown;
pub mod svg;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{stats::fmt_us, step::StepResult};

/// The JSON file: the results and where they came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub title: String,
    pub tool: String,
    pub version: String,
    /// RFC 3339.
    pub generated_at: String,
    pub steps: Vec<StepResult>,
}

impl RunReport {
    pub fn new(title: &str, steps: &[StepResult]) -> Self {
        Self {
            title: title.to_owned(),
            tool: env!("CARGO_PKG_NAME").to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            generated_at: OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
            steps: steps.to_vec(),
        }
    }
}

/// Where [`write_reports`] put its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub html: PathBuf,
}

/// Writes `results.json`, `report.md` and `report.html` into `dir`
/// (created if missing).
pub fn write_reports(dir: &Path, title: &str, results: &[StepResult]) -> Result<ReportFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let report = RunReport::new(title, results);
    let files =
        ReportFiles { json: dir.join("results.json"), markdown: dir.join("report.md"), html: dir.join("report.html") };
    let json = serde_json::to_string_pretty(&report).context("encoding the results")?;
    write(&files.json, &json)?;
    write(&files.markdown, &markdown::render(&report))?;
    write(&files.html, &html::standard_page(&report).render())?;
    Ok(files)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A table computed once, rendered as Markdown or HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: &[&str]) -> Self {
        Self { headers: headers.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }
}

/// A rate, for people: `498.3`.
pub fn fmt_rps(rps: f64) -> String {
    if rps >= 100.0 { format!("{rps:.0}") } else { format!("{rps:.1}") }
}

/// A share as a percentage: `0.25 %`.
pub fn fmt_pct(share: f64) -> String {
    format!("{:.2} %", share * 100.0)
}

/// `PASSED`, `FAILED (n)` or `not run`.
pub fn check_verdict(step: &StepResult) -> String {
    match &step.check {
        Some(c) if c.passed => "PASSED".to_owned(),
        Some(c) => format!("FAILED ({} violations)", c.violation_count),
        None => "not run".to_owned(),
    }
}

/// One row per step: what was offered, achieved, and whether it stayed correct.
pub fn steps_table(results: &[StepResult]) -> Table {
    let mut t = Table::new(&[
        "step",
        "model",
        "offered rps",
        "achieved rps",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "errors",
        "orders c/r/p/f/x",
        "check",
    ]);
    for s in results {
        let l = s.latency();
        let o = &s.orders;
        t.rows.push(vec![
            s.label.clone(),
            s.model.describe(),
            s.offered_rps.map_or_else(|| "–".to_owned(), fmt_rps),
            fmt_rps(s.achieved_rps()),
            fmt_us(l.p50_us as f64),
            fmt_us(l.p90_us as f64),
            fmt_us(l.p99_us as f64),
            fmt_us(l.p999_us as f64),
            fmt_us(l.max_us as f64),
            format!("{} ({})", s.summary.overall.errors, fmt_pct(s.summary.overall.error_rate)),
            format!("{}/{}/{}/{}/{}", o.confirmed, o.rejected, o.pending, o.failed, o.cancelled),
            check_verdict(s),
        ]);
    }
    t
}

/// One row per endpoint of a step, then `all`.
pub fn endpoints_table(step: &StepResult) -> Table {
    let mut t =
        Table::new(&["endpoint", "requests", "rps", "p50", "p90", "p99", "p99.9", "max", "service p99", "errors"]);
    for e in step.summary.endpoints.iter().chain(std::iter::once(&step.summary.overall)) {
        t.rows.push(vec![
            e.name.clone(),
            e.count.to_string(),
            fmt_rps(e.throughput_rps),
            fmt_us(e.latency.p50_us as f64),
            fmt_us(e.latency.p90_us as f64),
            fmt_us(e.latency.p99_us as f64),
            fmt_us(e.latency.p999_us as f64),
            fmt_us(e.latency.max_us as f64),
            fmt_us(e.service_time.p99_us as f64),
            format!("{} ({})", e.errors, fmt_pct(e.error_rate)),
        ]);
    }
    t
}

/// One row per (endpoint, error): HTTP status with problem code, or a
/// transport error kind. Empty when the step had no errors.
pub fn errors_table(step: &StepResult) -> Table {
    let mut t = Table::new(&["endpoint", "error", "count"]);
    for e in step.summary.endpoints.iter() {
        for (status, n) in e.statuses.iter().filter(|(s, _)| s.as_str() >= "400") {
            t.rows.push(vec![e.name.clone(), format!("HTTP {status}"), n.to_string()]);
        }
        for (code, n) in &e.problem_codes {
            t.rows.push(vec![e.name.clone(), format!("code {code}"), n.to_string()]);
        }
        for (kind, n) in &e.transport_errors {
            t.rows.push(vec![e.name.clone(), kind.clone(), n.to_string()]);
        }
    }
    if step.summary.unsent > 0 {
        t.rows.push(vec!["(scheduled)".to_owned(), "not_sent".to_owned(), step.summary.unsent.to_string()]);
    }
    t
}

/// A sentence on what the generator itself did and cost.
pub fn generator_note(step: &StepResult) -> String {
    let s = &step.summary;
    let mut note = format!(
        "Generator: send lag p50 {}, p99 {} (max {}); {} request(s) waited for an in-flight slot; {} never sent",
        fmt_us(s.send_lag.p50_us as f64),
        fmt_us(s.send_lag.p99_us as f64),
        fmt_us(s.send_lag.max_us as f64),
        s.backlogged,
        s.unsent
    );
    if let Some(g) = &step.generator {
        note.push_str(&format!("; own CPU {:.0} ms, {:.1} µs per request", g.cpu_ms, g.cpu_us_per_request));
    }
    note.push('.');
    note
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
    fn the_steps_table_reads_offered_achieved_percentiles_errors_and_the_verdict() {
        let t = steps_table(&[sample_step("a", 100.0, 1_000, true), sample_step("b", 200.0, 2_000, false)]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0][2..10], ["100", "100", "1.00ms", "2.00ms", "4.00ms", "8.00ms", "10.0ms", "2 (0.20 %)"]);
        assert_eq!(t.rows[0][10], "990/8/0/2/0");
        assert_eq!(t.rows[0][11], "PASSED");
        assert_eq!(t.rows[1][11], "FAILED (1 violations)");
    }

    #[test]
    fn the_errors_table_lists_statuses_and_problem_codes() {
        let t = errors_table(&sample_step("a", 100.0, 1_000, true));
        assert_eq!(
            t.rows,
            [
                vec!["POST /v1/orders".to_owned(), "HTTP 503".to_owned(), "2".to_owned()],
                vec!["POST /v1/orders".to_owned(), "code payment_unavailable".to_owned(), "2".to_owned()],
            ]
        );
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
        let _ = std::fs::remove_dir_all(dir);
    }
}
