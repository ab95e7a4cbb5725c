//! The scaling lab's checks and report: throughput at the SLO against the
//! cores given, memory and CPU per unit of work, for each build and axis;
//! and the self-test that shows the checks fail on results that do not
//! scale.

use std::collections::BTreeMap;

use twinshop_loadtest::{
    CheckReport,
    report::{
        doc::{Block, Document, Section, Shown, Table, Text},
        svg::{BarChart, BarSeries, LineChart, LineSeries, Scale, bar_chart, line_chart},
    },
};

use super::{
    BuildRun, MAX_REPLICAS, Results, SHARE, Shape, Timing,
    point::{DbFootprint, Point, StepLine},
    rounds::{self, Round, ratio},
};
use crate::common::{Checks, LabArgs, LabOutcome, provenance, say, verdict};

/// Going from 1 to 2 capped replicas must give at least this many times
/// the throughput at the SLO (ideal: 2).
pub const OUT_1_TO_2: f64 = 1.6;

/// Going from 1 to 3 capped replicas of the order service must give at
/// least this many times (ideal: 3; on 2 cores the rest of the shop, the
/// database and the generator compete for what is left).
pub const OUT_1_TO_3: f64 = 2.1;

/// Going from a quarter to half a core must give at least this many times.
pub const UP_TO_HALF: f64 = 1.6;

/// At full load (the closed-model step) the capped replicas must use at
/// least this share of their quota: they were the bottleneck.
pub const SATURATED: f64 = 0.8;

fn find(run: &BuildRun, replicas: u16, cores_each: f64) -> Option<&Point> {
    run.points.iter().find(|p| p.shape.replicas == replicas && p.shape.cores_each == cores_each)
}

/// The mean of `value` over the points measured in `shape` (the quick
/// variant measures one and two replicas twice a round, in rounds of 1, 2,
/// 2, 1), if any was.
fn mean_of(run: &BuildRun, shape: Shape, value: impl Fn(&Point) -> Option<f64>) -> Option<f64> {
    let values: Vec<f64> = run.points.iter().filter(|p| p.shape == shape).filter_map(value).collect();
    rounds::mean(&values)
}

/// The throughput at the SLO of `shape`: the mean of its points.
fn slo_of(run: &BuildRun, shape: Shape) -> Option<f64> {
    mean_of(run, shape, |p| Some(p.slo_rps))
}

fn fmt_opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_owned(), f)
}

fn scaling_check(c: &mut Checks, run: &BuildRun, to: Shape, from: Shape, at_least: f64, what: &str) {
    let (Some(a), Some(b)) = (slo_of(run, to), slo_of(run, from)) else { return };
    let r = ratio(Some(a), Some(b));
    c.check(
        format!(
            "{}: {what} ({} → {}) gives at least {at_least}× the throughput at the SLO",
            run.scaled,
            from.describe(),
            to.describe()
        ),
        r.is_some_and(|r| r >= at_least),
        format!("{} → {} rps: {}", measured(run, from), measured(run, to), fmt_opt(r, |r| format!("{r:.2}×"))),
    );
}

/// `62` for a shape measured once; `60 and 64 (mean 62)` for one measured
/// twice; `60, 58, 61 and 64 (mean 61)` for more.
fn measured(run: &BuildRun, shape: Shape) -> String {
    let values: Vec<String> = run.points.iter().filter(|p| p.shape == shape).map(|p| rps(p.slo_rps)).collect();
    match (values.as_slice(), slo_of(run, shape)) {
        ([one], _) => one.clone(),
        ([init @ .., last], Some(mean)) => format!("{} and {last} (mean {})", init.join(", "), rps(mean)),
        _ => "-".to_owned(),
    }
}

/// One line for a round of the quick variant.
pub fn describe_round(r: &Round) -> String {
    let (Some(ratio), Some(low), Some(high)) = (r.ratio, r.low, r.high) else {
        let which = if r.ratio.is_none() { "one replica" } else { "two replicas" };
        return format!("round {}: {which} met the SLO at no rate: decided", r.round);
    };
    let verdict = if low >= r.bound {
        format!("wholly over {}×: decided", r.bound)
    } else if high < r.bound {
        format!("wholly under {}×: decided", r.bound)
    } else if r.round < rounds::MAX_ROUNDS {
        format!("{}× inside it: another round", r.bound)
    } else {
        format!("{}× inside it after the last round: the ratio itself is judged", r.bound)
    };
    format!(
        "round {}: 1 → 2 replicas {ratio:.2}× over {} and {} searches (interval {low:.2}–{high:.2}×): {verdict}",
        r.round,
        r.one.len(),
        r.two.len()
    )
}

