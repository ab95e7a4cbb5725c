//! The isolation lab's checks and report: availability per endpoint group
//! over time for each build, with the leak and the burn marked, and the
//! p99 of the other areas while the user area burns CPU.

use twinshop_loadtest::report::{
    doc::{Block, Document, Section, Table, Text},
    svg::{Band, LineChart, LineSeries, Scale, line_chart_with_bands},
};

use super::{BURN, GROUPS, Run, outage, outage_availability};
use crate::{
    common::{Checks, LabArgs, provenance, verdict},
    probe,
};

/// The groups no user-area failure may touch in the microservices.
const OTHERS: [&str; 3] = ["catalog", "wallet", "order reads"];

/// The bound the lab asserts for the noisy neighbour: inside the monolith
/// the other areas' p99 rises at least this many times more than across
/// processes. (On 2 cores even a capped burner takes half the machine, so
/// the other services' p99 rises too; the point is how much less.)
pub const CONTAINMENT_FACTOR: f64 = 2.0;

/// The other areas' worst p99 ratio, burn over calm.
pub fn burn_ratio(r: &Run) -> Option<(f64, &'static str)> {
    OTHERS
        .iter()
        .filter_map(|g| {
            let calm = probe::latency_quantile(&r.samples, g, r.calm.0, r.calm.1, 0.99)?;
            let burn = probe::latency_quantile(&r.samples, g, r.burn.0, r.burn.1, 0.99)?;
            Some((burn / calm.max(0.1), *g))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// Seconds from `from` until `group`'s first failure (detect) and, after
/// `after`, its first success (recover).
fn first(r: &Run, group: &str, from: f64, ok: bool) -> Option<f64> {
    r.samples.iter().filter(|s| s.group == group && s.at >= from && s.ok == ok).map(|s| s.at - from).reduce(f64::min)
}

/// The lab's assertions.
pub fn checks(runs: &[Run]) -> Checks {
    let mut c = Checks::default();
    for r in runs {
        let b = r.build;
        c.check(
            format!("{b}: the leaking process is killed by the kernel (OOM)"),
            r.exit == "OOM-killed",
            format!("{} ended: {}", r.victim, r.exit),
        );
        let avail = |g: &str| outage_availability(r, g).unwrap_or(0.0);
        if b == "monolith" {
            let worst = GROUPS.iter().map(|(g, _)| avail(g)).fold(0.0, f64::max);
            c.check(
                "monolith: every endpoint group fails while the process is down",
                worst < 0.5,
                format!("best group availability during the outage {:.0} %", worst * 100.0),
            );
        } else {
            for g in OTHERS {
                c.check(
                    format!("microservices: {g} keeps answering while the user service is down"),
                    avail(g) >= 0.99,
                    format!("{:.1} % available", avail(g) * 100.0),
                );
            }
            let (from, to) = outage(r);
            let answers = probe::answers(&r.samples, "place order", from, to);
            let fast = probe::latency_quantile(&r.samples, "place order", from, to, 0.99).unwrap_or(f64::MAX);
            let failed_fast =
                answers.keys().filter(|a| !a.starts_with("201")).all(|a| a == "503 dependency_unavailable");
            c.check(
                "microservices: placing an order fails fast with 503 dependency_unavailable",
                failed_fast && fast < 2_000.0 && answers.contains_key("503 dependency_unavailable"),
                format!("answers {answers:?}, p99 {fast:.0} ms"),
            );
        }
    }
    for r in runs {
        c.check(
            format!("{}: the burning process is held to its CPU quota", r.build),
            r.burn_used <= r.quota * 1.1,
            format!(
                "{} used {:.2} cores of its {:.2}-core quota while {BURN} cores of threads spun",
                r.victim, r.burn_used, r.quota
            ),
        );
    }
    let ratios: Vec<(&str, f64)> = runs.iter().filter_map(|r| burn_ratio(r).map(|x| (r.build, x.0))).collect();
    if let (Some((_, micro)), Some((_, mono))) =
        (ratios.iter().find(|(b, _)| *b == "microservices"), ratios.iter().find(|(b, _)| *b == "monolith"))
    {
        c.check(
            format!(
                "the same burn raises the other areas' p99 at least {CONTAINMENT_FACTOR}× more inside the monolith than across processes"
            ),
            *mono >= CONTAINMENT_FACTOR * micro,
            format!("worst p99 ratio (burn / calm): monolith {mono:.2}×, microservices {micro:.2}×"),
        );
    }
    c
}

fn pct(v: f64) -> String {
    format!("{:.0} %", v * 100.0)
}
fn secs(v: f64) -> String {
    format!("{v:.0} s")
}

fn section(r: &Run) -> Section {
    let mut s = Section::new(format!("{}: the leak and the burn", r.build));
    let limits: Vec<String> = r.limits.iter().map(|(n, m, c)| format!("{n} {m} MiB / {c} core")).collect();
    s.paragraph(Text::plain(format!("Limits from the manifests: {}.", limits.join(", "))));
    let (from, to) = outage(r);
    let bands = vec![
        Band { from: r.leak_on, to: from, label: "leak".into() },
        Band { from, to, label: "down".into() },
        Band { from: r.burn.0, to: r.burn.1, label: "burn".into() },
    ];
    let chart = LineChart {
        title: format!("{}: availability per endpoint group (per second)", r.build),
        x_label: "seconds".into(),
        y_label: "answered".into(),
        series: GROUPS
            .iter()
            .map(|(g, _)| LineSeries { name: (*g).into(), points: probe::availability_per_second(&r.samples, g) })
            .collect(),
        y_scale: Scale::Linear,
        x_format: secs,
        y_format: pct,
        threshold: None,
    };
    s.chart(chart.title.clone(), line_chart_with_bands(&chart, &bands));
    let mut t = Table::new(&[
        "endpoint group",
        "served by",
        "available while down",
        "first failure after the leak began",
        "recovered after the kill",
        "answers while down",
    ]);
    for (g, area) in GROUPS {
        let fmt_s = |v: Option<f64>| v.map_or("never".into(), |v| format!("{v:.1} s"));
        t.rows.push(vec![
            g.into(),
            area.into(),
            outage_availability(r, g).map_or("-".into(), pct),
            fmt_s(first(r, g, r.leak_on, false)),
            fmt_s(first(r, g, from, true)),
            format!("{:?}", probe::answers(&r.samples, g, from, to)),
        ]);
    }
    s.table(t);
    s.paragraph(Text::markup(&format!(
        "The leak began at {:.1} s; **{}** ended at {:.1} s (**{}**), {:.1} s later; it was ready again at {:.1} s.",
        r.leak_on,
        r.victim,
        from,
        r.exit,
        from - r.leak_on,
        r.back.unwrap_or(0.0)
    )));
    let mut p = Table::new(&["endpoint group", "p99 calm", "p99 while the user area burns", "ratio"]);
    for g in OTHERS {
        let calm = probe::latency_quantile(&r.samples, g, r.calm.0, r.calm.1, 0.99);
        let burn = probe::latency_quantile(&r.samples, g, r.burn.0, r.burn.1, 0.99);
        p.rows.push(vec![
            g.into(),
            calm.map_or("-".into(), |v| format!("{v:.1} ms")),
            burn.map_or("-".into(), |v| format!("{v:.1} ms")),
            calm.zip(burn).map_or("-".into(), |(c, b)| format!("{:.2}×", b / c.max(0.1))),
        ]);
    }
    s.push(Block::Subheading("Noisy neighbour".into()));
    s.paragraph(Text::markup(&format!(
        "While {BURN} cores of spinning threads ran in the user area, **{}** used **{:.2} cores** of its {:.2}-core quota.",
        r.victim, r.burn_used, r.quota
    )));
    s.table(p);
    s
}

/// The whole report.
pub fn document(runs: &[Run], checks: &Checks, args: &LabArgs, started: &str, took_s: f64) -> Document {
    let mut doc = Document::new("Failure domains: one leak, two architectures");
    doc.lead.push(verdict(checks.all_passed(), if checks.all_passed() {
        "The same leak in the user area took the whole monolith down, and only the user service in the microservices, where the catalog, the wallet and order reads kept answering and placing an order failed fast."
    } else {
        "At least one check failed: see below."
    }));
    let mut t = Table::new(&[
        "build",
        "what died",
        "catalog",
        "wallet",
        "order reads",
        "profile",
        "place order",
        "other areas' p99 under the burn",
    ]);
    for r in runs {
        let mut row = vec![r.build.to_owned(), format!("{} ({})", r.victim, r.exit)];
        for (g, _) in GROUPS {
            row.push(outage_availability(r, g).map_or("-".into(), pct));
        }
        row.push(burn_ratio(r).map_or("-".into(), |(x, g)| format!("{x:.2}× ({g})")));
        t.rows.push(row);
    }
    doc.lead.push(Block::Table(t));
    doc.lead.push(Block::Paragraph(Text::plain(
        "Availability columns: share of probe requests answered 2xx while the killed process was down.",
    )));
    for r in runs {
        doc.push(section(r));
    }
    let mut all = Section::new("Every check");
    all.table(checks.table());
    doc.push(all);
    doc.push(provenance(args, started, took_s));
    doc
}
