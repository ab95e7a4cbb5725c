//! The twelve-factor table, on the terminal and in the report.

use std::fmt::Write as _;

use twinshop_loadtest::report::doc::{Block, Document, Section, Table, Text};

use super::BuildRows;
use crate::common::{LabArgs, provenance, say, verdict};

/// The table of one build on the terminal.
pub fn print(r: &BuildRows) {
    let mut out = format!("twelve factors, {}:\n", r.build);
    for row in &r.rows {
        let _ = writeln!(
            out,
            "  {} {:<24} {}\n       evidence: {}",
            if row.passed { "PASS" } else { "FAIL" },
            row.factor,
            row.checked,
            row.evidence
        );
    }
    say(&out);
}

fn table(r: &BuildRows) -> Table {
    let mut t = Table::new(&["factor", "what was checked", "evidence", "verdict"]);
    for row in &r.rows {
        t.rows.push(vec![
            row.factor.to_owned(),
            row.checked.clone(),
            row.evidence.clone(),
            if row.passed { "PASSED".into() } else { "FAILED".into() },
        ]);
    }
    t
}

/// The whole report.
pub fn document(runs: &[BuildRows], args: &LabArgs, started: &str, took_s: f64) -> Document {
    let mut doc = Document::new("The twelve factors, checked one by one");
    let passed: usize = runs.iter().map(|r| r.rows.iter().filter(|x| x.passed).count()).sum();
    let total: usize = runs.iter().map(|r| r.rows.len()).sum();
    let all = passed == total && total > 0;
    doc.lead.push(verdict(
        all,
        &if all {
            format!("All twelve factors hold for {}: {passed} of {total} checks passed.", names(runs))
        } else {
            format!("{} of {total} checks failed: see the tables.", total - passed)
        },
    ));
    let mut t = Table::new(&["build", "passed", "took"]);
    for r in runs {
        t.rows.push(vec![
            r.build.to_owned(),
            format!("{} of {}", r.rows.iter().filter(|x| x.passed).count(), r.rows.len()),
            format!("{:.0} s", r.duration_s),
        ]);
    }
    doc.lead.push(Block::Table(t));
    doc.lead.push(Block::Paragraph(Text::plain(
        "Each build ran with two replicas of every process behind the edge, on the lab's own PostgreSQL and Redis (the machine's installed servers, in a private data folder) and the machine's RabbitMQ. Factors I, II and X do not depend on the build and were checked once.",
    )));
    for r in runs {
        let mut s = Section::new(format!("{}: the twelve factors", r.build));
        s.table(table(r));
        doc.push(s);
    }
    doc.push(provenance(args, started, took_s));
    doc
}

fn names(runs: &[BuildRows]) -> String {
    runs.iter().map(|r| r.build).collect::<Vec<_>>().join(" and ")
}
