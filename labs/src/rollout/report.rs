//! The rollout lab's checks and report: a timeline of requests and errors
//! per second with every replacement marked, the time per rollout, and
//! what the drift check found.

use twinshop_loadtest::report::{
    doc::{Block, Document, Section, Table, Text},
    svg::{Band, LineChart, LineSeries, Scale, line_chart_with_bands},
};

use super::{BuildRun, Results};
use crate::common::{Checks, LabArgs, provenance, verdict};

/// The lab's assertions.
pub fn checks(results: &Results) -> Checks {
    let mut c = Checks::default();
    for r in &results.runs {
        let b = r.build;
        if let Some(first) = r.drift_checks.first() {
            c.check(
                format!("{b}: deployed from the plan, no process drifts"),
                first.drifted().is_empty(),
                format!("{} processes on release A; drift: {}", first.processes.len(), first.summary()),
            );
        }
        for (prefix, release) in [("rollout", &r.release_b), ("rollback", &r.release_a)] {
            let Some(p) = r.phase(prefix) else {
                c.check(format!("{b}: the {prefix} ran"), false, "missing");
                continue;
            };
            c.check(
                format!("{b}: {}: every process replaced one at a time with 0 failed requests", p.name),
                p.failed() == 0 && !p.replaced.is_empty(),
                format!(
                    "{} processes in {:.1} s; {} requests, {} failed {:?}",
                    p.replaced.len(),
                    p.to - p.from,
                    p.requests,
                    p.failed(),
                    p.failures
                ),
            );
            let after = r.drift_checks.iter().find(|d| d.when.contains(&p.name));
            c.check(
                format!("{b}: after the {prefix} every process runs {release}, its configuration unchanged"),
                after.is_some_and(|d| d.drifted().is_empty() && d.desired_release == *release),
                after.map_or_else(|| "no check".into(), |d| format!("drift: {}", d.summary())),
            );
        }
        let found = r.drift_checks.iter().find(|d| d.when.contains("hand changes"));
        // Sorted by process, as the check lists them.
        let mut expected: Vec<String> =
            r.pets.iter().map(|p| format!("{} ({})", p.process, p.expected_drift)).collect();
        expected.sort();
        c.check(
            format!("{b}: the drift check finds exactly the processes changed by hand, and why"),
            found.is_some_and(|d| d.summary() == expected.join(", ")),
            format!("found {}; changed: {}", found.map_or("nothing".into(), |d| d.summary()), expected.join(", ")),
        );
        let cleared = r.drift_checks.last();
        c.check(
            format!("{b}: replacing the pets (not patching them) clears the drift"),
            cleared.is_some_and(|d| d.when.contains("replacing the pets") && d.drifted().is_empty()),
            cleared.map_or_else(|| "no check".into(), |d| format!("{}: drift {}", d.when, d.summary())),
        );
        c.check(
            format!("{b}: 0 failed requests over the whole run"),
            r.failed() == 0 && r.requests > 0,
            format!("{} requests at {} operations/s, {} failed {:?}", r.requests, r.rate, r.failed(), r.failures),
        );
    }
    c
}

fn per_s(v: f64) -> String {
    format!("{v:.0}/s")
}

fn secs(v: f64) -> String {
    format!("{v:.0} s")
}

/// `user-1` → `u1`, for band labels.
fn tag(id: &str) -> String {
    let (service, replica) = id.rsplit_once('-').unwrap_or((id, ""));
    format!("{}{replica}", service.chars().next().unwrap_or('?'))
}

fn timeline(r: &BuildRun) -> String {
    let bands: Vec<Band> = r
        .phases
        .iter()
        .flat_map(|p| p.replaced.iter().map(|x| Band { from: x.from, to: x.to, label: tag(&x.id) }))
        .collect();
    let chart = LineChart {
        title: format!("{}: requests and failed requests per second; shaded: a process being replaced", r.build),
        x_label: "seconds".into(),
        y_label: "per second".into(),
        series: vec![
            LineSeries {
                name: "requests".into(),
                points: r.per_second.iter().map(|(s, n, _)| (*s, *n as f64)).collect(),
            },
            LineSeries {
                name: "failed".into(),
                points: r.per_second.iter().map(|(s, _, f)| (*s, *f as f64)).collect(),
            },
        ],
        y_scale: Scale::Linear,
        x_format: secs,
        y_format: per_s,
        threshold: None,
    };
    line_chart_with_bands(&chart, &bands)
}