/// The quick variant's rounds, for the report.
fn rounds_section(results: &Results) -> Option<Section> {
    if results.runs.iter().all(|r| r.rounds.is_empty()) {
        return None;
    }
    let mut s = Section::new("How many rounds the quick run measured");
    s.paragraph(Text::plain(format!(
        "A quick run measures one and two replicas in rounds (1, 2, 2, 1 replicas). After each round the ratio of the means of every search so far gets an interval of ±{z} standard errors, from the spread of one search (the standard deviation of its logarithm: about 0.10 measured, {sd} taken); if the interval lies wholly over or under the {bound}× bound the verdict is known and the run stops, otherwise it measures another round, {max} at most. The check is the same either way: the ratio of the means of every search must reach {bound}×.",
        z = rounds::Z,
        sd = rounds::SEARCH_SD,
        bound = OUT_1_TO_2,
        max = rounds::MAX_ROUNDS
    )));
    for run in results.runs.iter().filter(|r| !r.rounds.is_empty()) {
        for r in &run.rounds {
            s.paragraph(Text::plain(format!("{}: {}.", run.scaled, describe_round(r))));
        }
    }
    Some(s)
}

/// The lab's assertions.
pub fn checks(results: &Results) -> Checks {
    let mut c = Checks::default();
    let base = Shape { replicas: 1, cores_each: SHARE };
    for run in &results.runs {
        for p in run.points.iter().filter(|p| p.shape.is_horizontal()) {
            let sat = p.peak_saturation().unwrap_or(0.0);
            let quotas_held = p.quota_in_force.iter().all(|q| (q - p.shape.cores_each).abs() < 1e-3);
            c.check(
                format!(
                    "{}, {}: the kernel held each replica to its quota, and at full load the replicas used at least {:.0} % of it (they are the bottleneck)",
                    run.scaled,
                    p.shape.describe(),
                    SATURATED * 100.0
                ),
                quotas_held && (SATURATED..=1.05).contains(&sat),
                format!(
                    "quota in force {:?} core; used {:.2} of {:.2} cores ({:.0} %) in the closed-model step",
                    p.quota_in_force,
                    sat * p.shape.total_cores(),
                    p.shape.total_cores(),
                    sat * 100.0
                ),
            );
        }
        let out2 = Shape { replicas: 2, cores_each: SHARE };
        scaling_check(&mut c, run, out2, base, OUT_1_TO_2, "scaling out");
        if run.build == "microservices" {
            scaling_check(&mut c, run, Shape { replicas: 3, cores_each: SHARE }, base, OUT_1_TO_3, "scaling out");
        }
        scaling_check(&mut c, run, Shape { replicas: 1, cores_each: 0.5 }, base, UP_TO_HALF, "scaling up");
        if let Some(check) = &run.check {
            c.check(
                format!(
                    "{}: nothing lived in a replica: after replicas came and went, every wallet and order adds up",
                    run.build
                ),
                check.passed,
                check_evidence(check),
            );
        }
    }
    if let (Some(micro), Some(mono)) = (results.run("microservices"), results.run("monolith")) {
        for n in 2..=MAX_REPLICAS {
            let (Some(o), Some(m)) = (find(micro, n, SHARE), find(mono, n, SHARE)) else { continue };
            let (of, mf) = (o.footprint_per_100_rps(), m.footprint_per_100_rps());
            c.check(
                format!(
                    "scaled out to {n} replicas, the monolith holds more memory per unit of throughput than the order service (its own pages and its database connections' server processes)"
                ),
                of.zip(mf).is_some_and(|(o, m)| m > o),
                format!(
                    "MiB per 100 rps at the SLO: monolith {} ({}), order service {} ({}); resident memory of the processes alone: monolith {}, order service {} MiB per 100 rps",
                    fmt_opt(mf, |v| format!("{v:.1}")),
                    footprint_evidence(m),
                    fmt_opt(of, |v| format!("{v:.1}")),
                    footprint_evidence(o),
                    fmt_opt(m.mib_per_100_rps(), |v| format!("{v:.1}")),
                    fmt_opt(o.mib_per_100_rps(), |v| format!("{v:.1}")),
                ),
            );
        }
    }
    c
}

