//! The Markdown report: the verdict first, then one table of steps, then
//! each step's endpoints, errors, generator cost and correctness check.
//!
//! Why it exists: it is what gets pasted into a README or a pull request,
//! so it reads top-down and needs no pictures.

use std::fmt::Write as _;

use super::{RunReport, Table, check_verdict, endpoints_table, errors_table, generator_note, steps_table};
use crate::stats::fmt_us;

/// A table as GitHub-flavoured Markdown (pipes in cells escaped).
pub fn table(t: &Table) -> String {
    let cell = |s: &String| s.replace('|', "\\|");
    let mut out = format!("| {} |\n", t.headers.iter().map(cell).collect::<Vec<_>>().join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(t.headers.len())));
    for row in &t.rows {
        out.push_str(&format!("| {} |\n", row.iter().map(cell).collect::<Vec<_>>().join(" | ")));
    }
    out
}

/// The verdict line: how many steps stayed correct.
pub fn verdict(report: &RunReport) -> String {
    let failed = report.steps.iter().filter(|s| !s.correct()).count();
    if failed == 0 {
        format!("**Correctness: PASSED** ({} step(s); every checked invariant held).", report.steps.len())
    } else {
        format!(
            "**Correctness: FAILED** in {failed} of {} step(s): their numbers do not count, whatever their speed.",
            report.steps.len()
        )
    }
}

/// The whole report.
pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", report.title);
    let _ = writeln!(out, "Generated {} by {} {}.\n", report.generated_at, report.tool, report.version);
    let _ = writeln!(out, "{}\n", verdict(report));
    let _ = writeln!(
        out,
        "Latency is measured from each request's *intended* send time in the open model (coordinated-omission \
         free) and from its actual send in the closed model. Errors are HTTP 4xx/5xx plus requests without an \
         answer.\n"
    );
    let _ = writeln!(out, "## Steps\n\n{}", table(&steps_table(&report.steps)));
    for step in &report.steps {
        let _ = writeln!(out, "## {}\n", step.label);
        let _ = writeln!(
            out,
            "{} against `{}`, {} s measured after {} s warm-up (window {:.1} s, at most {} requests), mix `{}`, \
             seed {}; {} users set up in {:.1} s with {} cents each; started {}.\n",
            step.model.describe(),
            step.base_url,
            step.duration_s,
            step.warmup_s,
            step.window_s,
            step.max_requests,
            step.mix,
            step.seed,
            step.setup.users,
            step.setup_s,
            step.setup.wallet_cents,
            step.started_at
        );
        let _ = writeln!(out, "{}", table(&endpoints_table(step)));
        let service = &step.summary.overall.service_time;
        let _ = writeln!(
            out,
            "Service time (from the actual send): p50 {}, p99 {}, max {}.\n",
            fmt_us(service.p50_us as f64),
            fmt_us(service.p99_us as f64),
            fmt_us(service.max_us as f64)
        );
        let errors = errors_table(step);
        if !errors.rows.is_empty() {
            let _ = writeln!(out, "Errors:\n\n{}", table(&errors));
        }
        let _ = writeln!(out, "{}\n", generator_note(step));
        match &step.check {
            Some(c) => {
                let statuses: Vec<String> = c.orders_by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
                let _ = writeln!(
                    out,
                    "Correctness check: **{}**: {} users, {} orders ({}), {} ledger entries, in {:.1} s.\n",
                    check_verdict(step),
                    c.users_checked,
                    c.orders_checked,
                    if statuses.is_empty() { "none".to_owned() } else { statuses.join(", ") },
                    c.ledger_entries,
                    c.seconds
                );
                for v in &c.violations {
                    let _ = writeln!(out, "- {v}");
                }
                if c.violation_count > c.violations.len() {
                    let _ = writeln!(out, "- … and {} more", c.violation_count - c.violations.len());
                }
                if !c.violations.is_empty() {
                    out.push('\n');
                }
            }
            None => {
                let _ = writeln!(out, "Correctness check: not run.\n");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample_step;

    #[test]
    fn the_report_opens_with_the_verdict_and_lists_violations() {
        let report = RunReport::new("t", &[sample_step("a", 100.0, 1_000, true), sample_step("b", 200.0, 900, false)]);
        let md = render(&report);
        assert!(md.starts_with("# t\n"));
        let verdict_at = md.find("**Correctness: FAILED** in 1 of 2").expect("verdict");
        assert!(verdict_at < md.find("## Steps").expect("steps"));
        assert!(md.contains("- u: money not conserved"));
        assert!(md.contains("| POST /v1/orders | HTTP 503 | 2 |"));
    }

    #[test]
    fn pipes_in_cells_are_escaped() {
        let t = Table { headers: vec!["a".into()], rows: vec![vec!["x|y".into()]] };
        assert_eq!(table(&t), "| a |\n|---|\n| x\\|y |\n");
    }
}
