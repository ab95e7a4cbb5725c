//! Rendering a comparison: the tables, the charts, and the Markdown and
//! HTML pages, each opening with [`CompareReport::headline_text`].
//!
//! Why it exists: [`super::report`] decides what the numbers are; this
//! module only lays them out (Markdown for a README or a pull request, one
//! self-contained HTML page with inline SVG for people), so the two stay
//! small and the layout can change without touching the math.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};

use super::{
    ceiling::Ceilings,
    hops::Hops,
    launch::Build,
    math::{self, SLO_P99_US, Spread},
    plan::fmt_minutes,
    report::{CompareReport, Headline, RunRecord, kind},
};
use crate::{
    report::{
        ReportFiles, Table, fmt_rps,
        html::{self, Page, Section},
        markdown, steps_table,
        svg::{self, BarChart, BarSeries, LineChart, LineSeries, Scale, escape},
    },
    stats::fmt_us,
    step::StepResult,
};

/// The per-process CPU table: µs per placed order, per build, and the difference.
pub fn cpu_table(h: &Headline) -> Table {
    let mono = &h.cpu_by_process[Build::Monolith.name()];
    let micro = &h.cpu_by_process[Build::Microservices.name()];
    let mut t = Table {
        headers: ["process", "monolith", "microservices", "micro − mono"].map(String::from).to_vec(),
        rows: Vec::new(),
    };
    for (p, d) in &h.cpu_difference {
        let cell = |m: &BTreeMap<String, f64>| m.get(p).map_or("–".to_owned(), |v| fmt_us(*v));
        t.rows.push(vec![
            p.clone(),
            cell(mono),
            cell(micro),
            format!("{}{}", if *d >= 0.0 { "+" } else { "−" }, fmt_us(d.abs())),
        ]);
    }
    t
}

/// One row per run: SLO throughput, CPU per order, place peak, check.
pub fn runs_table(runs: &[RunRecord]) -> Table {
    let mut t = Table {
        headers: [
            "run",
            "build",
            "throughput at SLO (rps)",
            "CPU per order",
            "placed orders/s at most",
            "POST /v1/orders p50 at 50 %",
            "ready in",
            "check",
        ]
        .map(String::from)
        .to_vec(),
        rows: Vec::new(),
    };
    for r in runs {
        t.rows.push(vec![
            format!("#{}", r.round + 1),
            r.build.name().to_owned(),
            fmt_rps(r.slo_rps),
            if r.cpu_us_per_order.is_empty() { "–".to_owned() } else { fmt_us(r.system_cpu_us_per_order()) },
            fmt_rps(r.place_peak_orders_per_s),
            r.place_p50_at_half_us.map_or("–".to_owned(), fmt_us),
            r.started_in_s.map_or("–".to_owned(), |s| format!("{s:.1} s")),
            match (&r.error, r.correct) {
                (Some(e), _) => format!("FAILED (not carried out: {})", e.lines().next().unwrap_or("")),
                (None, true) => "PASSED".to_owned(),
                (None, false) => "FAILED".to_owned(),
            },
        ]);
    }
    t
}

/// Memory per process: median MiB over runs, per build.
pub fn memory_table(runs: &[RunRecord]) -> (Table, BTreeMap<String, BTreeMap<String, f64>>) {
    let mut medians = BTreeMap::new();
    for b in [Build::Monolith, Build::Microservices] {
        let maps: Vec<_> = runs.iter().filter(|r| r.build == b).map(|r| r.memory_mib.clone()).collect();
        medians.insert(b.name().to_owned(), math::median_maps(&maps));
    }
    let mut names: Vec<&String> = medians.values().flat_map(|m| m.keys()).collect();
    names.sort();
    names.dedup();
    let mut t = Table {
        headers: ["process", "monolith (MiB)", "microservices (MiB)"].map(String::from).to_vec(),
        rows: Vec::new(),
    };
    for n in &names {
        let cell = |b: Build| medians[b.name()].get(*n).map_or("–".to_owned(), |v| format!("{v:.1}"));
        t.rows.push(vec![(*n).clone(), cell(Build::Monolith), cell(Build::Microservices)]);
    }
    (t, medians)
}

/// Per build and level, the median p50 and p99 over runs: the latency curve.
pub fn latency_curve(runs: &[RunRecord]) -> Vec<LineSeries> {
    let mut out = Vec::new();
    for b in [Build::Monolith, Build::Microservices] {
        // offered rate → (p50s, p99s) over the runs.
        let mut by_rate: BTreeMap<u64, [Vec<f64>; 2]> = BTreeMap::new();
        for r in runs.iter().filter(|r| r.build == b) {
            for s in r.steps.iter().filter(|s| kind(s) == "level") {
                if let Some(rate) = s.offered_rps {
                    let e = by_rate.entry(rate as u64).or_default();
                    e[0].push(s.latency().p50_us as f64);
                    e[1].push(s.latency().p99_us as f64);
                }
            }
        }
        let line = |i: usize| -> Vec<(f64, f64)> {
            by_rate.iter().filter_map(|(rate, v)| Spread::of(&v[i]).map(|s| (*rate as f64, s.median))).collect()
        };
        out.push(LineSeries { name: format!("{} p50", b.name()), points: line(0) });
        out.push(LineSeries { name: format!("{} p99", b.name()), points: line(1) });
    }
    out
}

