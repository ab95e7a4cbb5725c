//! The fault lab's report: the answer first (did every invariant hold on
//! each build), then per build the faults with their recovery times, a
//! timeline with the faults marked, the invariants, the checker's
//! self-test, what an operator saw in the logs, the rolling restart and
//! the leases.

use std::collections::BTreeMap;

use twinshop_loadtest::report::{
    doc::{Block, Document, Section, Table, Text},
    svg::{Band, LineChart, LineSeries, Scale, line_chart_with_bands},
};

use super::{
    BuildRun, checker, rolling,
    workload::{Acked, OpKind, Outcome},
};
use crate::common::{Checks, LabArgs, provenance, verdict};

/// The checks that decide the run.
pub fn checks(r: &BuildRun, self_test: bool) -> Checks {
    let mut c = Checks::default();
    for f in &r.findings {
        let evidence = if f.violations.is_empty() { "held".to_owned() } else { f.violations.join("; ") };
        c.check(f.invariant, f.violations.is_empty(), evidence);
    }
    c.check("the checker passes the run's own data untouched", r.self_test_clean, "no violation before corrupting");
    let caught = r.self_test.iter().filter(|t| t.1).count();
    c.check(
        "the checker catches every corruption of a copy of the data",
        caught == r.self_test.len() && !r.self_test.is_empty(),
        format!("{caught} of {} caught", r.self_test.len()),
    );
    if self_test {
        return c;
    }
    let unrecovered: Vec<&str> = r.injected.iter().filter(|f| f.recovered.is_none()).map(|f| f.id.as_str()).collect();
    c.check(
        "the shop recovered from every fault",
        unrecovered.is_empty() && !r.injected.is_empty(),
        if unrecovered.is_empty() {
            format!("{} faults, each followed by successful placements", r.injected.len())
        } else {
            format!("no placement succeeded after {unrecovered:?}")
        },
    );
    c.check(
        "no per-event relay line at INFO (one line per outage instead)",
        r.logs.relay_per_event == 0,
        format!(
            "{} per-event lines; {} outage, {} summary, {} recovery lines",
            r.logs.relay_per_event, r.logs.relay_failing, r.logs.relay_summaries, r.logs.relay_recovered
        ),
    );
    if let Some(roll) = &r.rolling {
        c.check(
            "a rolling restart of every process loses no request",
            roll.failed == 0,
            format!(
                "{} requests while {} replicas were replaced, {} failed",
                roll.requests,
                roll.steps.len(),
                roll.failed
            ),
        );
    }
    for l in &r.leases {
        match l.case {
            "killed" => c.check(
                "a retry gets the final answer within 2 s of its holder's SIGKILL",
                l.answered_after_s <= 2.0 && rolling::lease_held(l),
                format!("{} after {:.2} s; order {} with {} charge(s), {} refund(s)", l.answer, l.answered_after_s, l.final_status, l.charges, l.refunds),
            ),
            _ => c.check(
                "a paused holder that lost its key adds no second effect when resumed",
                rolling::lease_held(l) && l.generation == 2,
                format!(
                    "retry: {} after {:.2} s; holder resumed and answered {}; order {} with {} charge(s), {} refund(s), {} order.confirmed event(s); key generation {}",
                    l.answer, l.answered_after_s, l.holder_answer.as_deref().unwrap_or("-"), l.final_status, l.charges, l.refunds, l.confirmed_events, l.generation
                ),
            ),
        };
    }
    c
}

/// Whether every build passed.
pub fn passed(runs: &[BuildRun], self_test: bool) -> bool {
    !runs.is_empty() && runs.iter().all(|r| checks(r, self_test).all_passed())
}

fn secs(v: f64) -> String {
    format!("{v:.0} s")
}

fn per_second(v: f64) -> String {
    format!("{v:.0}/s")
}

fn millis(v: f64) -> String {
    if v >= 1000.0 { format!("{:.1} s", v / 1e3) } else { format!("{v:.0} ms") }
}

/// `(second, value)` points.
type Points = Vec<(f64, f64)>;

/// Per second: ok attempts, failed attempts, p99 latency (ms).
fn timeline(r: &BuildRun) -> (Points, Points, Points) {
    let end = r.attempts.iter().map(|a| a.at).fold(0.0, f64::max).ceil() as usize + 1;
    let mut ok = vec![0.0; end];
    let mut bad = vec![0.0; end];
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); end];
    for a in &r.attempts {
        let s = a.at as usize;
        if a.outcome == Outcome::Ok {
            ok[s] += 1.0
        } else {
            bad[s] += 1.0
        }
        lat[s].push(a.latency_ms);
    }
    let p99 = lat
        .into_iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(s, mut v)| {
            v.sort_by(f64::total_cmp);
            let idx = ((v.len() as f64) * 0.99).ceil() as usize;
            (s as f64, v[idx.saturating_sub(1).min(v.len() - 1)])
        })
        .collect();
    let pts = |v: Vec<f64>| v.into_iter().enumerate().map(|(s, n)| (s as f64, n)).collect();
    (pts(ok), pts(bad), p99)
}