fn footprint_evidence(p: &Point) -> String {
    let own: f64 = p.anon_mib.iter().sum();
    match p.db {
        Some(db) => format!(
            "{own:.0} MiB own + {:.0} MiB in {} connections' server processes, at {:.0} rps",
            db.backend_anon_mib, db.connections, p.slo_rps
        ),
        None => format!("{own:.0} MiB own, connections not read, at {:.0} rps", p.slo_rps),
    }
}

fn check_evidence(check: &CheckReport) -> String {
    if check.passed {
        format!("{} users and {} orders checked: every invariant held", check.users_checked, check.orders_checked)
    } else {
        format!("{} violations, first: {}", check.violation_count, check.violations.join("; "))
    }
}

fn rps(v: f64) -> String {
    format!("{v:.0}")
}
fn cores(v: f64) -> String {
    format!("{v:.2}")
}
fn mib(v: f64) -> String {
    format!("{v:.1}")
}
fn micros(v: f64) -> String {
    if v >= 1000.0 { format!("{:.1} ms", v / 1e3) } else { format!("{v:.0} µs") }
}
fn ms(v: f64) -> String {
    format!("{v:.0} ms")
}

/// The headline table: one row per build and point.
fn table(results: &Results) -> Table {
    let mut t = Table::new(&[
        "scaled",
        "shape",
        "cores",
        "throughput at the SLO (rps)",
        "× the base",
        "p99 there",
        "CPU per order (scaled)",
        "CPU per order (all services)",
        "resident MiB (scaled)",
        "MiB per 100 rps (scaled)",
        "MiB per 100 rps (all services)",
    ]);
    for run in &results.runs {
        let base = slo_of(run, Shape { replicas: 1, cores_each: SHARE });
        for p in &run.points {
            let (scaled, all) = p.cpu_per_order();
            t.rows.push(vec![
                run.scaled.clone(),
                p.shape.describe(),
                cores(p.shape.total_cores()),
                rps(p.slo_rps),
                fmt_opt(ratio(Some(p.slo_rps), base), |r| format!("{r:.2}×")),
                fmt_opt(p.slo_p99_ms, ms),
                fmt_opt(scaled, micros),
                fmt_opt(all, micros),
                format!("{:.0}", p.scaled_rss_mib()),
                fmt_opt(p.mib_per_100_rps(), mib),
                fmt_opt(p.build_mib_per_100_rps(), mib),
            ]);
        }
    }
    t
}

fn throughput_chart(results: &Results) -> String {
    let mut series = Vec::new();
    for run in &results.runs {
        for (axis, pick) in [("out", Shape::is_horizontal as fn(&Shape) -> bool), ("up", Shape::is_vertical)] {
            let points: Vec<(f64, f64)> = shapes_of(results)
                .into_iter()
                .filter(pick)
                .filter_map(|s| slo_of(run, s).map(|v| (s.total_cores(), v)))
                .collect();
            if points.len() > 1 {
                let how = if axis == "out" { format!("replicas × {SHARE}") } else { "1 replica".to_owned() };
                series.push(LineSeries { name: format!("{}, scaled {axis} ({how})", run.scaled), points });
            }
        }
        if let Some(base) = slo_of(run, Shape { replicas: 1, cores_each: SHARE }) {
            let max = run.points.iter().map(|p| p.shape.total_cores()).fold(SHARE, f64::max);
            series.push(LineSeries {
                name: format!("{}: linear from its base", run.scaled),
                points: vec![(SHARE, base), (max, base * max / SHARE)],
            });
        }
    }
    line_chart(&LineChart {
        title: "Throughput at the SLO against the cores given to the scaled service".into(),
        x_label: "cores (replicas × quota)".into(),
        y_label: "requests/s at the SLO".into(),
        series,
        y_scale: Scale::Linear,
        x_format: cores,
        y_format: rps,
        threshold: None,
    })
}

