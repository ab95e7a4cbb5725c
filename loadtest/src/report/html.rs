//! The HTML report: one self-contained page (inline CSS and SVG, no
//! JavaScript, nothing fetched) with the same tables as the Markdown and
//! the charts people would rather look at than read.
//!
//! Why it exists: a latency curve or a percentile ladder is read at a
//! glance where a table is not. A [`Page`] is a title plus sections;
//! [`standard_page`] fills it for any list of steps, and `compare` pushes
//! its own sections (e.g. CPU per order by process, from
//! [`svg::bar_chart`]) before rendering.

use std::{collections::BTreeMap, fmt::Write as _};

use super::{
    RunReport, Table, check_verdict, endpoints_table, errors_table, generator_note, markdown, steps_table,
    svg::{self, BarChart, BarSeries, LineChart, LineSeries, Scale, escape},
};
use crate::{stats::fmt_us, step::StepResult};

/// One titled part of the page; `html` is trusted markup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub heading: String,
    pub html: String,
    /// Render inside a closed `<details>` (for long per-step sections).
    pub collapsed: bool,
}

/// A page under construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub title: String,
    /// Markup right under the title (the verdict).
    pub lead: String,
    pub sections: Vec<Section>,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1000px;color:#222;padding:0 1rem}\
table{border-collapse:collapse;font-size:13px;margin:.5rem 0 1rem}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}\
td:first-child,th:first-child{text-align:left}th{background:#f4f4f4}.pass{color:#176f2c;font-weight:bold}\
.fail{color:#b00;font-weight:bold}details{margin:1rem 0}summary{font-weight:bold;cursor:pointer}svg{display:block;margin:.5rem 0}";

impl Page {
    pub fn new(title: &str) -> Self {
        Self { title: title.to_owned(), lead: String::new(), sections: Vec::new() }
    }

    /// Adds a section at the end.
    pub fn push(&mut self, heading: &str, html: String) -> &mut Self {
        self.sections.push(Section { heading: heading.to_owned(), html, collapsed: false });
        self
    }

    /// The whole document.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head><body><h1>{t}</h1>{}",
            self.lead,
            t = escape(&self.title)
        );
        for s in &self.sections {
            if s.collapsed {
                let _ = write!(out, "<details><summary>{}</summary>{}</details>", escape(&s.heading), s.html);
            } else {
                let _ = write!(out, "<h2>{}</h2>{}", escape(&s.heading), s.html);
            }
        }
        out.push_str("</body></html>\n");
        out
    }
}

/// A table as HTML.
pub fn table(t: &Table) -> String {
    let mut out = String::from("<table><tr>");
    for h in &t.headers {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>");
    for row in &t.rows {
        out.push_str("<tr>");
        for cell in row {
            let class = if cell.starts_with("FAILED") {
                " class=\"fail\""
            } else if cell == "PASSED" {
                " class=\"pass\""
            } else {
                ""
            };
            let _ = write!(out, "<td{class}>{}</td>", escape(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
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

/// The details of one step: chart, endpoints, errors, generator, check.
pub fn step_section(step: &StepResult) -> String {
    let mut out = format!(
        "<p>{} against <code>{}</code>, {} s measured after {} s warm-up, mix <code>{}</code>, seed {}.</p>",
        escape(&step.model.describe()),
        escape(&step.base_url),
        step.duration_s,
        step.warmup_s,
        step.mix,
        step.seed
    );
    out.push_str(&percentile_chart(step));
    out.push_str(&table(&endpoints_table(step)));
    let errors = errors_table(step);
    if !errors.rows.is_empty() {
        out.push_str("<h3>Errors</h3>");
        out.push_str(&table(&errors));
    }
    let _ = write!(out, "<p>{}</p>", escape(&generator_note(step)));
    let verdict = check_verdict(step);
    let class = if step.correct() { "pass" } else { "fail" };
    let _ = write!(out, "<p>Correctness check: <span class=\"{class}\">{}</span></p>", escape(&verdict));
    if let Some(c) = step.check.as_ref().filter(|c| !c.violations.is_empty()) {
        out.push_str("<ul>");
        for v in &c.violations {
            let _ = write!(out, "<li>{}</li>", escape(v));
        }
        out.push_str("</ul>");
    }
    out
}

/// The page every run gets: verdict, steps table, load charts (when there
/// are open-model steps), and a collapsible section per step.
pub fn standard_page(report: &RunReport) -> Page {
    let mut page = Page::new(&report.title);
    let verdict = markdown::verdict(report).replace("**", "");
    let class = if report.steps.iter().all(StepResult::correct) { "pass" } else { "fail" };
    page.lead = format!(
        "<p class=\"{class}\">{}</p><p>Generated {} by {} {}. Latency is measured from each request's intended \
         send time (open model) or actual send (closed model).</p>",
        escape(&verdict),
        escape(&report.generated_at),
        escape(&report.tool),
        escape(&report.version)
    );
    page.push("Steps", table(&steps_table(&report.steps)));
    if report.steps.iter().filter(|s| s.offered_rps.is_some()).count() > 1 {
        let mut charts = latency_vs_load_chart(&report.steps, None).unwrap_or_default();
        charts.push_str(&throughput_chart(&report.steps).unwrap_or_default());
        page.push("Load curves", charts);
    }
    for (i, step) in report.steps.iter().enumerate() {
        page.sections.push(Section { heading: step.label.clone(), html: step_section(step), collapsed: i > 0 });
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample_step;

    #[test]
    fn the_page_is_self_contained_and_charts_every_step() {
        let report =
            RunReport::new("t <1>", &[sample_step("a", 100.0, 1_000, true), sample_step("b", 200.0, 1_500, true)]);
        let html = standard_page(&report).render();
        assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<title>t &lt;1&gt;</title>"));
        assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="));
        // Two percentile charts, the latency curve and the throughput chart.
        assert_eq!(html.matches("<svg").count(), 4);
        assert!(html.contains("Latency vs offered load") && html.contains("mono p99"));
    }

    #[test]
    fn a_single_step_gets_no_load_curve_and_other_tools_can_add_sections() {
        let report = RunReport::new("t", &[sample_step("a", 100.0, 1_000, false)]);
        let mut page = standard_page(&report);
        page.push("CPU per order", "<svg></svg>".to_owned());
        let html = page.render();
        assert!(!html.contains("Latency vs offered load"));
        assert!(html.contains("<h2>CPU per order</h2>"));
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
