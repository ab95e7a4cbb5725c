//! The report of a list of steps (`loadtest run`, `loadtest report`): its
//! JSON record ([`RunReport`]), its tables and charts, and the
//! [`Document`] both formats are rendered from.
//!
//! Why it exists: one run and a whole comparison are both "a list of
//! [`StepResult`]s", so the pieces that describe steps (the steps table,
//! each step's endpoints, errors, generator cost, check and percentile
//! chart, the load curves) live here once; `compare` and the labs reuse
//! them in their own documents.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{
    doc::{Block, Document, Section, Shown, Table, Text},
    fmt_pct, fmt_rps,
    svg::{self, BarChart, BarSeries, LineChart, LineSeries, Scale},
};
use crate::{stats::fmt_us, step::StepResult};

/// The JSON file of a run: the results and where they came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The report's title.
    pub title: String,
    /// The program that wrote it (`twinshop-loadtest`).
    pub tool: String,
    /// Its version.
    pub version: String,
    /// RFC 3339.
    pub generated_at: String,
    /// Every step, in the order they ran.
    pub steps: Vec<StepResult>,
}

impl RunReport {
    /// The results of `steps`, stamped with this tool and the time.
    pub fn new(title: &str, steps: &[StepResult]) -> Self {
        Self {
            title: title.to_owned(),
            tool: env!("CARGO_PKG_NAME").to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            generated_at: OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
            steps: steps.to_vec(),
        }
    }

    /// Whether every step stayed correct.
    pub fn all_correct(&self) -> bool {
        self.steps.iter().all(StepResult::correct)
    }
}

/// The verdict line, with its Markdown emphasis: how many steps stayed correct.
pub fn verdict(report: &RunReport) -> String {
    let failed = report.steps.iter().filter(|s| !s.correct()).count();
    if failed == 0 {
        format!("**Correctness: PASSED** ({} step(s); every checked invariant held).", report.steps.len())
    } else {
        format!(
            "**Correctness: FAILED** in {failed} of {} step(s): their numbers do not count, whatever their speed.",
            report.steps.len()
        )
    }
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

fn fmt_latency(us: f64) -> String {
    fmt_us(us)
}

fn fmt_rate(rps: f64) -> String {
    format!("{rps:.0}")
}

/// p50/p90/p99/p99.9/max bars per endpoint of one step (log scale).
pub fn percentile_chart(step: &StepResult) -> String {
    let endpoints: Vec<_> = step.summary.endpoints.iter().chain(std::iter::once(&step.summary.overall)).collect();
    let labels = step.summary.overall.latency.labelled().map(|(name, _)| name);
    let series = labels
        .iter()
        .enumerate()
        .map(|(i, name)| BarSeries {
            name: (*name).to_owned(),
            values: endpoints.iter().map(|e| e.latency.labelled()[i].1 as f64).collect(),
        })
        .collect();
    svg::bar_chart(&BarChart {
        title: format!("Latency percentiles per endpoint: {}", step.label),
        categories: endpoints.iter().map(|e| e.name.clone()).collect(),
        series,
        scale: Scale::Log,
        format: fmt_latency,
    })
}

/// p50 and p99 against offered load, one pair of lines per group, for the
/// open-model steps; `None` when there are none.
pub fn latency_vs_load_chart(steps: &[StepResult], slo_p99_us: Option<u64>) -> Option<String> {
    /// `(offered rps, latency µs)` points.
    type Points = Vec<(f64, f64)>;
    let mut groups: BTreeMap<&str, (Points, Points)> = BTreeMap::new();
    for s in steps {
        if let Some(rate) = s.offered_rps {
            let g = groups.entry(s.group.as_str()).or_default();
            g.0.push((rate, s.latency().p50_us as f64));
            g.1.push((rate, s.latency().p99_us as f64));
        }
    }
    if groups.is_empty() {
        return None;
    }
    let series = groups
        .into_iter()
        .flat_map(|(group, (p50, p99))| {
            [
                LineSeries { name: format!("{group} p50"), points: p50 },
                LineSeries { name: format!("{group} p99"), points: p99 },
            ]
        })
        .collect();
    Some(svg::line_chart(&LineChart {
        title: "Latency vs offered load".to_owned(),
        x_label: "offered load (requests/s)".to_owned(),
        y_label: "latency (from intended send)".to_owned(),
        series,
        y_scale: Scale::Log,
        x_format: fmt_rate,
        y_format: fmt_latency,
        threshold: slo_p99_us.map(|us| (us as f64, format!("SLO p99 ≤ {}", fmt_us(us as f64)))),
    }))
}

/// Achieved against offered throughput per group (the diagonal is keeping up).
pub fn throughput_chart(steps: &[StepResult]) -> Option<String> {
    let mut groups: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for s in steps {
        if let Some(rate) = s.offered_rps {
            groups.entry(s.group.as_str()).or_default().push((rate, s.achieved_rps()));
        }
    }
    if groups.is_empty() {
        return None;
    }
    let mut series: Vec<LineSeries> =
        groups.into_iter().map(|(g, points)| LineSeries { name: g.to_owned(), points }).collect();
    let max = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).fold(0.0, f64::max);
    series.push(LineSeries { name: "offered".to_owned(), points: vec![(0.0, 0.0), (max, max)] });
    Some(svg::line_chart(&LineChart {
        title: "Achieved vs offered throughput".to_owned(),
        x_label: "offered load (requests/s)".to_owned(),
        y_label: "achieved (requests/s)".to_owned(),
        series,
        y_scale: Scale::Linear,
        x_format: fmt_rate,
        y_format: fmt_rate,
        threshold: None,
    }))
}

