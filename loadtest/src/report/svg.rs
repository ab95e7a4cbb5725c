//! Two chart shapes as plain SVG text: grouped horizontal bars and lines
//! over an x axis. No JavaScript, no external assets, so a report is one
//! self-contained file that opens anywhere and diffs as text.
//!
//! Why it exists: the reports need a few pictures (percentiles per
//! endpoint, latency against offered load, and for `compare` CPU per order
//! by process); a plotting dependency for that would cost more than these
//! few functions. [`bar_chart`] is the extension point: give it any
//! categories, series and value formatter.

use std::fmt::Write as _;

/// How values map onto an axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// From 0 to a "nice" maximum.
    Linear,
    /// Powers of ten around the data (for latencies spanning decades).
    Log,
}

/// One named series of a bar chart: one value per category.
#[derive(Debug, Clone, PartialEq)]
pub struct BarSeries {
    pub name: String,
    pub values: Vec<f64>,
}

/// Grouped horizontal bars: a row per category, a bar per series.
#[derive(Debug, Clone)]
pub struct BarChart {
    pub title: String,
    /// Row labels, e.g. endpoints or processes.
    pub categories: Vec<String>,
    pub series: Vec<BarSeries>,
    pub scale: Scale,
    /// Formats a value for ticks and bar labels (e.g. µs → `"1.2ms"`).
    pub format: fn(f64) -> String,
}

/// One named line: `(x, y)` points, drawn in x order.
#[derive(Debug, Clone, PartialEq)]
pub struct LineSeries {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Lines over a linear x axis.
#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<LineSeries>,
    pub y_scale: Scale,
    pub x_format: fn(f64) -> String,
    pub y_format: fn(f64) -> String,
    /// A dashed horizontal reference line (e.g. the SLO) and its label.
    pub threshold: Option<(f64, String)>,
}

const PALETTE: [&str; 10] =
    ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const WIDTH: f64 = 760.0;
/// Text attributes; the default size (11) is set once on the `<svg>` root.
const FONT: &str = r#"font-family="system-ui, sans-serif""#;

/// The colour of series `i`.
pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Escapes text for SVG/HTML content and attributes.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// About `count` evenly spaced ticks from 0 covering `max`, on a 1-2-5
/// step (`0, 20, 40, …, 100` for a maximum of 87).
pub fn nice_ticks(max: f64, count: usize) -> Vec<f64> {
    if !(max.is_finite() && max > 0.0) {
        return vec![0.0, 1.0];
    }
    let raw = max / count.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude);
    let n = (max / step).ceil() as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

/// Powers of ten from just below `min` to just above `max` (both > 0).
pub fn log_ticks(min: f64, max: f64) -> Vec<f64> {
    let lo = min.max(1e-9).log10().floor() as i32;
    let hi = (max.max(min * 10.0).log10().ceil() as i32).max(lo + 1);
    (lo..=hi).map(|e| 10f64.powi(e)).collect()
}

/// Maps values onto `[0, 1]` of an axis.
#[derive(Debug, Clone)]
pub struct Axis {
    pub scale: Scale,
    pub ticks: Vec<f64>,
}

impl Axis {
    /// An axis covering `values` (non-positive values are ignored on a log axis).
    pub fn covering(scale: Scale, values: impl IntoIterator<Item = f64>) -> Self {
        let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        let max = values.iter().copied().fold(0.0, f64::max);
        let ticks = match scale {
            Scale::Linear => nice_ticks(max, 5),
            Scale::Log => {
                let min = values.iter().copied().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
                if min.is_finite() { log_ticks(min, max) } else { vec![1.0, 10.0] }
            }
        };
        Self { scale, ticks }
    }

    /// Where `v` falls, 0 at the first tick and 1 at the last (clamped).
    pub fn fraction(&self, v: f64) -> f64 {
        let (first, last) = (self.ticks[0], self.ticks[self.ticks.len() - 1]);
        let f = match self.scale {
            Scale::Linear => (v - first) / (last - first),
            Scale::Log => (v.max(first).log10() - first.log10()) / (last.log10() - first.log10()),
        };
        if f.is_finite() { f.clamp(0.0, 1.0) } else { 0.0 }
    }
}

fn legend(out: &mut String, names: &[&str], x0: f64, y: f64) {
    let mut x = x0;
    for (i, name) in names.iter().enumerate() {
        let _ = write!(
            out,
            r#"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{:.1}" {FONT}>{}</text>"#,
            y - 9.0,
            colour(i),
            x + 14.0,
            y,
            escape(name)
        );
        x += 24.0 + 6.5 * name.chars().count() as f64;
    }
}

