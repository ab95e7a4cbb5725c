//! The CAP lab's checks and report.

use twinshop_loadtest::report::{
    doc::{Block, Document, Section, Table, Text},
    svg::{Band, LineChart, LineSeries, Scale, line_chart_with_bands},
};

use super::{Results, shop::ModeRun};
use crate::{
    common::{Checks, LabArgs, provenance, verdict},
    faults::workload::{OpKind, Outcome},
};

fn count(m: &ModeRun, f: impl Fn(&str) -> bool) -> usize {
    m.during.iter().filter(|(label, _)| f(label)).map(|(_, n)| n).sum()
}

fn total(m: &ModeRun) -> usize {
    m.during.iter().map(|(_, n)| n).sum()
}

fn answered_pending(m: &ModeRun) -> usize {
    m.operations.iter().filter(|o| o.kind == OpKind::Place && o.started >= m.cut.0 && o.started < m.cut.1).count()
}

/// The lab's assertions.
pub fn checks(r: &Results) -> Checks {
    let mut c = Checks::default();
    for m in &r.modes {
        let held = m.findings.iter().all(|f| f.violations.is_empty());
        let broken: Vec<&str> = m.findings.iter().filter(|f| !f.violations.is_empty()).map(|f| f.invariant).collect();
        c.check(
            format!("{}: every invariant of the fault lab holds after the heal", m.mode),
            held,
            if held { "held".into() } else { format!("broken: {broken:?}") },
        );
        c.check(
            format!("{}: every pending order and owed void settled after the heal", m.mode),
            m.converged_s.is_some_and(|s| s < 60.0),
            m.converged_s.map_or("not within 90 s".into(), |s| format!("{s:.1} s after the heal")),
        );
        let (n, unavailable, ok) = (total(m), count(m, |l| l == "503 payment_unavailable"), count(m, |l| l == "ok"));
        match m.mode {
            "strict" => {
                c.check(
                    "strict: during the cut, placements are refused (503 payment_unavailable), never left pending",
                    unavailable > 0 && m.pending_acked == 0,
                    format!(
                        "{unavailable} of {n} placements refused, {ok} answered 201, {} left pending",
                        m.pending_acked
                    ),
                );
            }
            _ => {
                c.check(
                    "available: during the cut, placements are accepted (201 pending), none refused",
                    unavailable == 0 && m.pending_acked > 0,
                    format!("{ok} of {n} placement attempts answered 201, {} orders accepted pending, {unavailable} refused", m.pending_acked),
                );
            }
        }
    }
    for p in &r.etcd {
        let who = p.isolated;
        c.check(
            format!("etcd, {who} cut off: the two others accept writes"),
            p.majority_write && p.writes_refused_s < 15.0,
            format!(
                "a write through them succeeded {:.2} s after the cut{}",
                p.writes_refused_s,
                p.election_s.map_or(String::new(), |e| format!(" (new leader after {e:.2} s)"))
            ),
        );
        c.check(
            format!("etcd, {who} cut off: the member alone acknowledges no write and refuses linearizable reads"),
            p.minority_write_refused && p.minority_linearizable_refused,
            format!(
                "write not acknowledged: {} ({}), linearizable read refused: {}",
                p.minority_write_refused, p.minority_write_error, p.minority_linearizable_refused
            ),
        );
        c.check(
            format!("etcd, {who} cut off: the member alone serves a stale serializable read"),
            p.minority_serializable.as_deref() == Some("before") && p.majority_value == "after",
            format!(
                "alone it read {} while the majority held {}",
                shown(p.minority_serializable.as_deref()),
                shown(Some(&p.majority_value))
            ),
        );
        // After the heal one history wins everywhere: the majority's write,
        // or the unacknowledged one if it was still queued and committed
        // after it. Never anything else, never two values.
        c.check(
            format!("etcd, {who} cut off: after the heal all three members agree"),
            p.converged_s.is_some() && matches!(p.final_value.as_deref(), Some("after" | "lonely")),
            format!(
                "{} after the heal, on {}{}",
                p.converged_s.map_or("never within 60 s".into(), |s| format!("agreed {s:.2} s")),
                shown(p.final_value.as_deref()),
                if p.unacknowledged_write_committed {
                    " (the write the member alone never acknowledged was committed after the heal)"
                } else {
                    ""
                }
            ),
        );
    }
    if let Some(redis) = &r.redis {
        c.check(
            "redis: the replica cut from its primary answers, with stale data, and catches up after the heal",
            redis.replica_during.as_deref() == Some("v1") && redis.converged_s.is_some(),
            format!(
                "during the cut it answered {} (the primary held {}); {} after the heal",
                shown(redis.replica_during.as_deref()),
                shown(Some(&redis.primary)),
                redis.converged_s.map_or("never caught up".into(), |s| format!("caught up {s:.2} s"))
            ),
        );
    }
    c
}