fn build_section(r: &BuildRun, self_test: bool) -> Section {
    let mut s = Section::new(format!(
        "{}: {}",
        r.build,
        if checks(r, self_test).all_passed() { "every check held" } else { "FAILED" }
    ));
    let c = checks(r, self_test);
    s.push(verdict(
        c.all_passed(),
        &format!(
            "**{}**: {} operations by {} careful clients in {:.0} s, {} faults injected; {}.",
            r.build,
            r.operations.len(),
            super::RICH + super::POOR,
            r.duration_s,
            r.injected.len(),
            if c.all_passed() {
                "nothing acknowledged was lost and no money was created or destroyed"
            } else {
                "see the failed checks below"
            }
        ),
    ));
    if !r.injected.is_empty() {
        s.push(Block::Subheading("Faults and recovery".into()));
        let mut t = Table::new(&["", "fault", "at", "held", "recovery (first placement after the heal)"]);
        for f in &r.injected {
            t.rows.push(vec![
                f.id.clone(),
                f.fault.clone(),
                format!("{:.1} s", f.started),
                format!("{:.1} s", f.healed - f.started),
                f.recovery().map_or("none".into(), |v| format!("{v:.2} s")),
            ]);
        }
        s.table(t);
    }
    let (ok, bad, p99) = timeline(r);
    let bands: Vec<Band> = r
        .injected
        .iter()
        .map(|f| Band { from: f.started, to: f.healed.max(f.started + 0.5), label: f.id.clone() })
        .collect();
    let chart = LineChart {
        title: format!("{}: requests per second, faults shaded", r.build),
        x_label: "seconds".into(),
        y_label: "requests per second".into(),
        series: vec![
            LineSeries { name: "answered".into(), points: ok },
            LineSeries { name: "failed (5xx or no answer)".into(), points: bad },
        ],
        y_scale: Scale::Linear,
        x_format: secs,
        y_format: per_second,
        threshold: None,
    };
    s.chart(chart.title.clone(), line_chart_with_bands(&chart, &bands));
    let latency = LineChart {
        title: format!("{}: p99 latency per second, faults shaded", r.build),
        x_label: "seconds".into(),
        y_label: "p99 latency".into(),
        series: vec![LineSeries { name: "p99".into(), points: p99 }],
        y_scale: Scale::Log,
        x_format: secs,
        y_format: millis,
        threshold: None,
    };
    s.chart(latency.title.clone(), line_chart_with_bands(&latency, &bands));

    s.push(Block::Subheading("What the clients were told".into()));
    let mut ops = Table::new(&[
        "operation",
        "operations",
        "acknowledged",
        "refused (4xx)",
        "payment unavailable",
        "unresolved",
        "attempts",
    ]);
    for kind in [OpKind::Place, OpKind::Cancel, OpKind::TopUp, OpKind::Read] {
        let of: Vec<_> = r.operations.iter().filter(|o| o.kind == kind).collect();
        let count = |f: &dyn Fn(&Acked) -> bool| of.iter().filter(|o| f(&o.acked)).count().to_string();
        ops.rows.push(vec![
            format!("{kind:?}").to_lowercase(),
            of.len().to_string(),
            count(&|a| {
                matches!(a, Acked::Placed { .. } | Acked::ToppedUp { .. } | Acked::Cancelled { .. } | Acked::Read)
            }),
            count(&|a| matches!(a, Acked::Refused { .. })),
            count(&|a| matches!(a, Acked::PaymentUnavailable)),
            count(&|a| matches!(a, Acked::Unresolved | Acked::ReadFailed)),
            of.iter().map(|o| o.attempts as usize).sum::<usize>().to_string(),
        ]);
    }
    s.table(ops);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for a in r.attempts.iter().filter(|a| a.outcome != Outcome::Ok) {
        *seen.entry(a.outcome.label()).or_default() += 1;
    }
    let mut errs = Table::new(&["attempt answered", "count"]);
    for (label, n) in &seen {
        errs.rows.push(vec![label.clone(), n.to_string()]);
    }
    s.paragraph(Text::markup(
        "Attempts that got no definite answer, by what came back (a careful client retried each with the same key):",
    ));
    s.table(errs);

    s.push(Block::Subheading("The invariants".into()));
    let mut inv = Table::new(&["invariant", "verdict", "violations"]);
    for f in &r.findings {
        inv.rows.push(vec![
            f.invariant.to_owned(),
            if f.violations.is_empty() { "PASSED".into() } else { "FAILED".into() },
            if f.violations.is_empty() { "-".into() } else { f.violations.join("; ") },
        ]);
    }
    s.table(inv);
    s.paragraph(Text::plain(format!("Checked against {} orders in the database.", r.snapshot_orders)));

    s.push(Block::Subheading("The checker's self-test on a copy of this run's data".into()));
    let mut st = Table::new(&["corruption", "verdict", "what the checker said"]);
    for (name, caught, said) in &r.self_test {
        st.rows.push(vec![name.clone(), if *caught { "PASSED".into() } else { "FAILED".into() }, said.clone()]);
    }
    s.table(st);

    if !self_test {
        s.push(Block::Subheading("What an operator saw in the logs".into()));
        let mut lt = Table::new(&["process", "ERROR lines", "WARN lines"]);
        for (p, e, w) in &r.logs.per_process {
            lt.rows.push(vec![p.clone(), e.to_string(), w.to_string()]);
        }
        s.table(lt);
        s.paragraph(Text::markup(&format!(
            "The outbox relays wrote **{}** \"events cannot be published yet\" lines, {} backlog summaries and {} recoveries; {} per-event failure lines at INFO or above.",
            r.logs.relay_failing, r.logs.relay_summaries, r.logs.relay_recovered, r.logs.relay_per_event
        )));
        if !r.logs.errors.is_empty() {
            s.push(Block::List(r.logs.errors.iter().take(8).map(|(m, n)| Text::plain(format!("{n}× {m}"))).collect()));
        }
    }
    if let Some(roll) = &r.rolling {
        s.push(Block::Subheading("Rolling restart, two replicas of everything".into()));
        s.paragraph(Text::markup(&format!(
            "Every process replaced one at a time under load in {:.1} s: **{} requests, {} failed**.",
            roll.took_s, roll.requests, roll.failed
        )));
        let mut rt = Table::new(&["replica", "out of service"]);
        for (p, t) in &roll.steps {
            rt.rows.push(vec![p.clone(), format!("{t:.2} s")]);
        }
        s.table(rt);
    }
    if !r.leases.is_empty() {
        s.push(Block::Subheading("The idempotency lease follows its holder".into()));
        let mut lt = Table::new(&[
            "holder",
            "retry's answer",
            "after",
            "holder's late answer",
            "order",
            "charges / refunds",
            "order.confirmed events",
            "key generation",
        ]);
        for l in &r.leases {
            lt.rows.push(vec![
                l.case.into(),
                l.answer.clone(),
                format!("{:.2} s", l.answered_after_s),
                l.holder_answer.clone().unwrap_or_else(|| "-".into()),
                l.final_status.clone(),
                format!("{} / {}", l.charges, l.refunds),
                l.confirmed_events.to_string(),
                l.generation.to_string(),
            ]);
        }
        s.table(lt);
    }
    let mut all = Section::new("x");
    all.table(c.table());
    s.push(Block::Subheading("Every check".into()));
    s.blocks.extend(all.blocks);
    s
}

