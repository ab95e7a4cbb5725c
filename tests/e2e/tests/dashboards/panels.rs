//! The dashboards test's evaluation (each panel target's instant query)
//! and its report (what every panel showed, drawn from range queries with
//! the report pipeline).

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, SystemTime},
};

use serde::Serialize;
use twinshop_e2e::{
    dashboard::{Dashboard, Panel, expand, label_values},
    prometheus::Prometheus,
};
use twinshop_launcher::{Build, plan::workspace_root};
use twinshop_loadtest::report::{
    ChartFiles, Document, Section, Table,
    svg::{LineChart, LineSeries, Scale, line_chart},
    write_files,
};

/// What one panel target returned.
#[derive(Debug, Clone, Serialize)]
pub struct Seen {
    pub panel: String,
    pub row: String,
    pub kind: String,
    pub unit: String,
    pub ref_id: String,
    /// The query sent (variables put in), or the one written when that failed.
    pub expr: String,
    pub legend: String,
    /// Series returned, and how many had a finite value.
    pub series: usize,
    pub finite: usize,
    /// Up to three finite values with their series' legend.
    pub values: Vec<(String, f64)>,
    /// Why it could not be asked, or what Prometheus answered instead.
    pub error: Option<String>,
}

impl Seen {
    /// At least one series with a finite value: the panel draws something.
    pub fn has_data(&self) -> bool {
        self.error.is_none() && self.finite > 0
    }

    /// One line for a failure message.
    pub fn describe(&self) -> String {
        let why = self.error.clone().unwrap_or_else(|| format!("{} series, {} finite", self.series, self.finite));
        format!("  {} / {} [{}]: {why}\n    {}", self.row, self.panel, self.ref_id, self.expr)
    }
}

/// Every target of `panels`, as an instant query now.
pub async fn evaluate(prometheus: &Prometheus, panels: &[Panel], values: &BTreeMap<String, String>) -> Vec<Seen> {
    let mut out = Vec::new();
    for panel in panels {
        for target in &panel.targets {
            let mut seen = Seen {
                panel: panel.title.clone(),
                row: panel.row.clone(),
                kind: panel.kind.clone(),
                unit: panel.unit.clone(),
                ref_id: target.ref_id.clone(),
                expr: target.expr.clone(),
                legend: target.legend.clone(),
                series: 0,
                finite: 0,
                values: Vec::new(),
                error: None,
            };
            match expand(&target.expr, values) {
                Err(e) => seen.error = Some(e),
                Ok(expr) => {
                    seen.expr = expr;
                    match prometheus.query(&seen.expr).await {
                        Err(e) => seen.error = Some(format!("{e:#}")),
                        Ok(samples) => {
                            seen.series = samples.len();
                            let finite: Vec<_> = samples.iter().filter(|s| s.value.is_finite()).collect();
                            seen.finite = finite.len();
                            seen.values =
                                finite.iter().take(3).map(|s| (legend(&target.legend, &s.labels), s.value)).collect();
                        }
                    }
                }
            }
            out.push(seen);
        }
    }
    out
}

/// A template variable's options, as Grafana would list them.
#[derive(Debug, Clone, Serialize)]
pub struct VariableSeen {
    pub name: String,
    pub query: String,
    pub options: Vec<String>,
    pub expected: Vec<String>,
    pub ok: bool,
}

/// The `build` variable must offer this build, the `service` variable
/// exactly its services.
pub async fn variables(
    prometheus: &Prometheus,
    d: &Dashboard,
    values: &BTreeMap<String, String>,
    build: Build,
) -> Vec<VariableSeen> {
    let mut out = Vec::new();
    for variable in d.variables.iter().filter(|v| v.kind == "query") {
        let query = variable.query.clone().unwrap_or_default();
        let options = match label_values(&query).map(|(sel, label)| (expand(sel, values), label)) {
            Some((Ok(selector), label)) => prometheus.label_values(&selector, label).await.unwrap_or_default(),
            _ => Vec::new(),
        };
        let expected: Vec<String> = match variable.name.as_str() {
            "build" => vec![build.name().to_owned()],
            "service" => build.services().iter().map(|s| s.name().to_owned()).collect(),
            _ => Vec::new(),
        };
        let ok = match variable.name.as_str() {
            "build" => options.contains(&expected[0]),
            "service" => {
                let mut sorted = options.clone();
                sorted.sort();
                let mut want = expected.clone();
                want.sort();
                sorted == want
            }
            _ => !options.is_empty(),
        };
        out.push(VariableSeen { name: variable.name.clone(), query, options, expected, ok });
    }
    out
}