/// Grouped horizontal bars, one row per category.
pub fn bar_chart(chart: &BarChart) -> String {
    let (left, right, top) = (220.0, 70.0, 48.0);
    let bar_h = 11.0;
    let row_h = bar_h * chart.series.len().max(1) as f64 + 10.0;
    let plot_w = WIDTH - left - right;
    let plot_h = row_h * chart.categories.len().max(1) as f64;
    let height = top + plot_h + 36.0;
    let axis = Axis::covering(chart.scale, chart.series.iter().flat_map(|s| s.values.iter().copied()));
    let names: Vec<&str> = chart.series.iter().map(|s| s.name.as_str()).collect();
    let mut out = open_svg(height, left, &chart.title, &names);
    for tick in &axis.ticks {
        let x = left + axis.fraction(*tick) * plot_w;
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" {FONT} text-anchor="middle">{}</text>"##,
            top + plot_h,
            top + plot_h + 14.0,
            escape(&(chart.format)(*tick))
        );
    }
    for (row, category) in chart.categories.iter().enumerate() {
        let y0 = top + row as f64 * row_h + 5.0;
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" {FONT} text-anchor="end">{}</text>"#,
            left - 8.0,
            y0 + (row_h - 10.0) / 2.0 + 4.0,
            escape(category)
        );
        for (i, series) in chart.series.iter().enumerate() {
            let Some(v) = series.values.get(row).copied().filter(|v| v.is_finite()) else { continue };
            let w = axis.fraction(v) * plot_w;
            let y = y0 + i as f64 * bar_h;
            let _ = write!(
                out,
                r#"<rect class="bar" x="{left}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect><text x="{:.1}" y="{:.1}" {FONT} font-size="9">{}</text>"#,
                bar_h - 1.0,
                colour(i),
                escape(&series.name),
                escape(&(chart.format)(v)),
                left + w + 3.0,
                y + bar_h - 2.5,
                escape(&(chart.format)(v))
            );
        }
    }
    let _ = write!(out, r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="#333"/></svg>"##, top + plot_h);
    out
}

/// The start of a chart: the `<svg>` element, its title and the legend.
fn open_svg(height: f64, left: f64, title: &str, names: &[&str]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" font-size="11"><title>{t}</title><text x="{left}" y="16" {FONT} font-size="13" font-weight="bold">{t}</text>"#,
        t = escape(title)
    );
    legend(&mut out, names, left, 34.0);
    out
}

/// A shaded stretch of the x axis, e.g. when a fault was held.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub from: f64,
    pub to: f64,
    /// A short label drawn at its top, e.g. `F3`.
    pub label: String,
}

/// Lines over a linear x axis starting at 0, with an optional threshold.
pub fn line_chart(chart: &LineChart) -> String {
    line_chart_with_bands(chart, &[])
}

