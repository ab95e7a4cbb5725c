//! The discovery lab's figures, checks and report: the share of Charges per
//! replica per mode, and Charges per second per replica around the kill and
//! the add.

use std::collections::BTreeMap;

use serde::Serialize;
use twinshop_loadtest::report::{
    doc::{Document, Section, Table, Text},
    svg::{Band, BarChart, BarSeries, LineChart, LineSeries, Scale, bar_chart, line_chart_with_bands},
};

use super::{ModeRun, REGISTRY_TTL_S, Results};
use crate::common::{Checks, LabArgs, provenance, verdict};

/// (a) is uneven: one replica takes more than this share.
pub const PINNED_SHARE: f64 = 0.9;
/// (b)–(d) spread: the coefficient of variation of the counts stays below this.
pub const SPREAD_CV: f64 = 0.25;
/// (c), (d): no call goes to a killed replica later than this after the kill.
pub const LAST_CALL_S: f64 = 2.0;
/// (c), (d): a new replica gets its first call within this after it is ready.
pub const NEW_REPLICA_S: f64 = 3.0;
/// Fewest Charges in a spread step to judge it: with a random pick per call
/// the CV of three counts is about sqrt(2 / n), 0.12 at 150, well under
/// [`SPREAD_CV`]; fewer (an overloaded machine) and the bound means little.
pub const MIN_CHARGES: f64 = 150.0;

/// What the lab derives from one mode's run.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Share of each replica, in replica order.
    pub shares: Vec<(String, f64)>,
    pub cv: f64,
    pub max_share: f64,
    /// Client-side modes: calls the order replica still sent to the killed
    /// replica after the kill, and when the last one was seen.
    pub calls_to_dead: Option<f64>,
    pub last_call_s: Option<f64>,
    /// Seconds from the kill until the surviving replicas served again.
    pub resumed_s: Option<f64>,
    /// Seconds from the fourth replica being ready until its first Charge.
    pub first_call_s: Option<f64>,
    /// Placements that failed between the kill and the add.
    pub kill_errors: usize,
}

fn value(s: &super::Sample, key: &str) -> Option<f64> {
    s.counters.get(key).copied()
}

pub fn figures(run: &ModeRun) -> Figures {
    let total: f64 = run.spread.values().sum();
    let shares: Vec<(String, f64)> =
        run.spread.iter().map(|(k, v)| (k.clone(), if total > 0.0 { v / total } else { 0.0 })).collect();
    let n = run.spread.len().max(1) as f64;
    let mean = total / n;
    let var = run.spread.values().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let cv = if mean > 0.0 { var.sqrt() / mean } else { f64::INFINITY };
    let max_share = shares.iter().map(|(_, s)| *s).fold(0.0, f64::max);
    let t = &run.timeline;
    let at_kill = t.iter().rposition(|s| s.at <= run.kill_at);
    let dead_key = format!("order→{}", run.killed);
    let (mut calls_to_dead, mut last_call_s) = (None, None);
    // Only where the order replica's own count shows it called the replica
    // before the kill: a count that never moved proves nothing.
    if run.mode.client_side
        && let Some(k) = at_kill
        && let Some(base) = value(&t[k], &dead_key).filter(|b| *b > 0.0)
    {
        let last = t.last().and_then(|s| value(s, &dead_key)).unwrap_or(base);
        calls_to_dead = Some(last - base);
        // The sample that first showed the final count: the last call was before it.
        let seen = t.iter().skip(k).find(|s| value(s, &dead_key).is_some_and(|v| v >= last));
        last_call_s = seen.map(|s| if last > base { (s.at - run.kill_at).max(0.0) } else { 0.0 });
    }
    let survivors = |s: &super::Sample| -> f64 {
        s.counters.iter().filter(|(k, _)| k.starts_with("payment-") && **k != run.killed).map(|(_, v)| v).sum()
    };
    let resumed_s = at_kill.and_then(|k| {
        let base = survivors(&t[k]);
        t.iter().skip(k + 1).find(|s| survivors(s) > base).map(|s| s.at - run.kill_at)
    });
    let fourth = format!("payment-{}", super::REPLICAS + 1);
    let first_call_s =
        t.iter().find(|s| value(s, &fourth).is_some_and(|v| v > 0.0)).map(|s| (s.at - run.added_at).max(0.0));
    let kill_errors = run.kill_answers.iter().filter(|(a, _)| *a != "201").map(|(_, n)| n).sum();
    Figures { shares, cv, max_share, calls_to_dead, last_call_s, resumed_s, first_call_s, kill_errors }
}