/// Writes `results.json`, `report.md` and `report.html` into `dir`.
pub fn write(dir: &Path, report: &CompareReport) -> Result<ReportFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let files =
        ReportFiles { json: dir.join("results.json"), markdown: dir.join("report.md"), html: dir.join("report.html") };
    let json = serde_json::to_string_pretty(report).context("encoding the results")?;
    std::fs::write(&files.json, json).with_context(|| format!("writing {}", files.json.display()))?;
    std::fs::write(&files.markdown, render_markdown(report))
        .with_context(|| format!("writing {}", files.markdown.display()))?;
    std::fs::write(&files.html, render_html(report).render())
        .with_context(|| format!("writing {}", files.html.display()))?;
    Ok(files)
}

fn all_steps(report: &CompareReport) -> Vec<StepResult> {
    report.peak.steps.iter().chain(report.runs.iter().flat_map(|r| r.steps.iter())).cloned().collect()
}

fn ceiling_table(c: &Ceilings) -> Table {
    let mut t = Table {
        headers: ["build", "ceiling (orders/s)", "transactions per order", "other load (cores)", "method"]
            .map(String::from)
            .to_vec(),
        rows: Vec::new(),
    };
    for (name, x) in [("monolith", &c.monolith), ("microservices", &c.microservices)] {
        t.rows.push(vec![
            name.to_owned(),
            format!("{:.0}{}", x.orders_per_s, if x.lower_bound { " (lower bound)" } else { "" }),
            x.transactions_per_order.to_string(),
            format!("{:.2}", x.other_cores),
            x.method.clone(),
        ]);
    }
    t
}

fn hops_table(h: &Hops) -> Table {
    let mut t = Table {
        headers: ["call", "calls", "errors", "p50", "p90", "p99", "callee", "callee CPU per call"]
            .map(String::from)
            .to_vec(),
        rows: Vec::new(),
    };
    for p in &h.probes {
        t.rows.push(vec![
            p.name.clone(),
            p.calls.to_string(),
            p.errors.to_string(),
            fmt_us(p.p50_us as f64),
            fmt_us(p.p90_us as f64),
            fmt_us(p.p99_us as f64),
            p.callee.clone(),
            fmt_us(p.callee_cpu_us),
        ]);
    }
    t
}

fn machine_text(r: &CompareReport) -> String {
    let m = &r.machine;
    format!(
        "{} cores ({}), {:.1} GiB, Linux {}, {}; generated {} in {}; command: `{}`.",
        m.cores,
        m.cpu,
        m.memory_gib,
        m.kernel,
        m.postgres,
        r.generated_at,
        fmt_minutes(r.took_s),
        r.command
    )
}

const METHOD: &str = "Method: both builds run as local processes behind the same nginx edge against the same \
Postgres, Redis (and, for the microservices, RabbitMQ), started by scripts/run-local on fresh databases and free \
ports for every run (Postgres over plain TCP on loopback, for the builds and pgbench alike); runs alternate \
monolith, microservices, ...; each run sets up its own pool of users (not measured). Mix steps are open-model (constant arrival rate, latency from the intended send time) at fixed \
fractions of the monolith's closed-model peak, the same rates for both builds. Throughput at the SLO is the highest \
offered rate whose step had p99 ≤ 25 ms, no errors and a passing correctness check. CPU is utime+stime from /proc \
over the measured window only, per process tree (reaped children included, so Postgres backends that exit still \
count), divided by the placed orders of a place-only step at a fixed rate; 'other (machine)' is busy CPU of the \
machine that no listed process took (kernel threads, other sessions' work). Memory is VmHWM of the processes a run \
started and the proportional set size (Pss) of the shared backing services.";