fn shapes_of(results: &Results) -> Vec<Shape> {
    let mut shapes: Vec<Shape> = Vec::new();
    for p in results.runs.iter().flat_map(|r| &r.points) {
        if !shapes.contains(&p.shape) {
            shapes.push(p.shape);
        }
    }
    shapes
}

fn per_shape_chart(
    results: &Results,
    title: &str,
    value: impl Fn(&Point) -> Option<f64>,
    format: fn(f64) -> String,
) -> String {
    let shapes = shapes_of(results);
    let series = results
        .runs
        .iter()
        .map(|run| BarSeries {
            name: run.scaled.clone(),
            values: shapes.iter().map(|s| mean_of(run, *s, &value).unwrap_or(0.0)).collect(),
        })
        .collect();
    bar_chart(&BarChart {
        title: title.to_owned(),
        categories: shapes.iter().map(Shape::describe).collect(),
        series,
        scale: Scale::Linear,
        format,
    })
}

fn latency_chart(run: &BuildRun, slo_ms: f64) -> String {
    let series = run
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut points: Vec<(f64, f64)> =
                p.steps.iter().filter_map(|s| s.offered_rps.map(|r| (r, s.p99_ms.max(0.1)))).collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let again = run.points[..i].iter().any(|q| q.shape == p.shape);
            let name = if again { format!("{} (again)", p.shape.describe()) } else { p.shape.describe() };
            LineSeries { name, points }
        })
        .collect();
    line_chart(&LineChart {
        title: format!("{}: p99 against offered load, per shape", run.scaled),
        x_label: "offered requests/s".into(),
        y_label: "p99".into(),
        series,
        y_scale: Scale::Log,
        x_format: rps,
        y_format: ms,
        threshold: Some((slo_ms, format!("SLO {slo_ms:.0} ms"))),
    })
}

/// The lowest and the highest mean CPU time of the speed probe's unit of
/// work in any step.
fn unit_range(results: &Results) -> Option<(f64, f64)> {
    let means = results.runs.iter().flat_map(|r| &r.points).flat_map(|p| &p.steps).filter_map(|s| s.unit_us);
    means.fold(None, |range, us| match range {
        None => Some((us, us)),
        Some((lo, hi)) => Some((f64::min(lo, us), f64::max(hi, us))),
    })
}

/// `1.23×`: how much longer the probe's unit of work took in the step than
/// in the run's fastest step.
fn slowness(step: &StepLine, fastest: Option<f64>) -> String {
    step.unit_us.zip(fastest).map_or("-".into(), |(us, f)| format!("{:.2}×", us / f))
}

fn steps_table(p: &Point, fastest: Option<f64>) -> Table {
    let mut t = Table::new(&[
        "step",
        "achieved rps",
        "p99",
        "errors",
        "SLO",
        "scaled cores used",
        "all services' cores",
        "machine's slowness",
    ]);
    for s in &p.steps {
        let all: f64 = p.services.iter().map(|n| s.cores(n)).sum();
        t.rows.push(vec![
            s.model.clone(),
            rps(s.achieved_rps),
            ms(s.p99_ms),
            s.errors.to_string(),
            if s.offered_rps.is_none() {
                "(peak)".into()
            } else if s.meets_slo {
                "met".into()
            } else {
                "missed".into()
            },
            cores(s.cores(&p.scaled)),
            cores(all),
            slowness(s, fastest),
        ]);
    }
    t
}

/// What each replica brings with it, whatever it is scaled for.
fn footprint(results: &Results) -> Section {
    let mut s = Section::new("What a replica brings with it");
    s.paragraph(Text::markup(
        "A replica is a whole process: its own memory, and its own pools to the databases. Resident memory splits into the process's own pages (heap, stacks, buffers: `RssAnon`) and pages mapped from its binary (`RssFile`), which replicas of one binary on one machine share through the page cache and which a replica on another node pays again. Each database connection is a PostgreSQL server process with private memory of its own, and counts against the server's `max_connections`. Read at the end of each point, after its full-load step.",
    ));
    let mut t = Table::new(&[
        "scaled",
        "shape",
        "resident MiB",
        "of it, own",
        "of it, mapped files",
        "database connections",
        "their server processes' own MiB",
        "per replica: own + server processes, MiB",
    ]);
    for run in &results.runs {
        for p in run.points.iter().filter(|p| p.shape.is_horizontal()) {
            let own: f64 = p.anon_mib.iter().sum();
            t.rows.push(vec![
                run.scaled.clone(),
                p.shape.describe(),
                mib(p.scaled_rss_mib()),
                mib(own),
                mib(p.scaled_rss_mib() - own),
                p.db.map_or("-".into(), |d| d.connections.to_string()),
                p.db.map_or("-".into(), |d| mib(d.backend_anon_mib)),
                fmt_opt(p.footprint_per_replica_mib(), mib),
            ]);
        }
    }
    s.table(t);
    s
}