/// The details of one step: what was offered, the percentile chart, its
/// endpoints, service time, errors, the generator's cost and the check.
pub fn step_blocks(step: &StepResult) -> Vec<Block> {
    let mut blocks = vec![Block::Paragraph(Text::markup(&format!(
        "{} against `{}`, {} s measured after {} s warm-up (window {:.1} s, at most {} requests), mix `{}`, \
         seed {}; {} users set up in {:.1} s with {} cents each; started {}.",
        step.model.describe(),
        step.base_url,
        step.duration_s,
        step.warmup_s,
        step.window_s,
        step.max_requests,
        step.mix,
        step.seed,
        step.setup.users,
        step.setup_s,
        step.setup.wallet_cents,
        step.started_at
    )))];
    blocks.push(Block::Chart(super::doc::Chart {
        title: format!("Latency percentiles per endpoint: {}", step.label),
        svg: percentile_chart(step),
    }));
    blocks.push(Block::Table(endpoints_table(step)));
    let service = &step.summary.overall.service_time;
    blocks.push(Block::Paragraph(Text::plain(format!(
        "Service time (from the actual send): p50 {}, p99 {}, max {}.",
        fmt_us(service.p50_us as f64),
        fmt_us(service.p99_us as f64),
        fmt_us(service.max_us as f64)
    ))));
    let errors = errors_table(step);
    if !errors.rows.is_empty() {
        blocks.push(Block::Subheading("Errors".to_owned()));
        blocks.push(Block::Table(errors));
    }
    blocks.push(Block::Paragraph(Text::plain(generator_note(step))));
    match &step.check {
        Some(c) => {
            let statuses: Vec<String> = c.orders_by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
            blocks.push(Block::Verdict {
                passed: c.passed,
                text: Text::markup(&format!(
                    "Correctness check: **{}**: {} users, {} orders ({}), {} ledger entries, in {:.1} s.",
                    check_verdict(step),
                    c.users_checked,
                    c.orders_checked,
                    if statuses.is_empty() { "none".to_owned() } else { statuses.join(", ") },
                    c.ledger_entries,
                    c.seconds
                )),
            });
            let mut listed: Vec<Text> = c.violations.iter().map(Text::plain).collect();
            if c.violation_count > c.violations.len() {
                listed.push(Text::plain(format!("… and {} more", c.violation_count - c.violations.len())));
            }
            if !listed.is_empty() {
                blocks.push(Block::List(listed));
            }
        }
        None => blocks.push(Block::Paragraph(Text::plain("Correctness check: not run."))),
    }
    blocks
}