/// The Markdown report.
pub fn render_markdown(r: &CompareReport) -> String {
    let mut out = format!("# {}\n\n{}\n", r.title, r.headline_text());
    let _ = writeln!(out, "\nMachine: {}\n", machine_text(r));
    let _ = writeln!(out, "{METHOD}\n");
    for n in &r.notes {
        let _ = writeln!(out, "- {n}");
    }
    let _ = writeln!(out, "\n## Runs\n\n{}", markdown::table(&runs_table(&r.runs)));
    let _ = writeln!(out, "Monolith peak (closed model): {} rps.\n", fmt_rps(r.peak.rps));
    let _ =
        writeln!(out, "## CPU per placed order by process (median)\n\n{}", markdown::table(&cpu_table(&r.headline)));
    let _ = writeln!(out, "## Memory (median over runs)\n\n{}", markdown::table(&memory_table(&r.runs).0));
    if let Some(c) = &r.ceilings {
        let _ = writeln!(out, "## Database ceiling\n\n{}", markdown::table(&ceiling_table(c)));
    }
    if let Some(h) = &r.hops {
        let _ = writeln!(
            out,
            "## Hop probes ({:.0}/s, {:.0} s each)\n\n{}",
            h.rate,
            h.duration_s,
            markdown::table(&hops_table(h))
        );
    }
    let _ = writeln!(out, "## Every step\n\n{}", markdown::table(&steps_table(&all_steps(r))));
    let _ = writeln!(out, "The plan: {}", r.plan.describe().replace('\n', "  \n"));
    out
}

/// The HTML page: the headline, charts, then the tables and every step.
pub fn render_html(r: &CompareReport) -> Page {
    let mut page = Page::new(&r.title);
    let headline: String = r
        .headline_text()
        .split("\n\n")
        .map(|p| {
            // **bold** → <b>bold</b>: the odd pieces between the markers.
            let s: String = escape(p.trim())
                .split("**")
                .enumerate()
                .map(|(i, part)| if i % 2 == 1 { format!("<b>{part}</b>") } else { part.to_owned() })
                .collect();
            format!("<p>{s}</p>")
        })
        .collect();
    let class = if r.all_correct() { "pass" } else { "fail" };
    page.lead = format!(
        "<div class=\"{class}\" style=\"font-weight:normal\">{headline}</div><p>{}</p>",
        escape(&machine_text(r))
    );
    let curve = svg::line_chart(&LineChart {
        title: "Latency vs offered load (median over runs)".to_owned(),
        x_label: "offered load (requests/s, default mix)".to_owned(),
        y_label: "latency from intended send".to_owned(),
        series: latency_curve(&r.runs),
        y_scale: Scale::Log,
        x_format: |v| format!("{v:.0}"),
        y_format: fmt_us,
        threshold: Some((SLO_P99_US as f64, "SLO p99 ≤ 25 ms".to_owned())),
    });
    page.push("Latency curves", curve);
    let h = &r.headline;
    let mut procs: Vec<String> = h.cpu_difference.iter().map(|(p, _)| p.clone()).collect();
    procs.sort();
    let bars = |b: Build| BarSeries {
        name: b.name().to_owned(),
        values: procs.iter().map(|p| h.cpu_by_process[b.name()].get(p).copied().unwrap_or(f64::NAN)).collect(),
    };
    let cpu = svg::bar_chart(&BarChart {
        title: "CPU per placed order by process (µs, median)".to_owned(),
        categories: procs.clone(),
        series: vec![bars(Build::Monolith), bars(Build::Microservices)],
        scale: Scale::Linear,
        format: fmt_us,
    });
    page.push("CPU per placed order", format!("{cpu}{}", html::table(&cpu_table(h))));
    let (mem_table, mem) = memory_table(&r.runs);
    let mut names: Vec<String> = mem.values().flat_map(|m| m.keys().cloned()).collect();
    names.sort();
    names.dedup();
    let mem_chart = svg::bar_chart(&BarChart {
        title: "Memory by process (MiB, median over runs)".to_owned(),
        categories: names.clone(),
        series: [Build::Monolith, Build::Microservices]
            .map(|b| BarSeries {
                name: b.name().to_owned(),
                values: names.iter().map(|n| mem[b.name()].get(n).copied().unwrap_or(f64::NAN)).collect(),
            })
            .to_vec(),
        scale: Scale::Linear,
        format: |v| format!("{v:.1}"),
    });
    page.push("Memory", format!("{mem_chart}{}", html::table(&mem_table)));
    page.push("Runs", html::table(&runs_table(&r.runs)));
    if let Some(c) = &r.ceilings {
        page.push("Database ceiling", html::table(&ceiling_table(c)));
    }
    if let Some(hp) = &r.hops {
        page.push("Hop probes", html::table(&hops_table(hp)));
    }
    let mut method = format!("<p>{}</p><ul>", escape(METHOD));
    for n in &r.notes {
        let _ = write!(method, "<li>{}</li>", escape(n));
    }
    method.push_str("</ul>");
    let _ = write!(method, "<pre>{}</pre>", escape(&r.plan.describe()));
    page.push("Method and plan", method);
    let steps = all_steps(r);
    page.push("Every step", html::table(&steps_table(&steps)));
    for s in &steps {
        page.sections.push(Section { heading: s.label.clone(), html: html::step_section(s), collapsed: true });
    }
    page
}