fn section(r: &BuildRun) -> Section {
    let mut s = Section::new(format!("{}: two replicas of every process", r.build));
    s.paragraph(Text::markup(&format!(
        "Release A is **{}**, release B **{}**: the same commit, another identity. The workload ran at {} operations per second (careful clients: placements, cancellations, top-ups and reads) from before the first replacement to after the last.",
        r.release_a, r.release_b, r.rate
    )));
    s.chart(format!("{}: timeline", r.build), timeline(r));
    let mut t = Table::new(&["phase", "processes", "took", "requests", "failed"]);
    for p in &r.phases {
        t.rows.push(vec![
            p.name.clone(),
            p.replaced.iter().map(|x| x.id.as_str()).collect::<Vec<_>>().join(", "),
            format!("{:.1} s", p.to - p.from),
            p.requests.to_string(),
            p.failed().to_string(),
        ]);
    }
    s.table(t);
    let mut t = Table::new(&["phase", "process", "out of service", "start to ready", "the old process"]);
    for p in &r.phases {
        for x in &p.replaced {
            t.rows.push(vec![
                p.name.clone(),
                x.id.clone(),
                format!("{:.1}–{:.1} s ({:.1} s)", x.from, x.to, x.to - x.from),
                format!("{:.2} s", x.start_to_ready_s),
                x.exit.clone(),
            ]);
        }
    }
    s.push(Block::Subheading("Every replacement".into()));
    s.table(t);
    if !r.failed_attempts.is_empty() {
        s.push(Block::Subheading("Every failed request".into()));
        let mut t = Table::new(&["sent at", "operation", "answer", "what the client saw"]);
        for a in &r.failed_attempts {
            t.rows.push(vec![
                format!("{:.2} s", a.at),
                format!("{:?}", a.kind),
                a.outcome.label(),
                a.detail.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        s.table(t);
    }
    s.push(Block::Subheading("The drift check".into()));
    let pets: Vec<String> = r.pets.iter().map(|p| format!("**{}** was {}", p.process, p.change)).collect();
    s.paragraph(Text::markup(&format!(
        "By hand, behind the desired state's back: {}. The check reads `build_info` and `config_info` from every process's `/metrics` and compares them with the desired state.",
        pets.join("; ")
    )));
    let mut t = Table::new(&["after", "desired release", "drift found"]);
    for d in &r.drift_checks {
        t.rows.push(vec![d.when.clone(), d.desired_release.clone(), d.summary()]);
    }
    s.table(t);
    if let Some(found) = r.drift_checks.iter().find(|d| d.when.contains("hand changes")) {
        let mut t = Table::new(&["process", "release", "config fingerprint", "desired fingerprint", "drift"]);
        for p in &found.processes {
            t.rows.push(vec![
                p.process.clone(),
                p.release.clone(),
                p.fingerprint.clone(),
                p.expected_fingerprint.clone(),
                if p.drift.is_empty() { "-".into() } else { p.drift.clone() },
            ]);
        }
        s.paragraph(Text::plain("What the check saw after the hand changes:"));
        s.table(t);
    }
    s
}

/// The whole report.
pub fn document(results: &Results, checks: &Checks, args: &LabArgs, started: &str, took_s: f64) -> Document {
    let mut doc = Document::new("Rollout and rollback: cattle, not pets");
    let text = if checks.all_passed() {
        "Every process was replaced by a new release one at a time, and rolled back the same way, with 0 failed requests; the drift check found exactly the processes changed by hand, and replacing them cleared it."
    } else if results.self_test {
        "Self-test: both replicas of each service were stopped at once (maxUnavailable 100 %), and the lab caught what that costs: see the failed checks."
    } else {
        "At least one check failed: see below."
    };
    doc.lead.push(verdict(checks.all_passed(), text));
    let mut t = Table::new(&[
        "build",
        "requests",
        "failed",
        "rollout A → B",
        "rollback B → A",
        "drift found",
        "after replacing",
    ]);
    for r in &results.runs {
        let took = |prefix: &str| {
            r.phase(prefix).map_or("-".into(), |p| format!("{:.1} s ({} failed)", p.to - p.from, p.failed()))
        };
        let found = r.drift_checks.iter().find(|d| d.when.contains("hand changes")).map_or("-".into(), |d| d.summary());
        t.rows.push(vec![
            r.build.into(),
            r.requests.to_string(),
            r.failed().to_string(),
            took("rollout"),
            took("rollback"),
            found,
            r.drift_checks.last().map_or("-".into(), |d| d.summary()),
        ]);
    }
    doc.lead.push(Block::Table(t));
    doc.lead.push(Block::Paragraph(Text::plain(format!(
        "Release B was built from the same code with another TWINSHOP_RELEASE in {:.0} s (only the binaries' main.rs units recompile).",
        results.build_b_s
    ))));
    for r in &results.runs {
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
    use crate::faults::workload::{Attempt, OpKind, Outcome};

    fn run(failed_attempts: Vec<Attempt>) -> BuildRun {
        BuildRun {
            build: "microservices",
            release_a: "a".into(),
            release_b: "a-b".into(),
            rate: 25.0,
            phases: Vec::new(),
            drift_checks: Vec::new(),
            pets: Vec::new(),
            per_second: vec![(0.0, 25, 0), (1.0, 25, failed_attempts.len())],
            requests: 50,
            failures: crate::faults::rolling::failures(&failed_attempts),
            failed_attempts,
            duration_s: 2.0,
        }
    }

    fn failed_rows(s: &Section) -> Option<Vec<Vec<String>>> {
        let at = s.blocks.iter().position(|b| matches!(b, Block::Subheading(h) if h == "Every failed request"))?;
        match s.blocks.get(at + 1) {
            Some(Block::Table(t)) => Some(t.rows.clone()),
            _ => None,
        }
    }

    #[test]
    fn every_failed_request_is_listed_with_what_the_client_saw() {
        let failed = Attempt {
            kind: OpKind::Place,
            at: 1.25,
            latency_ms: 3.0,
            outcome: Outcome::NoAnswer("transport"),
            detail: Some("POST /v1/orders: no answer (connection reset by peer)".into()),
        };
        let rows = failed_rows(&section(&run(vec![failed]))).expect("a table of failed requests");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0][0], "1.25 s");
        assert_eq!(rows[0][2], "transport");
        assert!(rows[0][3].contains("connection reset by peer"), "{:?}", rows[0]);
        assert!(failed_rows(&section(&run(Vec::new()))).is_none(), "no table when nothing failed");
    }
}
