//! The comparison's results (what `results.json` holds) and its headline.
//!
//! Why it exists: the first lines of the report must answer "what does
//! splitting cost and where does it go" (micro/mono throughput at the SLO,
//! CPU per order, the per-process difference); this module gathers every
//! run into a [`RunRecord`], computes the [`Headline`] with [`super::math`],
//! and writes it as text (with the report pipeline's `**strong**` markup).
//! [`super::render`] lays out the rest.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{
    GENERATOR,
    ceiling::Ceilings,
    hops::Hops,
    launch::Build,
    math::{self, SLO_P99_US, Spread},
    plan::Plan,
    procs::OTHER,
    tracemap::TraceMap,
};
use crate::{check::CheckReport, report::fmt_rps, shop::PLACE, stats::fmt_us, step::StepResult};

/// The synchronous hops on a placed order's path in the microservices
/// (the edge hop exists in both builds): the user lookup over HTTP and the
/// Charge over gRPC. Events travel after the answer.
pub const HOPS_PER_ORDER: f64 = 2.0;

/// The monolith's peak and the steps that found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    pub rps: f64,
    pub steps: Vec<StepResult>,
}

/// One run of one build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub build: Build,
    /// 0-based repeat.
    pub round: usize,
    pub steps: Vec<StepResult>,
    /// Throughput at the SLO (requests/s of the mix); 0 when no step met it.
    pub slo_rps: f64,
    /// Every step's correctness check passed.
    pub correct: bool,
    /// CPU µs per placed order by process (the place-only step).
    pub cpu_us_per_order: BTreeMap<String, f64>,
    /// Placed orders per second at most (the place-only closed step).
    pub place_peak_orders_per_s: f64,
    /// p50 of `POST /v1/orders` in the 50 % step, µs.
    pub place_p50_at_half_us: Option<f64>,
    /// MiB per process: VmHWM of what the run started, Pss of the rest.
    pub memory_mib: BTreeMap<String, f64>,
    pub started_in_s: Option<f64>,
    /// Why the run could not be carried out.
    pub error: Option<String>,
    /// The check of the whole pool after the last step (retried while
    /// effects are still on their way, up to 30 s): the run's verdict.
    #[serde(default)]
    pub final_check: Option<CheckReport>,
    /// Steps whose own check failed although the final check passed:
    /// eventually consistent effects took longer than the check's 10 s
    /// (they count as failed steps, never for the SLO).
    #[serde(default)]
    pub late_steps: Vec<String>,
}

fn extra_map(step: &StepResult, key: &str) -> BTreeMap<String, f64> {
    step.extra.get(key).and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default()
}

/// The role of a step in a run (`level`, `refine`, `place_cpu`, `place_peak`, `peak`).
pub fn kind(step: &StepResult) -> &str {
    step.extra.get("kind").and_then(|v| v.as_str()).unwrap_or("")
}

/// The mix steps of a run that count for the SLO (levels and refinement).
pub fn slo_steps(steps: &[StepResult]) -> Vec<&StepResult> {
    steps.iter().filter(|s| matches!(kind(s), "level" | "refine")).collect()
}

impl RunRecord {
    /// A run's record; `final_check` decides its verdict (without one, the
    /// last step's check, which also covers everything the pool did).
    pub fn new(
        build: Build,
        round: usize,
        steps: Vec<StepResult>,
        memory_mib: BTreeMap<String, f64>,
        final_check: Option<CheckReport>,
    ) -> Self {
        let correct = match &final_check {
            Some(c) => c.passed,
            None => steps.last().is_some_and(StepResult::correct),
        };
        let late_steps =
            if correct { steps.iter().filter(|s| !s.correct()).map(|s| s.label.clone()).collect() } else { Vec::new() };
        let slo_rps = if correct { math::slo_throughput(&slo_steps(&steps), SLO_P99_US) } else { 0.0 };
        let place = steps.iter().find(|s| kind(s) == "place_cpu");
        let cpu_us_per_order = place.map(|s| extra_map(s, "cpu_us_per_order")).unwrap_or_default();
        let place_peak_orders_per_s = steps
            .iter()
            .find(|s| kind(s) == "place_peak")
            .map_or(0.0, |s| (s.orders.confirmed + s.orders.rejected + s.orders.pending) as f64 / s.window_s.max(1e-9));
        let half = steps.iter().find(|s| s.extra.get("level").and_then(|l| l.as_f64()) == Some(0.5));
        let place_p50_at_half_us =
            half.and_then(|s| s.summary.endpoints.iter().find(|e| e.name == PLACE)).map(|e| e.latency.p50_us as f64);
        Self {
            build,
            round,
            steps,
            slo_rps,
            correct,
            cpu_us_per_order,
            place_peak_orders_per_s,
            place_p50_at_half_us,
            memory_mib,
            started_in_s: None,
            error: None,
            final_check,
            late_steps,
        }
    }