fn s(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.2} s"))
}

/// The lab's assertions.
pub fn checks(results: &Results) -> Checks {
    let mut c = Checks::default();
    for run in &results.modes {
        let f = figures(run);
        let shares: Vec<String> = f.shares.iter().map(|(k, v)| format!("{k} {:.0} %", v * 100.0)).collect();
        let evidence =
            format!("{} (CV {:.2}) of {:.0} Charges", shares.join(", "), f.cv, run.spread.values().sum::<f64>());
        let charges = run.spread.values().sum::<f64>();
        c.check(
            format!("{}: enough Charges to judge the spread (at least {MIN_CHARGES})", run.mode.key),
            charges >= MIN_CHARGES,
            format!("{charges:.0} Charges from {} placements ({} not 201)", run.placed, run.failed),
        );
        match run.mode.key {
            "l4" => {
                c.check(
                    format!(
                        "L4: one long-lived HTTP/2 connection pins the calls (one replica > {:.0} %)",
                        PINNED_SHARE * 100.0
                    ),
                    f.max_share > PINNED_SHARE,
                    evidence,
                );
            }
            key => {
                c.check(format!("{key}: calls spread per request (CV < {SPREAD_CV})"), f.cv < SPREAD_CV, evidence);
            }
        }
        if run.mode.client_side {
            let key = run.mode.key;
            c.check(
                format!("{key}: no call goes to the killed replica later than {LAST_CALL_S} s after the kill"),
                f.last_call_s.is_some_and(|v| v <= LAST_CALL_S),
                format!(
                    "{} calls to {} after the kill, the last seen by {}; placements failed meanwhile: {}",
                    f.calls_to_dead.map_or("unknown".into(), |n| format!("{n:.0}")),
                    run.killed,
                    s(f.last_call_s),
                    f.kill_errors
                ),
            );
            c.check(
                format!("{key}: a new replica gets calls within {NEW_REPLICA_S} s of being ready"),
                f.first_call_s.is_some_and(|v| v <= NEW_REPLICA_S),
                format!("first Charge on payment-4 {} after it was ready", s(f.first_call_s)),
            );
        }
    }
    c
}

fn pct(v: f64) -> String {
    format!("{:.0} %", v * 100.0)
}
fn per_s(v: f64) -> String {
    format!("{v:.0}/s")
}
fn secs(v: f64) -> String {
    format!("{v:.0} s")
}

/// Charges per second per replica between consecutive samples.
fn rates(run: &ModeRun) -> Vec<LineSeries> {
    let mut keys: Vec<String> =
        run.timeline.iter().flat_map(|s| s.counters.keys()).filter(|k| k.starts_with("payment-")).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|k| {
            let points = run
                .timeline
                .windows(2)
                .map(|w| {
                    let rate = match (value(&w[0], &k), value(&w[1], &k)) {
                        (Some(a), Some(b)) if b >= a => (b - a) / (w[1].at - w[0].at).max(0.01),
                        _ => 0.0,
                    };
                    (w[1].at, rate)
                })
                .collect();
            LineSeries { name: k, points }
        })
        .collect()
}

