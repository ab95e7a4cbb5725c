//! The comparison as a report [`Document`]: the headline first, then the
//! charts and tables, the method, and every step; written through the one
//! report pipeline ([`crate::report`]) as JSON, Markdown and HTML.
//!
//! Why it exists: [`super::report`] decides what the numbers are; this
//! module only lays them out, once, for both formats (the per-step details
//! only in the HTML: the Markdown stays short enough for a README).

use std::{collections::BTreeMap, path::Path};

use anyhow::Result;

use super::{
    ceiling::Ceilings,
    hops::{CHARGE, Hops, LOOKUP, Probe},
    launch::Build,
    math::{self, SLO_P99_US, Spread},
    plan::fmt_minutes,
    report::{CompareReport, Headline, RunRecord, kind},
};
use crate::{
    report::{
        Block, ChartFiles, Document, ReportFiles, Section, Shown, Table, Text, fmt_rps, run, steps_table,
        svg::{self, BarChart, BarSeries, LineChart, LineSeries, Scale},
        write_files,
    },
    stats::fmt_us,
    step::StepResult,
};

/// The per-process CPU table: µs per placed order, per build, and the difference.
pub fn cpu_table(h: &Headline) -> Table {
    let mono = &h.cpu_by_process[Build::Monolith.name()];
    let micro = &h.cpu_by_process[Build::Microservices.name()];
    let mut t = Table::new(&["process", "monolith", "microservices", "micro − mono"]);
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
    write_files(dir, report, &document(report), ChartFiles::Inline)
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

/// A ratio to the floor, `2.31×` (or `–`).
fn times(r: f64) -> String {
    if r.is_finite() { format!("{r:.2}×") } else { "–".to_owned() }
}

/// Each call against ours, then against its floor and the ratio, when a floor was probed.
pub fn hops_table(h: &Hops) -> Table {
    let mut t = Table::new(&["call", "answered by", "calls", "errors", "p50", "p90", "p99", "callee CPU per call"]);
    let row = |p: &Probe, who: String| {
        vec![
            p.name.clone(),
            who,
            p.calls.to_string(),
            p.errors.to_string(),
            fmt_us(p.p50_us as f64),
            fmt_us(p.p90_us as f64),
            fmt_us(p.p99_us as f64),
            fmt_us(p.callee_cpu_us),
        ]
    };
    for p in &h.probes {
        t.rows.push(row(p, p.callee.clone()));
        if let (Some(f), Some(r)) = (p.floor.as_deref(), p.floor_ratios()) {
            t.rows.push(row(f, format!("floor: {}", floor_kind(&p.name))));
            let p90 = p.p90_us as f64 / f.p90_us.max(1) as f64;
            t.rows.push(vec![
                p.name.clone(),
                "ours / floor".to_owned(),
                String::new(),
                String::new(),
                times(r.p50),
                times(p90),
                times(r.p99),
                times(r.callee_cpu),
            ]);
        }
    }
    t
}

/// What answers a call at the floor.
pub fn floor_kind(call: &str) -> &'static str {
    match call {
        LOOKUP => "bare axum + Redis GET",
        CHARGE => "bare tonic, no transaction",
        _ => "bare tonic",
    }
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
Postgres, Redis (and, for the microservices, RabbitMQ), started by the launcher (crates/launcher) on fresh databases, \
free ports and an events namespace of their own for every run (Postgres over plain TCP on loopback, for the builds \
and pgbench alike); runs alternate \
monolith, microservices, ...; each run sets up its own pool of users (not measured). Mix steps are open-model (constant arrival rate, latency from the intended send time) at fixed \
fractions of the monolith's closed-model peak, the same rates for both builds. Throughput at the SLO is the highest \
offered rate whose step had p99 ≤ 25 ms, no errors and a passing correctness check. CPU is utime+stime from /proc \
over the measured window only, of the processes the launcher reports (the edge and Postgres per process tree, reaped \
children included, so Postgres backends that exit still count), divided by the placed orders of a place-only step at a fixed rate; 'other (machine)' is busy CPU of the \
machine that no listed process took (kernel threads, other sessions' work). Memory is VmHWM of the processes a run \
started and the proportional set size (Pss) of the shared backing services.";