    pub fn failed(build: Build, round: usize, error: &str) -> Self {
        Self {
            error: Some(error.to_owned()),
            correct: false,
            ..Self::new(build, round, Vec::new(), BTreeMap::new(), None)
        }
    }

    /// The CPU per placed order of the system under test (generator and
    /// unattributed machine time left out).
    pub fn system_cpu_us_per_order(&self) -> f64 {
        math::total(&self.cpu_us_per_order, &[GENERATOR, OTHER])
    }
}

/// The machine the comparison ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub postgres: String,
}

impl Machine {
    pub fn read() -> Self {
        let file = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = file("/proc/cpuinfo");
        let meminfo = file("/proc/meminfo");
        let postgres = std::process::Command::new("psql")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        Self {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            cpu: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1).map(|s| s.trim().to_owned()))
                .unwrap_or_else(|| "unknown".to_owned()),
            memory_gib: meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:")?.split_whitespace().next()?.parse::<f64>().ok())
                .map_or(0.0, |kib| kib / 1024.0 / 1024.0),
            kernel: file("/proc/sys/kernel/osrelease").trim().to_owned(),
            postgres,
        }
    }
}

/// The numbers of the first lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    /// micro / mono throughput at the SLO, pair by pair.
    pub slo_ratio: Option<Spread>,
    pub slo_monolith: Option<Spread>,
    pub slo_microservices: Option<Spread>,
    /// micro / mono CPU per placed order (system under test), pair by pair.
    pub cpu_ratio: Option<Spread>,
    pub cpu_monolith_us: Option<Spread>,
    pub cpu_microservices_us: Option<Spread>,
    /// Median CPU µs per placed order by process, per build.
    pub cpu_by_process: BTreeMap<String, BTreeMap<String, f64>>,
    /// micro − mono µs per order by process, largest first.
    pub cpu_difference: Vec<(String, f64)>,
    /// Added p50 of POST /v1/orders at half load per hop (µs), pair by pair.
    pub added_us_per_hop: Option<Spread>,
    pub place_peak_monolith: Option<Spread>,
    pub place_peak_microservices: Option<Spread>,
    pub failed_runs: usize,
    /// Median CPU (cores) that no listed process took during the measured
    /// windows: other work competing with the measurement.
    pub other_cores: Option<Spread>,
}

/// Everything `compare` writes to results.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareReport {
    pub title: String,
    pub tool: String,
    pub version: String,
    pub generated_at: String,
    pub command: String,
    pub machine: Machine,
    pub plan: Plan,
    pub took_s: f64,
    pub peak: Peak,
    pub runs: Vec<RunRecord>,
    pub ceilings: Option<Ceilings>,
    pub hops: Option<Hops>,
    /// Where a placed order's time goes, from the services' spans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_map: Option<TraceMap>,
    pub headline: Headline,
    pub notes: Vec<String>,
}

fn values(runs: &[RunRecord], build: Build, f: impl Fn(&RunRecord) -> f64) -> Vec<f64> {
    let mut v: Vec<&RunRecord> = runs.iter().filter(|r| r.build == build).collect();
    v.sort_by_key(|r| r.round);
    v.into_iter().map(f).collect()
}

