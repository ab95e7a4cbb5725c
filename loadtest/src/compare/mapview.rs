//! The trace map as a report section: per build, a chart of each stage's
//! p50 at every level, the stage table (p50 and p99 per level, waits
//! marked), how many orders were traced and whether tracing disturbed the
//! step, and each process's wait for a core.
//!
//! Why apart from [`super::render`]: the map is a report of its own inside
//! the comparison; [`super::tracemap`] computes it, this lays it out.

use std::collections::BTreeSet;

use super::{
    launch::Build,
    math::Spread,
    report::RunRecord,
    tracemap::{self, CHART_STAGES, LevelMap, TraceMap},
};
use crate::{
    report::{
        Block, Section, Table,
        svg::{self, BarChart, BarSeries, Scale},
    },
    shop::PLACE,
    stats::fmt_us,
};

/// The chart's short label of a stage.
fn short(stage: &str) -> &'static str {
    match stage {
        tracemap::EDGE => "edge and wire",
        tracemap::FIND_KEY => "key lookup",
        tracemap::CATALOG => "catalog read",
        tracemap::LOOKUP => "user lookup",
        tracemap::CREATE => "order insert",
        tracemap::CHARGE => "charge",
        tracemap::SETTLE => "settle",
        tracemap::REST => "rest of handler",
        tracemap::RELAY => "outbox relay",
        _ => "other",
    }
}

fn pct(level: f64) -> String {
    format!("{:.0} %", level * 100.0)
}

fn us_or_dash(v: f64) -> String {
    if v.is_finite() { fmt_us(v) } else { "–".to_owned() }
}

/// The median p50 and p99 of POST /v1/orders in the measured (untraced)
/// runs of `build` at `level`.
fn untraced(runs: &[RunRecord], build: Build, level: f64) -> Option<(f64, f64)> {
    let (mut p50, mut p99) = (Vec::new(), Vec::new());
    for r in runs.iter().filter(|r| r.build == build) {
        for s in &r.steps {
            if s.extra.get("level").and_then(|v| v.as_f64()).is_some_and(|l| (l - level).abs() < 1e-9)
                && let Some(e) = s.summary.endpoints.iter().find(|e| e.name == PLACE)
            {
                p50.push(e.latency.p50_us as f64);
                p99.push(e.latency.p99_us as f64);
            }
        }
    }
    Some((Spread::of(&p50)?.median, Spread::of(&p99)?.median))
}

/// The stage table of one build: a row per stage, p50 and p99 per level.
pub fn stage_table(levels: &[&LevelMap]) -> Table {
    let mut headers = vec!["stage".to_owned()];
    for l in levels {
        headers.push(format!("{} p50", pct(l.level)));
        headers.push(format!("{} p99", pct(l.level)));
    }
    let mut t = Table { headers, rows: Vec::new() };
    for (name, depth, queueing) in tracemap::STAGES {
        if !levels.iter().any(|l| l.stages.iter().any(|s| s.name == name)) {
            continue;
        }
        let indent = "· ".repeat(usize::from(depth));
        let label = if queueing { format!("{indent}wait: {name}") } else { format!("{indent}{name}") };
        let mut row = vec![label];
        for l in levels {
            let s = l.stages.iter().find(|s| s.name == name);
            row.push(s.map_or("–".to_owned(), |s| us_or_dash(s.p50_us)));
            row.push(s.map_or("–".to_owned(), |s| us_or_dash(s.p99_us)));
        }
        t.rows.push(row);
    }
    t
}

/// Traced orders per level, and the step's latency beside the measured runs'.
fn sampling_table(levels: &[&LevelMap], runs: &[RunRecord]) -> Table {
    let mut t = Table::new(&[
        "level",
        "rate (rps)",
        "traced orders",
        "with spans",
        "POST /v1/orders p50 / p99, traced step",
        "same, measured runs (median)",
    ]);
    for l in levels {
        let measured = untraced(runs, l.build, l.level)
            .map_or("–".to_owned(), |(p50, p99)| format!("{} / {}", fmt_us(p50), fmt_us(p99)));
        t.rows.push(vec![
            pct(l.level),
            format!("{:.0}", l.rate),
            format!("{} (1 in {})", l.traced, l.every),
            l.complete.to_string(),
            format!("{} / {}", us_or_dash(l.place_p50_us), us_or_dash(l.place_p99_us)),
            measured,
        ]);
    }
    t
}

/// Waiting for a core, per process and request, at each level.
fn sched_table(levels: &[&LevelMap]) -> Table {
    let mut headers = vec!["process".to_owned()];
    for l in levels {
        headers.push(format!("{} run-queue wait / request", pct(l.level)));
        headers.push(format!("{} context switches / request", pct(l.level)));
    }
    let names: BTreeSet<&String> = levels.iter().flat_map(|l| l.sched.keys()).collect();
    let mut t = Table { headers, rows: Vec::new() };
    for name in names {
        let mut row = vec![name.clone()];
        for l in levels {
            match l.sched.get(name) {
                Some(s) => {
                    row.push(fmt_us(s.run_delay_us));
                    row.push(format!("{:.1} ({:.1} preempted)", s.voluntary + s.involuntary, s.involuntary));
                }
                None => row.extend(["–".to_owned(), "–".to_owned()]),
            }
        }
        t.rows.push(row);
    }
    t
}

