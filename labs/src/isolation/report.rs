//! The isolation lab's checks and report: availability per endpoint group
//! over time for each build, with the leak and the burn marked, and the
//! p99 of the other areas while the user area burns CPU.

use twinshop_loadtest::report::{
    doc::{Block, Document, Section, Table, Text},
    svg::{Band, LineChart, LineSeries, Scale, line_chart_with_bands},
};

use super::{BURN, GROUPS, Run, SETTLE, outage, outage_availability};
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

/// The p99 of `groups`' requests sent in the calm windows and in the burn
/// windows, in milliseconds.
pub fn calm_and_burn_p99(r: &Run, groups: &[&str]) -> Option<(f64, f64)> {
    let calm = probe::latency_quantile_pooled(&r.samples, groups, &r.calm, 0.99)?;
    let burn = probe::latency_quantile_pooled(&r.samples, groups, &r.burn, 0.99)?;
    Some((calm, burn))
}

/// The other areas' p99 ratio, burn over calm: the p99 of every request to
/// the catalog, the wallet and order reads together (one statistic over a
/// few hundred requests, not the worst of three small ones).
pub fn burn_ratio(r: &Run) -> Option<f64> {
    calm_and_burn_p99(r, &OTHERS).map(|(calm, burn)| burn / calm.max(0.1))
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
    let ratios: Vec<(&str, f64)> = runs.iter().filter_map(|r| burn_ratio(r).map(|x| (r.build, x))).collect();
    if let (Some((_, micro)), Some((_, mono))) =
        (ratios.iter().find(|(b, _)| *b == "microservices"), ratios.iter().find(|(b, _)| *b == "monolith"))
    {
        c.check(
            format!(
                "the same burn raises the other areas' p99 at least {CONTAINMENT_FACTOR}× more inside the monolith than across processes"
            ),
            *mono >= CONTAINMENT_FACTOR * micro,
            format!("the other areas' p99 ratio (burn / calm): monolith {mono:.2}×, microservices {micro:.2}×"),
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
    let mut bands =
        vec![Band { from: r.leak_on, to: from, label: "leak".into() }, Band { from, to, label: "down".into() }];
    bands.extend(r.burn.iter().map(|(from, to)| Band { from: *from, to: *to, label: "burn".into() }));
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
    let rows =
        OTHERS.iter().map(|g| ((*g).to_owned(), vec![*g])).chain([("the three together".to_owned(), OTHERS.to_vec())]);
    for (name, groups) in rows {
        let p99 = calm_and_burn_p99(r, &groups);
        p.rows.push(vec![
            name,
            p99.map_or("-".into(), |(c, _)| format!("{c:.1} ms")),
            p99.map_or("-".into(), |(_, b)| format!("{b:.1} ms")),
            p99.map_or("-".into(), |(c, b)| format!("{:.2}×", b / c.max(0.1))),
        ]);
    }
    let seconds = |w: &[(f64, f64)]| w.iter().map(|(from, to)| to - from).sum::<f64>();
    s.push(Block::Subheading("Noisy neighbour".into()));
    s.paragraph(Text::markup(&format!(
        "The burn was switched on {} times, alternating with calm ({:.0} s of burn and {:.0} s of calm measured, {SETTLE} s after each switch left out). \
         While {BURN} cores of spinning threads ran in the user area, **{}** used **{:.2} cores** of its {:.2}-core quota.",
        r.burn.len(),
        seconds(&r.burn),
        seconds(&r.calm),
        r.victim,
        r.burn_used,
        r.quota
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
        row.push(burn_ratio(r).map_or("-".into(), |x| format!("{x:.2}×")));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Sample;

    /// A run whose other areas answer in 2 ms when calm and `burning_ms`
    /// while the user area burns, with one slow calm outlier in one group.
    fn run(build: &'static str, burning_ms: f64) -> Run {
        let calm = vec![(0.0, 3.0), (6.0, 9.0)];
        let burn = vec![(3.0, 6.0), (9.0, 12.0)];
        let mut samples = Vec::new();
        for i in 0..120 {
            let at = f64::from(i) / 10.0;
            let burning = burn.iter().any(|(from, to)| at >= *from && at < *to);
            for g in OTHERS {
                let latency_ms = if burning {
                    burning_ms
                } else if i == 5 && g == "wallet" {
                    40.0
                } else {
                    2.0
                };
                samples.push(Sample { group: g, at, latency_ms, ok: true, answer: "200".into() });
            }
        }
        Run {
            build,
            limits: Vec::new(),
            samples,
            leak_on: 0.0,
            killed: None,
            back: None,
            victim: "x-1".into(),
            exit: "OOM-killed".into(),
            calm,
            burn,
            burn_used: 0.5,
            quota: 0.5,
        }
    }

    fn noisy_neighbour(runs: &[Run]) -> bool {
        let c = checks(runs);
        let row = c.table().rows.into_iter().find(|row| row[0].contains("more inside the monolith"));
        row.expect("the noisy-neighbour check")[1] == "PASSED"
    }

    #[test]
    fn the_ratio_is_one_p99_over_the_pooled_requests_of_the_other_areas() {
        // 180 calm requests, one of them slow: the p99 stays at 2 ms.
        assert_eq!(calm_and_burn_p99(&run("monolith", 20.0), &OTHERS), Some((2.0, 20.0)));
        assert_eq!(burn_ratio(&run("monolith", 20.0)), Some(10.0));
    }

    #[test]
    fn the_noisy_neighbour_check_holds_only_when_the_monolith_suffers_twice_as_much() {
        assert!(noisy_neighbour(&[run("microservices", 3.0), run("monolith", 20.0)]));
        assert!(!noisy_neighbour(&[run("microservices", 6.0), run("monolith", 10.0)]));
    }
}