/// The headline of a list of runs.
pub fn headline(runs: &[RunRecord]) -> Headline {
    let (mono, micro) = (Build::Monolith, Build::Microservices);
    let slo = |b| values(runs, b, |r| r.slo_rps);
    let cpu =
        |b| values(runs, b, |r| if r.cpu_us_per_order.is_empty() { f64::NAN } else { r.system_cpu_us_per_order() });
    let half = |b| values(runs, b, |r| r.place_p50_at_half_us.unwrap_or(f64::NAN));
    let by_process = |b: Build| {
        let maps: Vec<_> = runs.iter().filter(|r| r.build == b).map(|r| r.cpu_us_per_order.clone()).collect();
        math::median_maps(&maps)
    };
    let (mono_cpu, micro_cpu) = (by_process(mono), by_process(micro));
    let added: Vec<f64> =
        half(micro).iter().zip(half(mono)).map(|(s, m)| (s - m) / HOPS_PER_ORDER).filter(|v| v.is_finite()).collect();
    Headline {
        slo_ratio: Spread::of(&math::pair_ratios(&slo(micro), &slo(mono))),
        slo_monolith: Spread::of(&slo(mono)),
        slo_microservices: Spread::of(&slo(micro)),
        cpu_ratio: Spread::of(&math::pair_ratios(&cpu(micro), &cpu(mono))),
        cpu_monolith_us: Spread::of(&cpu(mono)),
        cpu_microservices_us: Spread::of(&cpu(micro)),
        cpu_difference: math::differences(&mono_cpu, &micro_cpu),
        cpu_by_process: BTreeMap::from([(mono.name().to_owned(), mono_cpu), (micro.name().to_owned(), micro_cpu)]),
        added_us_per_hop: Spread::of(&added),
        place_peak_monolith: Spread::of(&values(runs, mono, |r| r.place_peak_orders_per_s)),
        place_peak_microservices: Spread::of(&values(runs, micro, |r| r.place_peak_orders_per_s)),
        failed_runs: runs.iter().filter(|r| !r.correct).count(),
        other_cores: Spread::of(
            &runs
                .iter()
                .flat_map(|r| r.steps.iter())
                .filter_map(|s| extra_map(s, "cpu_ms").get(OTHER).map(|ms| ms / 1e3 / s.window_s.max(1e-3)))
                .collect::<Vec<_>>(),
        ),
    }
}