fn mode_section(run: &ModeRun) -> Section {
    let f = figures(run);
    let mut sec = Section::new(run.mode.title);
    let bands = vec![
        Band { from: run.kill_at, to: run.added_at, label: format!("{} killed", run.killed) },
        Band { from: run.added_at, to: run.end_at, label: "payment-4 ready".into() },
    ];
    let chart = LineChart {
        title: format!("{}: Charges per second per replica (each replica's own count)", run.mode.key),
        x_label: "seconds".into(),
        y_label: "Charges/s".into(),
        series: rates(run),
        y_scale: Scale::Linear,
        x_format: secs,
        y_format: per_s,
        threshold: None,
    };
    sec.chart(chart.title.clone(), line_chart_with_bands(&chart, &bands));
    let mut t = Table::new(&["", ""]);
    let answers: Vec<String> = run.kill_answers.iter().map(|(a, n)| format!("{a}: {n}")).collect();
    t.rows.push(vec!["placements in the spread step".into(), format!("{} ({} failed)", run.placed, run.failed)]);
    t.rows.push(vec!["killed".into(), format!("{} ({})", run.killed, run.killed_address)]);
    t.rows.push(vec!["placements between kill and add".into(), answers.join(", ")]);
    if run.mode.client_side {
        t.rows.push(vec![
            "calls to the killed replica after the kill (order's own count)".into(),
            f.calls_to_dead.map_or("—".into(), |n| format!("{n:.0}, the last seen by {}", s(f.last_call_s))),
        ]);
    }
    t.rows.push(vec!["survivors serving after the kill".into(), s(f.resumed_s)]);
    t.rows.push(vec!["first Charge on payment-4 after it was ready".into(), s(f.first_call_s)]);
    sec.table(t);
    sec
}

/// The report.
pub fn document(results: &Results, checks: &Checks, args: &LabArgs, started: &str, took_s: f64) -> Document {
    let mut doc = Document::new("lab run discovery: server-side vs client-side discovery (seed 4.3)");
    let mut head = Section::new("Verdict");
    head.push(verdict(
        checks.all_passed(),
        if checks.all_passed() {
            "A gRPC client behind an L4 balancer sends everything to one replica; per-request balancing (nginx L7, or the client itself from DNS or the registry) spreads it, and the client-side modes stop calling a dead replica and start calling a new one within seconds."
        } else {
            "The demonstration did not happen: see the checks."
        },
    ));
    head.paragraph(Text::markup(&format!(
        "{} placements/s through one order replica per mode, three payment replicas, each in its own network namespace on port 9082; the registry lease is {REGISTRY_TTL_S} s, the DNS TTL 1 s.{}",
        results.rate,
        if results.self_test { " **Self-test:** every order replica behind the L4 proxy; the checks must fail." } else { "" }
    )));
    head.table(checks.table());
    doc.push(head);

    let mut spread = Section::new("Spread of Charges per replica");
    let figs: Vec<(String, Figures)> = results.modes.iter().map(|r| (r.mode.key.to_owned(), figures(r))).collect();
    let replicas: Vec<String> =
        figs.first().map(|(_, f)| f.shares.iter().map(|(k, _)| k.clone()).collect()).unwrap_or_default();
    let chart = BarChart {
        title: "Share of Charges per replica, per mode".into(),
        categories: figs.iter().map(|(k, _)| k.clone()).collect(),
        series: replicas
            .iter()
            .enumerate()
            .map(|(i, name)| BarSeries {
                name: name.clone(),
                values: figs.iter().map(|(_, f)| f.shares.get(i).map_or(0.0, |x| x.1)).collect(),
            })
            .collect(),
        scale: Scale::Linear,
        format: pct,
    };
    spread.chart(chart.title.clone(), bar_chart(&chart));
    let mut t = Table::new(&[
        "mode",
        "Charges per replica",
        "CV",
        "largest share",
        "killed: calls after",
        "last call",
        "payment-4: first call",
    ]);
    for (run, (_, f)) in results.modes.iter().zip(&figs) {
        let counts: BTreeMap<&String, String> = run.spread.iter().map(|(k, v)| (k, format!("{v:.0}"))).collect();
        t.rows.push(vec![
            run.mode.title.to_owned(),
            counts.values().cloned().collect::<Vec<_>>().join(" / "),
            format!("{:.2}", f.cv),
            pct(f.max_share),
            f.calls_to_dead.map_or("—".into(), |n| format!("{n:.0}")),
            s(f.last_call_s),
            s(f.first_call_s),
        ]);
    }
    spread.table(t);
    doc.push(spread);
    for run in &results.modes {
        doc.push(mode_section(run));
    }
    doc.push(provenance(args, started, took_s));
    doc
}