/// Cores the whole machine was busy at a step (every name, the rest of the machine included).
fn machine_cores(s: &StepLine) -> f64 {
    s.cpu_ms.values().sum::<f64>() / 1e3 / s.window_s.max(1e-3)
}

fn two_cores(results: &Results) -> Section {
    let mut s = Section::new("What two cores can and cannot show");
    s.paragraph(Text::markup(&format!(
        "Every process here shares one machine with **2 cores**: the scaled replicas, the rest of the shop, PostgreSQL, Redis, RabbitMQ, the edge and the load generator (and, on this shared machine, other engineers' builds). Capping each replica at **{SHARE} core** makes it the bottleneck, so adding a replica adds a known slice of CPU; it does not add a machine. What the cap cannot remove is everything else growing with the load: at the highest throughput the machine was this busy:"
    )));
    let mut t = Table::new(&[
        "scaled",
        "shape",
        "scaled cores",
        "all services",
        "postgres",
        "edge",
        "generator",
        "rest of the machine",
        "machine total",
        "machine's slowness",
    ]);
    let range = unit_range(results);
    let fastest = range.map(|(f, _)| f);
    for run in &results.runs {
        for p in &run.points {
            let Some(step) = p.slo_step() else { continue };
            let all: f64 = p.services.iter().map(|n| step.cores(n)).sum();
            t.rows.push(vec![
                run.scaled.clone(),
                p.shape.describe(),
                cores(step.cores(&p.scaled)),
                cores(all),
                cores(step.cores("postgres")),
                cores(step.cores("edge (nginx)")),
                cores(step.cores(twinshop_loadtest::compare::GENERATOR)),
                cores(step.cores(twinshop_loadtest::compare::procs::OTHER)),
                cores(machine_cores(step)),
                slowness(step, fastest),
            ]);
        }
    }
    s.table(t);
    if let Some((fastest, slowest)) = range {
        s.paragraph(Text::markup(&format!(
            "A quota is a budget of *time*, and what a replica gets done in it depends on the machine's speed at that moment. On a virtual machine that speed is not fixed: when other guests share the host's cores, caches or power budget, the same instructions take longer, and the guest counts the time as its own CPU time. The lab watches it: a thread of its own times a fixed piece of arithmetic (no data beyond its stack) about every 50 ms, on the same cores as the load, so it sees the lab's own load as well as the host's. Its mean per step window ranged from **{fastest:.0} to {slowest:.0} µs** of CPU in this run (**{:.2}×**); *machine's slowness* above is the step's mean against the fastest. A capped replica serves less at the same quota when the machine is slow, so figures measured minutes apart differ for nothing in the code.",
            slowest / fastest
        )));
    }
    s.paragraph(Text::markup(
        "So scaling out the capped service is linear only while the machine has idle CPU for the work that grows with it; the points near the machine's 2 cores show the *hardware ceiling* of the seed's scaling up, and no point here can show what a second machine adds. On a cluster each replica is a pod with its own `resources.limits.cpu`, and nodes add real cores: `docs/concepts/scaling.md` has the kind recipe (`kubectl scale`, the HPA in `k8s/`).",
    ));
    s
}