/// [`line_chart`] with shaded bands behind the lines (a timeline with its
/// faults marked). Lines with many points are drawn without dots.
pub fn line_chart_with_bands(chart: &LineChart, bands: &[Band]) -> String {
    let (left, right, top, bottom) = (70.0, 20.0, 48.0, 44.0);
    let height = 360.0;
    let (plot_w, plot_h) = (WIDTH - left - right, height - top - bottom);
    let xs = chart.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).chain(bands.iter().map(|b| b.to));
    let x_axis = Axis::covering(Scale::Linear, xs);
    let ys =
        chart.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).chain(chart.threshold.as_ref().map(|t| t.0));
    let y_axis = Axis::covering(chart.y_scale, ys);
    let px = |x: f64| left + x_axis.fraction(x) * plot_w;
    let py = |y: f64| top + plot_h - y_axis.fraction(y) * plot_h;
    let names: Vec<&str> = chart.series.iter().map(|s| s.name.as_str()).collect();
    let mut out = open_svg(height, left, &chart.title, &names);
    for tick in &y_axis.ticks {
        let y = py(*tick);
        let _ = write!(
            out,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" {FONT} text-anchor="end">{}</text>"##,
            left + plot_w,
            left - 6.0,
            y + 4.0,
            escape(&(chart.y_format)(*tick))
        );
    }
    for tick in &x_axis.ticks {
        let x = px(*tick);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#333"/><text x="{x:.1}" y="{:.1}" {FONT} text-anchor="middle">{}</text>"##,
            top + plot_h,
            top + plot_h + 4.0,
            top + plot_h + 16.0,
            escape(&(chart.x_format)(*tick))
        );
    }
    let _ = write!(
        out,
        r##"<text x="{:.1}" y="{:.1}" {FONT} text-anchor="middle">{}</text><text x="14" y="{:.1}" {FONT} transform="rotate(-90 14 {:.1})" text-anchor="middle">{}</text><line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/><line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="#333"/>"##,
        left + plot_w / 2.0,
        height - 8.0,
        escape(&chart.x_label),
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        escape(&chart.y_label),
        top + plot_h,
        left + plot_w,
        top + plot_h,
        top + plot_h
    );
    for (i, band) in bands.iter().enumerate() {
        let (x0, x1) = (px(band.from), px(band.to.max(band.from)));
        let label_y = top + 12.0 + 11.0 * (i % 3) as f64;
        let _ = write!(
            out,
            r##"<rect x="{x0:.1}" y="{top}" width="{:.1}" height="{plot_h:.1}" fill="#e15759" fill-opacity="0.12"/><text x="{:.1}" y="{label_y:.1}" {FONT} font-size="9" fill="#a33">{}</text>"##,
            (x1 - x0).max(1.0),
            x0 + 2.0,
            escape(&band.label)
        );
    }
    if let Some((value, label)) = &chart.threshold {
        let y = py(*value);
        let _ = write!(
            out,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#c00" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" {FONT} fill="#c00" text-anchor="end">{}</text>"##,
            left + plot_w,
            left + plot_w - 4.0,
            y - 4.0,
            escape(label)
        );
    }
    for (i, series) in chart.series.iter().enumerate() {
        let mut points = series.points.clone();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = points.iter().map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y))).collect();
        let _ = write!(
            out,
            r#"<polyline class="line" points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
            path.join(" "),
            colour(i)
        );
        for (x, y) in points.iter().filter(|_| points.len() <= 120) {
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"><title>{}: {} → {}</title></circle>"#,
                px(*x),
                py(*y),
                colour(i),
                escape(&series.name),
                escape(&(chart.x_format)(*x)),
                escape(&(chart.y_format)(*y))
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No tag repeats an attribute (XML forbids it; strict SVG renderers refuse the file).
    fn assert_well_formed_tags(svg: &str) {
        for tag in svg.split('<').skip(1) {
            let head = tag.split('>').next().unwrap_or_default();
            let mut names: Vec<&str> = head
                .split('"')
                .step_by(2)
                .filter_map(|chunk| chunk.trim_end().strip_suffix('='))
                .map(|chunk| chunk.rsplit(' ').next().unwrap_or_default())
                .collect();
            let total = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), total, "an attribute repeats in <{head}>");
        }
    }

    #[test]
    fn linear_ticks_step_by_one_two_or_five_and_cover_the_maximum() {
        assert_eq!(nice_ticks(87.0, 5), [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(nice_ticks(10.0, 5), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let small = nice_ticks(0.3, 3);
        assert_eq!(small.len(), 4);
        assert!((small[1] - 0.1).abs() < 1e-12 && small[3] >= 0.3 - 1e-12);
        assert_eq!(nice_ticks(0.0, 5), [0.0, 1.0]);
    }

    #[test]
    fn log_ticks_are_the_powers_of_ten_around_the_data() {
        assert_eq!(log_ticks(850.0, 120_000.0), [100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0]);
        assert_eq!(log_ticks(1_000.0, 1_000.0), [1_000.0, 10_000.0]);
    }

    #[test]
    fn axes_map_values_to_fractions_and_clamp() {
        let linear = Axis::covering(Scale::Linear, [0.0, 87.0]);
        assert!((linear.fraction(50.0) - 0.5).abs() < 1e-9);
        assert_eq!(linear.fraction(-5.0), 0.0);
        let log = Axis::covering(Scale::Log, [850.0, 120_000.0]);
        assert!((log.fraction(10_000.0) - 0.5).abs() < 1e-9);
        assert_eq!(log.fraction(0.0), 0.0);
    }

    #[test]
    fn a_bar_chart_draws_one_bar_per_value_and_escapes_labels() {
        let chart = BarChart {
            title: "CPU <per> order".into(),
            categories: vec!["order & co".into(), "postgres".into()],
            series: vec![
                BarSeries { name: "mono".into(), values: vec![1.0, 2.0] },
                BarSeries { name: "micro".into(), values: vec![3.0, f64::NAN] },
            ],
            scale: Scale::Linear,
            format: |v| format!("{v:.0}µs"),
        };
        let svg = bar_chart(&chart);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches(r#"class="bar""#).count(), 3);
        assert!(svg.contains("CPU &lt;per&gt; order") && svg.contains("order &amp; co"));
        assert!(!svg.contains("<script"));
        assert_well_formed_tags(&svg);
    }

    #[test]
    fn a_line_chart_draws_each_series_and_the_threshold() {
        let chart = LineChart {
            title: "p99 vs offered load".into(),
            x_label: "offered rps".into(),
            y_label: "p99".into(),
            series: vec![
                LineSeries { name: "a".into(), points: vec![(200.0, 1_000.0), (100.0, 800.0)] },
                LineSeries { name: "b".into(), points: vec![(100.0, 900.0)] },
            ],
            y_scale: Scale::Log,
            x_format: |v| format!("{v:.0}"),
            y_format: |v| format!("{v:.0}"),
            threshold: Some((25_000.0, "SLO".into())),
        };
        let svg = line_chart(&chart);
        assert_eq!(svg.matches(r#"class="line""#).count(), 2);
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("stroke-dasharray") && svg.contains(">SLO<"));
        assert_well_formed_tags(&svg);
    }
}