fn secs(v: f64) -> String {
    format!("{v:.0} s")
}
fn per_s(v: f64) -> String {
    format!("{v:.0}/s")
}

fn mode_section(m: &ModeRun) -> Section {
    let mut s = Section::new(format!("The shop in {} mode", m.mode));
    let end = m.attempts.iter().map(|a| a.at).fold(0.0, f64::max).ceil() as usize + 1;
    let mut series: Vec<(String, Vec<f64>)> = Vec::new();
    for a in m.attempts.iter().filter(|a| a.kind == OpKind::Place) {
        let label = match &a.outcome {
            Outcome::Ok => "201".to_owned(),
            other => other.label(),
        };
        let idx = match series.iter().position(|(l, _)| *l == label) {
            Some(i) => i,
            None => {
                series.push((label, vec![0.0; end]));
                series.len() - 1
            }
        };
        series[idx].1[a.at as usize] += 1.0;
    }
    let chart = LineChart {
        title: format!("{}: placements per second by answer, the cut shaded", m.mode),
        x_label: "seconds".into(),
        y_label: "placements".into(),
        series: series
            .into_iter()
            .map(|(name, v)| LineSeries {
                name,
                points: v.into_iter().enumerate().map(|(i, n)| (i as f64, n)).collect(),
            })
            .collect(),
        y_scale: Scale::Linear,
        x_format: secs,
        y_format: per_s,
        threshold: None,
    };
    s.chart(
        chart.title.clone(),
        line_chart_with_bands(&chart, &[Band { from: m.cut.0, to: m.cut.1, label: "order ↔ payment cut".into() }]),
    );
    let mut t = Table::new(&["during the cut", "count"]);
    for (label, n) in &m.during {
        t.rows.push(vec![label.clone(), n.to_string()]);
    }
    s.table(t);
    let mut st = m.staleness.clone();
    st.sort_by(f64::total_cmp);
    let pick = |q: f64| st.get(((st.len() as f64 * q).ceil() as usize).saturating_sub(1)).copied();
    s.paragraph(Text::markup(&format!(
        "{} placements started during the cut; **{}** orders were accepted *pending* (their outcome unknown to the client){}. Everything settled **{}** after the heal.",
        answered_pending(m),
        m.pending_acked,
        pick(0.5).map_or(String::new(), |p50| format!(", pending for {p50:.1} s at the median and {:.1} s at most", pick(1.0).unwrap_or(p50))),
        m.converged_s.map_or("never".into(), |s| format!("{s:.1} s"))
    )));
    let mut inv = Table::new(&["invariant", "verdict"]);
    for f in &m.findings {
        inv.rows.push(vec![
            f.invariant.into(),
            if f.violations.is_empty() { "PASSED".into() } else { format!("FAILED: {}", f.violations.join("; ")) },
        ]);
    }
    s.table(inv);
    s
}

/// A value read, quoted; `nothing` when the read returned none.
fn shown(value: Option<&str>) -> String {
    value.map_or("nothing".into(), |v| format!("\"{v}\""))
}