/// The whole report.
pub fn document(results: &Results, checks: &Checks, args: &LabArgs, started: &str, took_s: f64) -> Document {
    let mut doc = Document::new("Scaling up and out: a capped order service and a capped monolith");
    let passed = checks.all_passed();
    doc.lead.push(verdict(passed, if passed {
        "Capped replicas of the stateless order service scale out: each added quarter core adds throughput at the SLO. The monolith scales out too, but only whole: every replica carries all three areas and opens a pool to each area's database, so it holds more memory per unit of throughput, counting the database server processes its connections keep."
    } else {
        "At least one check failed: see below."
    }));
    doc.lead.push(Block::Table(table(results)));
    doc.lead.push(Block::Paragraph(Text::markup(&format!(
        "Throughput at the SLO: the highest offered rate (open model, the loadtest's default mix) whose p99 stayed at most **{:.0} ms** with no error, found by the loadtest's search (a closed-model peak, a ladder of fractions of it, then bisection). CPU per order: CPU time of the scaled processes (and of every service process of the build) in that step's window per order placed. Memory: resident set (RSS) of the processes at the end of the point; what a replica holds in all is in the section after the charts.",
        results.slo_p99_ms
    ))));
    let mut charts = Section::new("Throughput, memory and CPU by shape");
    charts.chart("Throughput at the SLO against cores", throughput_chart(results));
    charts.chart(
        "Memory the scaled replicas hold per 100 rps at the SLO",
        per_shape_chart(
            results,
            "MiB the scaled replicas hold (own pages + their connections' server processes) per 100 rps at the SLO",
            Point::footprint_per_100_rps,
            mib,
        ),
    );
    charts.chart(
        "Resident memory of the scaled processes per 100 rps at the SLO",
        per_shape_chart(
            results,
            "Resident MiB of the scaled processes alone per 100 rps at the SLO",
            Point::mib_per_100_rps,
            mib,
        ),
    );
    charts.chart(
        "CPU per order, all service processes",
        per_shape_chart(
            results,
            "CPU per placed order, all service processes of the build",
            |p| p.cpu_per_order().1,
            micros,
        ),
    );
    doc.push(charts);
    if let Some(section) = rounds_section(results) {
        doc.push(section);
    }
    doc.push(footprint(results));
    doc.push(two_cores(results));
    let fastest = unit_range(results).map(|(f, _)| f);
    for run in &results.runs {
        let mut s = Section::new(format!("{}: every step", run.scaled)).shown(Shown::Folded);
        s.chart(format!("{}: p99 against offered load", run.scaled), latency_chart(run, results.slo_p99_ms));
        for p in &run.points {
            s.push(Block::Subheading(format!(
                "{} {} (quota in force {:?}, resident {:?} MiB)",
                run.scaled,
                p.shape.describe(),
                p.quota_in_force,
                p.rss_mib.iter().map(|m| m.round()).collect::<Vec<_>>()
            )));
            s.table(steps_table(p, fastest));
        }
        doc.push(s);
    }
    let mut all = Section::new("Every check");
    all.table(checks.table());
    all.paragraph(Text::plain(format!("Load average when the lab started: {}.", results.load_before)));
    doc.push(all);
    doc.push(provenance(args, started, took_s));
    doc
}