/// The whole report.
pub fn document(runs: &[BuildRun], args: &LabArgs, started: &str, took_s: f64) -> Document {
    let mut doc = Document::new(if args.self_test {
        "The fault lab's checker, tested"
    } else {
        "Nothing lost, whatever dies: the fault lab"
    });
    let ok = passed(runs, args.self_test);
    doc.lead.push(verdict(
        ok,
        &if ok {
            format!(
                "Every invariant held on {}, through every fault.",
                runs.iter().map(|r| r.build).collect::<Vec<_>>().join(" and ")
            )
        } else {
            "At least one check failed: see below.".to_owned()
        },
    ));
    let mut t = Table::new(&[
        "build",
        "operations",
        "faults",
        "slowest recovery",
        "invariants held",
        "rolling restart failed requests",
    ]);
    for r in runs {
        let slowest = r.injected.iter().filter_map(|f| f.recovery()).fold(0.0, f64::max);
        t.rows.push(vec![
            r.build.into(),
            r.operations.len().to_string(),
            r.injected.len().to_string(),
            format!("{slowest:.2} s"),
            format!(
                "{} of {}",
                r.findings.iter().filter(|f| f.violations.is_empty()).count(),
                checker::INVARIANTS.len()
            ),
            r.rolling.as_ref().map_or("-".into(), |x| x.failed.to_string()),
        ]);
    }
    doc.lead.push(Block::Table(t));
    for r in runs {
        doc.push(build_section(r, args.self_test));
    }
    doc.push(provenance(args, started, took_s));
    doc
}