const METHOD: &str = "Each build ran once more, its spans exported over OTLP to a receiver in the generator. About \
a dozen placed orders a second carried a sampled W3C traceparent (the services' sampler: \
parentbased_traceidratio, ratio 0, so they recorded those requests and nothing else); the generator timed each of \
them from send to answer. A stage is read from spans: the order handler's server span, db.tx spans per unit of \
work (pool wait as their db.acquire child), calls as client spans (microservices) or the use cases' spans \
(monolith), a hop as a call's client span minus the callee's server span, the outbox relay from the settle \
transaction's end to the event's publication (or in-process delivery). Waits: pool connections and row-lock \
statements per request from spans; waiting for a core per process from the kernel's run-queue delay \
(`/proc/<pid>/task/*/schedstat`) over the step, per request of the mix. Percentiles are exact over the traced orders.";

/// The map's section, or `None` when the comparison drew none.
pub fn section(map: &TraceMap, runs: &[RunRecord]) -> Section {
    let mut s = Section::new("Where a placed order's time goes (trace map)");
    s.paragraph(METHOD);
    for build in [Build::Monolith, Build::Microservices] {
        let levels: Vec<&LevelMap> = map.levels.iter().filter(|l| l.build == build).collect();
        if levels.is_empty() {
            continue;
        }
        s.push(Block::Subheading(build.name().to_owned()));
        let title = format!("{}: p50 of each stage of a placed order, by load", build.name());
        let chart = svg::bar_chart(&BarChart {
            title: title.clone(),
            categories: CHART_STAGES.iter().map(|c| short(c).to_owned()).collect(),
            series: levels
                .iter()
                .map(|l| BarSeries {
                    name: format!("{} of peak", pct(l.level)),
                    values: CHART_STAGES
                        .iter()
                        .map(|c| l.stages.iter().find(|s| s.name == *c).map_or(f64::NAN, |s| s.p50_us))
                        .collect(),
                })
                .collect(),
            scale: Scale::Log,
            format: fmt_us,
        });
        s.chart(title, chart);
        s.table(stage_table(&levels));
        s.table(sampling_table(&levels, runs));
        s.table(sched_table(&levels));
    }
    s
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::compare::{sched::PerRequest, tracemap::Stage};

    fn level(build: Build, level: f64, stages: &[(&str, f64, f64)]) -> LevelMap {
        LevelMap {
            build,
            level,
            rate: 100.0,
            every: 4,
            traced: 40,
            complete: 39,
            place_p50_us: 3_000.0,
            place_p99_us: 9_000.0,
            stages: stages
                .iter()
                .map(|(name, p50, p99)| Stage {
                    name: (*name).to_owned(),
                    depth: 1,
                    queueing: *name == tracemap::POOL,
                    n: 39,
                    p50_us: *p50,
                    p99_us: *p99,
                    mean_us: *p50,
                })
                .collect(),
            sched: BTreeMap::from([(
                "order-service".to_owned(),
                PerRequest { run_delay_us: 120.0, voluntary: 6.0, involuntary: 1.0 },
            )]),
        }
    }

    #[test]
    fn the_section_tabulates_each_stage_per_level_and_marks_waits() {
        let map = TraceMap {
            traces_per_s: 12.0,
            levels: vec![
                level(Build::Microservices, 0.25, &[(tracemap::EDGE, 400.0, 900.0), (tracemap::POOL, 0.0, 50.0)]),
                level(Build::Microservices, 0.5, &[(tracemap::EDGE, 500.0, 2_000.0), (tracemap::POOL, 10.0, 800.0)]),
            ],
        };
        let section = section(&map, &[]);
        let tables: Vec<&Table> =
            section.blocks.iter().filter_map(|b| if let Block::Table(t) = b { Some(t) } else { None }).collect();
        let stages = tables[0];
        assert_eq!(stages.headers, ["stage", "25 % p50", "25 % p99", "50 % p50", "50 % p99"]);
        assert_eq!(stages.rows[0][0], format!("· {}", tracemap::EDGE));
        assert_eq!(stages.rows[0][4], "2.00ms");
        assert!(stages.rows[1][0].contains("wait: "), "{:?}", stages.rows[1]);
        assert_eq!(tables[1].rows[0][2], "40 (1 in 4)");
        assert!(tables[2].rows[0][2].starts_with("7.0"), "{:?}", tables[2].rows[0]);
        assert!(section.blocks.iter().any(|b| matches!(b, Block::Chart(_))), "a chart per build");
        assert!(!section.blocks.iter().any(|b| matches!(b, Block::Subheading(h) if h == "monolith")));
    }
}