/// The whole report: the headline (its correctness line as the verdict)
/// and the machine, then charts and tables, the method and plan, and
/// every step (HTML only).
pub fn document(r: &CompareReport) -> Document {
    let mut doc = Document::new(&r.title);
    for paragraph in r.headline_text().split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let text = Text::markup(paragraph);
        doc.lead.push(if paragraph.starts_with("**Correctness**") {
            Block::Verdict { passed: r.all_correct(), text }
        } else {
            Block::Paragraph(text)
        });
    }
    doc.lead.push(Block::Paragraph(Text::markup(&format!("Machine: {}", machine_text(r)))));

    let mut curves = Section::new("Latency curves");
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
    curves.chart("Latency vs offered load (median over runs)", curve);
    doc.push(curves);

    let mut runs = Section::new("Runs");
    runs.table(runs_table(&r.runs)).paragraph(format!("Monolith peak (closed model): {} rps.", fmt_rps(r.peak.rps)));
    doc.push(runs);

    let h = &r.headline;
    let mut procs: Vec<String> = h.cpu_difference.iter().map(|(p, _)| p.clone()).collect();
    procs.sort();
    let bars = |b: Build| BarSeries {
        name: b.name().to_owned(),
        values: procs.iter().map(|p| h.cpu_by_process[b.name()].get(p).copied().unwrap_or(f64::NAN)).collect(),
    };
    let title = "CPU per placed order by process (µs, median)";
    let cpu_chart = svg::bar_chart(&BarChart {
        title: title.to_owned(),
        categories: procs.clone(),
        series: vec![bars(Build::Monolith), bars(Build::Microservices)],
        scale: Scale::Linear,
        format: fmt_us,
    });
    let mut cpu = Section::new("CPU per placed order by process (median)");
    cpu.chart(title, cpu_chart).table(cpu_table(h));
    doc.push(cpu);

    let (mem_table, mem) = memory_table(&r.runs);
    let mut names: Vec<String> = mem.values().flat_map(|m| m.keys().cloned()).collect();
    names.sort();
    names.dedup();
    let title = "Memory by process (MiB, median over runs)";
    let mem_chart = svg::bar_chart(&BarChart {
        title: title.to_owned(),
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
    let mut memory = Section::new("Memory (median over runs)");
    memory.chart(title, mem_chart).table(mem_table);
    doc.push(memory);

    if let Some(c) = &r.ceilings {
        let mut ceiling = Section::new("Database ceiling");
        ceiling.table(ceiling_table(c));
        doc.push(ceiling);
    }
    if let Some(map) = &r.trace_map {
        doc.push(super::mapview::section(map, &r.runs));
    }
    if let Some(hp) = &r.hops {
        let mut hops = Section::new(format!("Hop probes ({:.0}/s, {:.0} s each)", hp.rate, hp.duration_s));
        hops.table(hops_table(hp));
        if hp.probes.iter().any(|p| p.floor.is_some()) {
            hops.paragraph(format!(
                "The floor is a process of its own (`loadtest-floor`): a bare tonic server (tonic-health and the \
                 generated Payments server answering without a transaction) and a bare axum server (one Redis GET \
                 per lookup), with the services' runtime (as many worker threads as the user service was given) \
                 and none of their layers. Ours and the floor \
                 were probed interleaved, in {} round(s) of {:.1} s each. Charge's ratio is what its transaction \
                 adds, not overhead.",
                hp.rounds,
                hp.duration_s / hp.rounds.max(1) as f64
            ));
        }
        doc.push(hops);
    }
    let mut method = Section::new("Method and plan");
    method.push(Block::Paragraph(Text::plain(METHOD)));
    if !r.notes.is_empty() {
        method.push(Block::List(r.notes.iter().map(Text::plain).collect()));
    }
    method.push(Block::Preformatted(r.plan.describe()));
    doc.push(method);

    let steps = all_steps(r);
    let mut every = Section::new("Every step");
    every.table(steps_table(&steps));
    doc.push(every);
    for s in &steps {
        doc.push(Section { heading: s.label.clone(), blocks: run::step_blocks(s), shown: Shown::HtmlOnly });
    }
    doc
}