impl CompareReport {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        plan: Plan,
        command: String,
        peak: Peak,
        runs: Vec<RunRecord>,
        ceilings: Option<Ceilings>,
        hops: Option<Hops>,
        notes: Vec<String>,
        took_s: f64,
    ) -> Self {
        Self {
            title: "twinshop: monolith vs microservices".to_owned(),
            tool: env!("CARGO_PKG_NAME").to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            generated_at: OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
            command,
            machine: Machine::read(),
            plan,
            took_s,
            peak,
            headline: headline(&runs),
            runs,
            ceilings,
            hops,
            trace_map: None,
            notes,
        }
    }

    /// The same results with every run's numbers and the headline
    /// computed again (by this version's rules).
    pub fn recomputed(mut self) -> Self {
        self.runs = self
            .runs
            .into_iter()
            .map(|r| {
                let rebuilt = RunRecord::new(r.build, r.round, r.steps, r.memory_mib, r.final_check);
                RunRecord {
                    started_in_s: r.started_in_s,
                    correct: rebuilt.correct && r.error.is_none(),
                    error: r.error,
                    ..rebuilt
                }
            })
            .collect();
        self.headline = headline(&self.runs);
        self
    }

    pub fn all_correct(&self) -> bool {
        self.runs.iter().all(|r| r.correct) && self.peak.steps.iter().all(StepResult::correct)
    }

    /// The answer, in a few lines of Markdown (also printed at the end).
    pub fn headline_text(&self) -> String {
        let h = &self.headline;
        let mut out = String::new();
        let rps = |v: f64| fmt_rps(v);
        let us = |v: f64| fmt_us(v);
        let _ = writeln!(
            out,
            "**Throughput at the SLO** (p99 ≤ 25 ms, no errors, correctness check passed; the default mix): \
             **microservices / monolith = {}** over {} pair(s); monolith {} rps, microservices {} rps.",
            h.slo_ratio.map_or("n/a".to_owned(), |s| s.ratio_text()),
            h.slo_ratio.map_or(0, |s| s.n),
            h.slo_monolith.map_or("n/a".to_owned(), |s| s.text(rps)),
            h.slo_microservices.map_or("n/a".to_owned(), |s| s.text(rps)),
        );
        let _ = writeln!(
            out,
            "\n**CPU per placed order** (all processes of the system under test, place-only step): \
             **microservices / monolith = {}**; monolith {}, microservices {}.",
            h.cpu_ratio.map_or("n/a".to_owned(), |s| s.ratio_text()),
            h.cpu_monolith_us.map_or("n/a".to_owned(), |s| s.text(us)),
            h.cpu_microservices_us.map_or("n/a".to_owned(), |s| s.text(us)),
        );
        let diffs: Vec<String> = h
            .cpu_difference
            .iter()
            .filter(|(p, d)| d.abs() >= 1.0 && p != OTHER)
            .map(|(p, d)| format!("{p} {}{}", if *d >= 0.0 { "+" } else { "−" }, fmt_us(d.abs())))
            .collect();
        let _ = writeln!(
            out,
            "\n**Where the difference goes** (CPU per placed order, microservices − monolith, medians): {}.",
            if diffs.is_empty() { "n/a".to_owned() } else { diffs.join(", ") }
        );
        if let Some(c) = &self.ceilings {
            let _ = writeln!(
                out,
                "\n**Database ceiling** (pgbench, the same SQL): monolith {:.0} orders/s, microservices {:.0}{} \
                 orders/s: **structural bound micro/mono = {:.2}×**. Placed orders/s at most (place-only, closed): \
                 monolith {} = {} of its ceiling, microservices {} = {}.",
                c.monolith.orders_per_s,
                c.microservices.orders_per_s,
                if c.microservices.lower_bound { " (lower bound)" } else { "" },
                c.ratio(),
                h.place_peak_monolith.map_or("n/a".to_owned(), |s| s.text(rps)),
                fraction(h.place_peak_monolith, c.monolith.orders_per_s),
                h.place_peak_microservices.map_or("n/a".to_owned(), |s| s.text(rps)),
                fraction(h.place_peak_microservices, c.microservices.orders_per_s),
            );
        }
        let mut hop = format!(
            "\n**Hop cost**: the p50 of POST /v1/orders at half load is {} higher per hop in the microservices \
             ({} synchronous hops per order)",
            h.added_us_per_hop.map_or("n/a".to_owned(), |s| s.text(fmt_signed_us)),
            HOPS_PER_ORDER
        );
        if let Some(hops) = &self.hops {
            let probes: Vec<String> = hops
                .probes
                .iter()
                .map(|p| {
                    let mut text = format!(
                        "{} p50 {} ({} CPU of {} per call)",
                        p.name,
                        us(p.p50_us as f64),
                        us(p.callee_cpu_us),
                        p.callee
                    );
                    if let (Some(f), Some(r)) = (p.floor.as_deref(), p.floor_ratios()) {
                        let _ = write!(
                            text,
                            " = **{:.2}× the floor's CPU** ({}), p50 {:.2}×, p99 {:.2}×",
                            r.callee_cpu,
                            us(f.callee_cpu_us),
                            r.p50,
                            r.p99
                        );
                    }
                    text
                })
                .collect();
            let _ = write!(hop, "; probed directly at {:.0}/s: {}", hops.rate, probes.join(", "));
        }
        hop.push('.');
        out.push_str(&hop);
        if let Some(o) = h.other_cores {
            let _ = write!(
                out,
                "\n\n**Other load on the machine** during the measured windows (busy CPU no listed process took): \
                 {} cores (median, range over steps){}.",
                o.text(|v| format!("{v:.2}")),
                if o.median > 0.2 { ": the numbers are disturbed by other work" } else { "" }
            );
        }
        let _ = writeln!(
            out,
            "\n\n**Correctness**: {}.",
            if h.failed_runs == 0 {
                let late: Vec<String> = self.runs.iter().flat_map(|r| r.late_steps.iter().cloned()).collect();
                let mut text = format!("PASSED in all {} runs (the final check of every run's pool)", self.runs.len());
                if !late.is_empty() {
                    text.push_str(&format!(
                        "; but {} step(s) failed their own check because eventually consistent effects had not \
                         arrived 10 s after the step (they did by the final check): {}. Those steps count as \
                         failed for the SLO",
                        late.len(),
                        late.join("; ")
                    ));
                }
                text
            } else {
                format!("FAILED in {} of {} runs: their numbers do not count", h.failed_runs, self.runs.len())
            }
        );
        out
    }
}

/// A duration that may be negative (a difference): `−1.20ms`.
pub fn fmt_signed_us(us: f64) -> String {
    if us < 0.0 { format!("−{}", fmt_us(-us)) } else { fmt_us(us) }
}