/// The whole report.
pub fn document(r: &Results, checks: &Checks, args: &LabArgs, started: &str, took_s: f64) -> Document {
    let mut doc = Document::new("CAP, measured: the shop's two modes, etcd, and a Redis replica");
    let shop = if r.modes.is_empty() {
        ""
    } else {
        "Strict mode gave up availability of placement to keep every answer final; available mode kept answering and let outcomes wait. "
    };
    let summary = if checks.all_passed() {
        format!(
            "{shop}etcd's majority kept a leader and took writes while the member alone acknowledged none and refused linearizable reads: CP. A Redis replica cut off kept answering with stale data: AP."
        )
    } else {
        "At least one check failed: see below.".to_owned()
    };
    doc.lead.push(verdict(checks.all_passed(), &summary));
    let mut t = Table::new(&[
        "system",
        "cut",
        "writes / placements on the cut side",
        "reads on the cut side",
        "converged after the heal",
    ]);
    for m in &r.modes {
        t.rows.push(vec![
            format!("shop, {}", m.mode),
            "order ↔ payment".into(),
            if m.mode == "strict" {
                format!("{} refused (503)", count(m, |l| l == "503 payment_unavailable"))
            } else {
                format!("{} accepted pending", m.pending_acked)
            },
            if m.mode == "strict" {
                "order reads: every answer final (confirmed, rejected or failed)".into()
            } else {
                let longest = m.staleness.iter().copied().fold(0.0, f64::max);
                format!("order reads: pending, outcome unknown for up to {longest:.1} s")
            },
            m.converged_s.map_or("never".into(), |s| format!("{s:.1} s")),
        ]);
    }
    for p in &r.etcd {
        t.rows.push(vec![
            "etcd (3 members)".into(),
            format!("{} alone", p.isolated),
            format!("majority: write after {:.2} s; alone: not acknowledged", p.writes_refused_s),
            format!("alone: linearizable refused, serializable {} (stale)", shown(p.minority_serializable.as_deref())),
            p.converged_s.map_or("never".into(), |s| format!("{s:.2} s")),
        ]);
    }
    if let Some(redis) = &r.redis {
        t.rows.push(vec![
            "Redis primary + replica".into(),
            "replica alone".into(),
            "primary: accepted".into(),
            format!("replica: {} (stale)", shown(redis.replica_during.as_deref())),
            redis.converged_s.map_or("never".into(), |s| format!("{s:.2} s")),
        ]);
    }
    doc.lead.push(Block::Table(t));
    for m in &r.modes {
        doc.push(mode_section(m));
    }
    let mut e = Section::new("etcd: the majority decides");
    let mut et = Table::new(&[
        "cut off alone",
        "new leader after",
        "majority write after",
        "alone: write",
        "alone: linearizable read",
        "alone: serializable read",
        "agreed after the heal",
        "what became of the unacknowledged write",
    ]);
    for p in &r.etcd {
        et.rows.push(vec![
            p.isolated.into(),
            p.election_s.map_or("- (kept its leader)".into(), |s| format!("{s:.2} s")),
            format!("{:.2} s", p.writes_refused_s),
            if p.minority_write_refused {
                format!("not acknowledged ({})", p.minority_write_error)
            } else {
                "ACKNOWLEDGED".into()
            },
            if p.minority_linearizable_refused { "refused".into() } else { "ANSWERED".into() },
            format!("{} (majority: {})", shown(p.minority_serializable.as_deref()), shown(Some(&p.majority_value))),
            p.converged_s.map_or("never".into(), |s| format!("{s:.2} s, on {}", shown(p.final_value.as_deref()))),
            if p.unacknowledged_write_committed {
                "committed after the heal: its client had timed out, yet it happened".into()
            } else {
                "discarded: it never reached a majority".into()
            },
        ]);
    }
    e.table(et);
    e.paragraph(
        "A write the member alone did not acknowledge is not a write that was refused. A follower forwards it to the leader it knew and keeps it queued; when the link heals it reaches the leader and commits, after the majority's own write. An old leader's own entry, appended in a term that is over, is discarded when it rejoins. The client saw a timeout in both cases: only a later read tells. The shop's answer to the same uncertainty is the idempotency key (resend, same outcome) and the `pending` order (outcome settled later).",
    );
    doc.push(e);
    let mut all = Section::new("Every check");
    all.table(checks.table());
    doc.push(all);
    doc.push(provenance(args, started, took_s));
    doc
}