/// Made-up results for the self-test: `scales` says whether they show the
/// concept (replicas add throughput, the monolith is the heavier unit).
pub fn synthetic(scales: bool) -> Results {
    let step = |offered: Option<f64>, achieved: f64, scaled: &str, cores_used: f64, meets: bool| StepLine {
        model: offered.map_or("closed 32 users".into(), |r| format!("open {r} rps")),
        offered_rps: offered,
        achieved_rps: achieved,
        p99_ms: if meets { 40.0 } else { 900.0 },
        errors: 0,
        meets_slo: meets,
        placed: (achieved * 4.0) as u64,
        window_s: 10.0,
        cpu_ms: BTreeMap::from([(scaled.to_owned(), cores_used * 1e4)]),
        unit_us: Some(1000.0),
    };
    let point = |scaled: &str, replicas: u16, cores_each: f64, rate: f64, rss_each: f64| {
        let total = f64::from(replicas) * cores_each;
        let used = if scales { total * 0.95 } else { total * 0.5 };
        Point {
            shape: Shape { replicas, cores_each },
            quota_in_force: vec![cores_each; usize::from(replicas)],
            peak_rps: rate * 1.1,
            slo_rps: rate,
            slo_p99_ms: Some(40.0),
            cpu_us_per_order: BTreeMap::from([(scaled.to_owned(), 2000.0)]),
            rss_mib: vec![rss_each; usize::from(replicas)],
            anon_mib: vec![rss_each / 2.0; usize::from(replicas)],
            db: Some(DbFootprint {
                connections: u64::from(replicas) * (rss_each / 5.0) as u64,
                backend_anon_mib: f64::from(replicas) * rss_each / 10.0,
            }),
            build_rss_mib: rss_each * f64::from(replicas) + 40.0,
            services: vec![scaled.to_owned()],
            scaled: scaled.to_owned(),
            steps: vec![
                step(None, rate * 1.1, scaled, used, false),
                step(Some(rate), rate, scaled, used * 0.9, true),
                step(Some(rate * 1.2), rate * 1.1, scaled, used, false),
            ],
            prioritised: true,
        }
    };
    let grow = |n: u16| if scales { f64::from(n) * 0.95 } else { 1.0 + 0.05 * f64::from(n - 1) };
    let (order_rss, mono_rss) = if scales { (20.0, 45.0) } else { (45.0, 20.0) };
    let runs = [("microservices", "order-service", 100.0, order_rss), ("monolith", "monolith", 80.0, mono_rss)]
        .into_iter()
        .map(|(build, scaled, base, rss)| BuildRun {
            build: build.into(),
            scaled: scaled.into(),
            points: vec![
                point(scaled, 1, SHARE, base, rss),
                point(scaled, 2, SHARE, base * grow(2), rss),
                point(scaled, 3, SHARE, base * grow(3), rss),
                point(scaled, 1, 0.5, base * grow(2), rss),
                point(scaled, 1, 1.0, base * grow(3), rss),
            ],
            check: None,
            priority: true,
            rounds: Vec::new(),
        })
        .collect();
    Results { slo_p99_ms: 100.0, share: SHARE, timing: Timing::new(true), runs, load_before: "synthetic".into() }
}