fn fraction(value: Option<Spread>, ceiling: f64) -> String {
    match value {
        Some(v) if ceiling > 0.0 => format!("{:.2}×", v.median / ceiling),
        _ => "n/a".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        compare::render::{document, latency_curve},
        report::{html, markdown, tests::sample_step},
    };

    fn run(build: Build, round: usize, rates: &[(f64, u64)], cpu: &[(&str, f64)]) -> RunRecord {
        let mut steps: Vec<StepResult> = rates
            .iter()
            .map(|(rate, p99)| {
                let mut s = sample_step("s", *rate, p99 / 4, true);
                s.summary.overall.errors = 0;
                s.extra.insert("kind".into(), serde_json::json!("level"));
                s
            })
            .collect();
        steps[0].extra.insert("level".into(), serde_json::json!(0.5));
        let mut place = sample_step("p", 50.0, 1_000, true);
        place.extra.insert("kind".into(), serde_json::json!("place_cpu"));
        let map: BTreeMap<String, f64> = cpu.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
        place.extra.insert("cpu_us_per_order".into(), serde_json::json!(map));
        steps.push(place);
        RunRecord::new(build, round, steps, BTreeMap::from([("postgres".to_owned(), 40.0)]), None)
    }

    fn sample_runs() -> Vec<RunRecord> {
        let mono = |round, top| {
            run(
                Build::Monolith,
                round,
                &[(100.0, 2_000), (200.0, 3_000), (300.0, top)],
                &[("monolith", 300.0), ("postgres", 200.0), (GENERATOR, 90.0)],
            )
        };
        let micro = |round, cpu| {
            run(
                Build::Microservices,
                round,
                &[(100.0, 4_000), (200.0, 20_000), (300.0, 90_000)],
                &[("order-service", cpu), ("user-service", 100.0), ("postgres", 220.0), (GENERATOR, 95.0)],
            )
        };
        vec![mono(0, 9_000), micro(0, 300.0), mono(1, 30_000), micro(1, 280.0), mono(2, 9_000), micro(2, 320.0)]
    }

    #[test]
    fn the_headline_pairs_runs_by_round() {
        let h = headline(&sample_runs());
        let slo = h.slo_ratio.expect("ratios");
        // Pairs: 200/300, 200/200, 200/300.
        assert!((slo.median - 2.0 / 3.0).abs() < 1e-9 && slo.max == 1.0 && slo.n == 3);
        assert_eq!(h.slo_monolith.map(|s| s.median), Some(300.0));
        // CPU: micro 300+100+220 = 620 (generator left out) vs mono 500.
        let cpu = h.cpu_ratio.expect("cpu");
        assert!((cpu.median - 620.0 / 500.0).abs() < 1e-9);
        // The largest differences first: the monolith's 300 µs went to the order service's 300.
        let top: Vec<(&str, f64)> = h.cpu_difference.iter().take(2).map(|(p, d)| (p.as_str(), *d)).collect();
        assert!(top.contains(&("order-service", 300.0)) && top.contains(&("monolith", -300.0)), "{top:?}");
        assert_eq!(h.failed_runs, 0);
    }

    #[test]
    fn a_failed_check_zeroes_the_run_and_is_counted() {
        let mut runs = sample_runs();
        let mut bad = run(Build::Microservices, 0, &[(100.0, 2_000)], &[]);
        bad.steps[0].check.as_mut().expect("check").passed = false;
        // The last step's check passed: the first one's effects were late, not lost.
        let late = RunRecord::new(bad.build, bad.round, bad.steps.clone(), BTreeMap::new(), None);
        assert!(late.correct && late.late_steps == ["s"] && late.slo_rps == 0.0, "{late:?}");
        let failing = CheckReport { passed: false, ..CheckReport::default() };
        let bad = RunRecord::new(bad.build, bad.round, bad.steps, BTreeMap::new(), Some(failing));
        assert!(!bad.correct && bad.slo_rps == 0.0 && bad.late_steps.is_empty());
        runs[1] = bad;
        assert_eq!(headline(&runs).failed_runs, 1);
        let failed = RunRecord::failed(Build::Monolith, 3, "could not start");
        assert!(!failed.correct && failed.error.is_some());
    }

    #[test]
    fn the_report_opens_with_the_answer_and_draws_its_charts() {
        let plan = Plan::quick(3);
        let report = CompareReport::new(
            plan,
            "loadtest compare --quick".into(),
            Peak { rps: 400.0, steps: vec![] },
            sample_runs(),
            None,
            None,
            vec![],
            60.0,
        );
        let doc = document(&report);
        let md = markdown::render(&doc);
        let first = md.lines().nth(2).unwrap_or_default();
        assert!(first.starts_with("**Throughput at the SLO**") && first.contains("0.67× (0.67–1.00×)"), "{first}");
        assert!(md.contains("**Where the difference goes**") && md.contains("order-service +300µs"));
        let html = html::render(&doc);
        assert!(html.contains("<b>Throughput at the SLO</b>") && html.contains("Latency vs offered load"));
        assert!(html.contains("CPU per placed order by process") && !html.contains("<script"));
        let curve = latency_curve(&report.runs);
        assert_eq!(curve.len(), 4);
        assert_eq!(curve[1].points, [(100.0, 2_000.0), (200.0, 3_000.0), (300.0, 9_000.0)]);
    }
}