/// The document every run gets: the verdict, the steps table, load curves
/// (when there are several open-model steps), and a section per step
/// (folded in HTML after the first).
pub fn document(report: &RunReport) -> Document {
    let mut doc = Document::new(&report.title);
    doc.lead.push(Block::Verdict { passed: report.all_correct(), text: Text::markup(&verdict(report)) });
    doc.lead.push(Block::Paragraph(Text::plain(format!(
        "Generated {} by {} {}.",
        report.generated_at, report.tool, report.version
    ))));
    doc.lead.push(Block::Paragraph(Text::markup(
        "Latency is measured from each request's *intended* send time in the open model (coordinated-omission \
         free) and from its actual send in the closed model. Errors are HTTP 4xx/5xx plus requests without an \
         answer.",
    )));
    let mut steps = Section::new("Steps");
    steps.table(steps_table(&report.steps));
    doc.push(steps);
    if report.steps.iter().filter(|s| s.offered_rps.is_some()).count() > 1 {
        let mut curves = Section::new("Load curves");
        if let Some(chart) = latency_vs_load_chart(&report.steps, None) {
            curves.chart("Latency vs offered load", chart);
        }
        if let Some(chart) = throughput_chart(&report.steps) {
            curves.chart("Achieved vs offered throughput", chart);
        }
        doc.push(curves);
    }
    for (i, step) in report.steps.iter().enumerate() {
        let shown = if i == 0 { Shown::Open } else { Shown::Folded };
        doc.push(Section { heading: step.label.clone(), blocks: step_blocks(step), shown });
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{html, markdown, tests::sample_step};

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
    fn the_markdown_opens_with_the_verdict_and_lists_violations() {
        let report = RunReport::new("t", &[sample_step("a", 100.0, 1_000, true), sample_step("b", 200.0, 900, false)]);
        let md = markdown::render(&document(&report));
        assert!(md.starts_with("# t\n"));
        let verdict_at = md.find("**Correctness: FAILED** in 1 of 2").expect("verdict");
        assert!(verdict_at < md.find("## Steps").expect("steps"));
        assert!(md.contains("- u: money not conserved"));
        assert!(md.contains("| POST /v1/orders | HTTP 503 | 2 |"));
        assert!(md.contains("## b\n\nopen 200 rps against"), "every step in the Markdown: {md}");
        assert!(!md.contains("<svg"), "no charts in the Markdown");
    }

    #[test]
    fn the_page_charts_every_step_and_the_load_curves() {
        let report =
            RunReport::new("t <1>", &[sample_step("a", 100.0, 1_000, true), sample_step("b", 200.0, 1_500, true)]);
        let html = html::render(&document(&report));
        // Two percentile charts, the latency curve and the throughput chart.
        assert_eq!(html.matches("<svg").count(), 4);
        assert!(html.contains("Latency vs offered load") && html.contains("mono p99"));
        assert!(html.contains("<details><summary>b</summary>"), "later steps are folded");
    }

    #[test]
    fn a_single_step_gets_no_load_curve() {
        let report = RunReport::new("t", &[sample_step("a", 100.0, 1_000, false)]);
        let html = html::render(&document(&report));
        assert!(!html.contains("Latency vs offered load"));
        assert!(html.contains("class=\"fail\""));
    }

    #[test]
    fn the_load_curve_has_a_pair_of_lines_per_group_and_the_slo() {
        let mut b = sample_step("b", 200.0, 1_500, true);
        b.group = "micro".into();
        let svg = latency_vs_load_chart(&[sample_step("a", 100.0, 1_000, true), b], Some(25_000)).expect("chart");
        assert_eq!(svg.matches("class=\"line\"").count(), 4);
        assert!(svg.contains("SLO p99 ≤ 25.0ms"));
    }
}