/// `lab run scaling --self-test`: the checks pass on results that scale,
/// and every one of them fails on results that do not.
pub fn self_test(args: &LabArgs) -> anyhow::Result<LabOutcome> {
    let good = checks(&synthetic(true));
    let bad = checks(&synthetic(false));
    good.print("scaling self-test, results that scale (every check must pass):");
    bad.print("scaling self-test, results that do not scale (every check must fail):");
    let caught = bad.0.iter().all(|c| !c.passed);
    let passed = good.all_passed() && caught && !bad.0.is_empty();
    say(&format!(
        "scaling self-test: {} checks pass on scaling results; {} of {} fail on flat ones",
        good.0.len(),
        bad.0.iter().filter(|c| !c.passed).count(),
        bad.0.len()
    ));
    let _ = args;
    Ok(LabOutcome { passed, files: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_args() -> LabArgs {
        LabArgs {
            builds: crate::common::Builds::Both,
            quick: true,
            self_test: true,
            out: std::env::temp_dir(),
            bin_dir: "target/debug".into(),
            seed: 7,
            command: "lab run scaling".into(),
        }
    }

    #[test]
    fn results_that_scale_pass_every_check() {
        let c = checks(&synthetic(true));
        assert!(c.all_passed(), "{:#?}", c.0.iter().filter(|c| !c.passed).collect::<Vec<_>>());
        assert!(c.0.len() >= 10, "{} checks", c.0.len());
    }

    #[test]
    fn results_that_do_not_scale_fail_every_check() {
        let c = checks(&synthetic(false));
        let held: Vec<_> = c.0.iter().filter(|c| c.passed).map(|c| &c.name).collect();
        assert!(held.is_empty(), "these held on flat results: {held:#?}");
    }

    #[test]
    fn a_shape_measured_twice_counts_with_the_mean_of_its_two_figures() {
        let mut r = synthetic(true);
        for run in &mut r.runs {
            // The quick variant's order: 1, 2, 2, 1 replicas.
            let (one, two) = (run.points[0].clone(), run.points[1].clone());
            run.points = vec![one.clone(), two.clone(), two, one];
        }
        let micro = &mut r.runs[0].points;
        // Two replicas measured at 190 and 130 rps (mean 160); one at 100 and 80 (mean 90).
        micro[1].slo_rps = 190.0;
        micro[2].slo_rps = 130.0;
        micro[3].slo_rps = 80.0;
        let c = checks(&r);
        let out =
            c.0.iter()
                .find(|c| c.name.starts_with("order-service: scaling out (1 × 0.25 core → 2"))
                .expect("the check");
        assert!(out.passed, "{out:?}");
        assert_eq!(out.evidence, "100 and 80 (mean 90) → 190 and 130 (mean 160) rps: 1.78×");
        // A second two-replica figure that drags the mean below 1.6 × 90 fails it.
        r.runs[0].points[2].slo_rps = 90.0;
        let c = checks(&r);
        let out =
            c.0.iter()
                .find(|c| c.name.starts_with("order-service: scaling out (1 × 0.25 core → 2"))
                .expect("the check");
        assert!(!out.passed, "{out:?}");
    }

    #[test]
    fn three_rounds_count_every_search_and_the_report_says_how_each_round_ended() {
        let mut r = synthetic(true);
        let run = &mut r.runs[0];
        let (one, two) = (run.points[0].clone(), run.points[1].clone());
        let figures = [(50.0, 90.0), (50.0, 78.0), (40.0, 80.0)];
        run.points = figures
            .iter()
            .flat_map(|&(o, t)| {
                let (mut one, mut two) = (one.clone(), two.clone());
                one.slo_rps = o;
                two.slo_rps = t;
                [one.clone(), two.clone(), two, one]
            })
            .collect();
        let run = &mut r.runs[0];
        run.rounds = (1..=3).map(|n| rounds::judge_points(n, &run.points[..4 * n], OUT_1_TO_2)).collect();
        assert!(!run.rounds[0].decided && !run.rounds[2].decided, "{:?}", run.rounds);
        let c = checks(&r);
        let out =
            c.0.iter()
                .find(|c| c.name.starts_with("order-service: scaling out (1 × 0.25 core → 2"))
                .expect("the check");
        // 46.7 → 82.7 rps: 1.77×, judged on all twelve searches.
        assert_eq!(
            out.evidence,
            "50, 50, 50, 50, 40 and 40 (mean 47) → 90, 90, 78, 78, 80 and 80 (mean 83) rps: 1.77×"
        );
        assert!(out.passed);
        let args = test_args();
        let text = twinshop_loadtest::report::markdown::render(&document(&r, &c, &args, "now", 1.0));
        assert!(text.contains("round 1: 1 → 2 replicas 1.80× over 2 and 2 searches"), "{text}");
        assert!(text.contains("round 3: 1 → 2 replicas 1.77× over 6 and 6 searches"), "{text}");
        assert!(text.contains("after the last round: the ratio itself is judged"), "{text}");
    }

    #[test]
    fn a_round_where_a_shape_met_the_slo_at_no_rate_names_that_shape() {
        let none_for_one = describe_round(&rounds::judge(1, &[0.0, 0.0], &[60.0, 70.0], OUT_1_TO_2));
        assert_eq!(none_for_one, "round 1: one replica met the SLO at no rate: decided");
        let none_for_two = describe_round(&rounds::judge(1, &[40.0, 50.0], &[0.0, 0.0], OUT_1_TO_2));
        assert_eq!(none_for_two, "round 1: two replicas met the SLO at no rate: decided");
    }

    #[test]
    fn a_replica_that_is_not_held_to_its_quota_fails_the_bottleneck_check() {
        let mut r = synthetic(true);
        r.runs[0].points[1].quota_in_force = vec![SHARE, 1.0];
        let c = checks(&r);
        let failed: Vec<_> = c.0.iter().filter(|c| !c.passed).map(|c| c.name.as_str()).collect();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(failed[0].contains("2 × 0.25 core") && failed[0].contains("bottleneck"), "{failed:?}");
    }

    #[test]
    fn the_report_has_a_row_per_point_and_the_charts() {
        let r = synthetic(true);
        let args = test_args();
        let doc = document(&r, &checks(&r), &args, "now", 1.0);
        let Block::Table(t) = &doc.lead[1] else { panic!("the headline table") };
        assert_eq!(t.rows.len(), 10);
        assert_eq!(t.rows[1][4], "1.90×");
        assert!(doc.charts().count() >= 5);
    }
}