/// `{{label}}` in a legend template filled from a series' labels;
/// `__auto` is the labels themselves.
fn legend(template: &str, labels: &BTreeMap<String, String>) -> String {
    if template == "__auto" || template.is_empty() {
        let shown: Vec<String> =
            labels.iter().filter(|(k, _)| *k != "__name__").map(|(k, v)| format!("{k}={v}")).collect();
        return if shown.is_empty() { "value".into() } else { shown.join(", ") };
    }
    let mut out = template.to_owned();
    for (k, v) in labels {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

/// A value in the panel's unit, for tables and axes.
fn format(unit: &str, v: f64) -> String {
    match unit {
        "s" if v < 1.0 => format!("{:.1} ms", v * 1e3),
        "s" => format!("{v:.1} s"),
        "bytes" => format!("{:.1} MiB", v / (1 << 20) as f64),
        "percentunit" => format!("{:.2} %", v * 100.0),
        "reqps" => format!("{v:.1}/s"),
        _ if v.fract() == 0.0 => format!("{v:.0}"),
        _ => format!("{v:.3}"),
    }
}

/// Everything the report's JSON keeps.
#[derive(Serialize)]
struct Results<'a> {
    build: &'a str,
    requests: u64,
    values: &'a BTreeMap<String, String>,
    targets: &'a [Seen],
    variables: &'a [VariableSeen],
}

/// At most this many lines per chart (the largest by mean), so a legend stays readable.
const MAX_LINES: usize = 8;

/// Writes `target/dashboards/<build>/`: a table of every target's verdict,
/// then a chart per time-series panel (its targets range-queried over the
/// run), grouped by the dashboard's rows. Returns the directory.
#[allow(clippy::too_many_arguments)]
pub async fn report(
    prometheus: &Prometheus,
    d: &Dashboard,
    seen: &[Seen],
    variables: &[VariableSeen],
    build: Build,
    values: &BTreeMap<String, String>,
    since: SystemTime,
    step: Duration,
    requests: u64,
) -> anyhow::Result<PathBuf> {
    let mut doc = Document::new(format!("The twinshop dashboard against the {} build", build.name()));
    let mut intro = Section::new("What this is");
    intro.paragraph(format!(
        "Not Grafana (it cannot run where this was made): every panel of deploy/grafana/dashboards/twinshop.json, \
         its PromQL sent to Debian's Prometheus scraping a {} build started by twinshop-launch, under a little \
         traffic ({requests} requests: registrations, top-ups, orders placed and cancelled, some 4xx). Charts are \
         drawn from range queries of the same PromQL by loadtest::report::svg; x is seconds since Prometheus \
         started. Variables: {}. Written by tests/e2e/tests/dashboards.rs.",
        build.name(),
        values.iter().map(|(k, v)| format!("${k} = {v}")).collect::<Vec<_>>().join(", ")
    ));
    let mut table = Table::new(&["row", "panel", "target", "series", "values", "verdict"]);
    for s in seen {
        let shown: Vec<String> = s.values.iter().map(|(l, v)| format!("{l}: {}", format(&s.unit, *v))).collect();
        table.rows.push(vec![
            s.row.clone(),
            s.panel.clone(),
            s.ref_id.clone(),
            format!("{} ({} finite)", s.series, s.finite),
            shown.join("; "),
            if s.has_data() {
                "PASSED".into()
            } else {
                format!("FAILED: {}", s.error.clone().unwrap_or("no data".into()))
            },
        ]);
    }
    intro.table(table);
    let mut vars = Table::new(&["variable", "query", "options", "verdict"]);
    for v in variables {
        let verdict = if v.ok { "PASSED".into() } else { format!("FAILED: expected {:?}", v.expected) };
        vars.rows.push(vec![v.name.clone(), v.query.clone(), v.options.join(", "), verdict]);
    }
    intro.table(vars);
    doc.push(intro);

    let start = since.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default();
    let mut section: Option<Section> = None;
    for panel in d.panels.iter().filter(|p| p.kind == "timeseries") {
        if section.as_ref().is_none_or(|s| s.heading != panel.row) {
            if let Some(done) = section.take() {
                doc.push(done);
            }
            section = Some(Section::new(panel.row.clone()));
        }
        let mut lines = Vec::new();
        for target in &panel.targets {
            let Ok(expr) = expand(&target.expr, values) else { continue };
            for range in prometheus.query_range(&expr, since, step).await? {
                let points: Vec<(f64, f64)> =
                    range.points.iter().filter(|p| p.1.is_finite()).map(|(t, v)| (t - start, *v)).collect();
                if !points.is_empty() {
                    lines.push(LineSeries { name: legend(&target.legend, &range.labels), points });
                }
            }
        }
        let total = lines.len();
        let mean = |s: &LineSeries| s.points.iter().map(|p| p.1).sum::<f64>() / s.points.len() as f64;
        lines.sort_by(|a, b| mean(b).total_cmp(&mean(a)));
        lines.truncate(MAX_LINES);
        let title = if total > MAX_LINES {
            format!("{} (top {MAX_LINES} of {total})", panel.title)
        } else {
            panel.title.clone()
        };
        let chart = LineChart {
            title: title.clone(),
            x_label: "seconds".into(),
            y_label: panel.unit.clone(),
            series: lines,
            y_scale: Scale::Linear,
            x_format: |x| format!("{x:.0} s"),
            y_format: y_format(&panel.unit),
            threshold: None,
        };
        if let Some(s) = section.as_mut() {
            s.chart(title, line_chart(&chart));
        }
    }
    if let Some(done) = section {
        doc.push(done);
    }
    let dir = workspace_root().join("target/dashboards").join(build.name());
    let results = Results { build: build.name(), requests, values, targets: seen, variables };
    write_files(&dir, &results, &doc, ChartFiles::Write)?;
    Ok(dir)
}

/// Axis labels in the panel's unit (a plain `fn`, as the chart wants).
fn y_format(unit: &str) -> fn(f64) -> String {
    match unit {
        "s" => |v| format!("{:.1} ms", v * 1e3),
        "bytes" => |v| format!("{:.0} MiB", v / (1 << 20) as f64),
        "percentunit" => |v| format!("{:.1} %", v * 100.0),
        "reqps" => |v| format!("{v:.1}/s"),
        _ => |v| format!("{v:.2}"),
    }
}
