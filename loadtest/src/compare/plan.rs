//! What a comparison will run and how long it should take, decided before
//! anything starts and printed first.
//!
//! Why it exists: the comparison must fit a time budget (30 minutes full,
//! a few minutes `--quick`) on a 2-core machine, so the budget is planned
//! explicitly, steps × duration × repeats, and the estimate is printed and
//! recorded with the results. Pure data and arithmetic; tested below.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::ceiling::CeilingConfig;

/// Everything a comparison runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub quick: bool,
    /// Runs of each build, interleaved A B A B ...
    pub repeats: usize,
    /// Open-model steps, as fractions of the monolith's peak.
    pub levels: Vec<f64>,
    /// One more step per run between the highest passing and the lowest failing level.
    pub refine: bool,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// Closed-model users of the peak-finding steps (monolith, fresh instance).
    pub peak_users: Vec<usize>,
    pub peak_duration_s: f64,
    /// The place-only step for CPU per order, at this fraction of the monolith's peak.
    pub place_level: f64,
    pub place_duration_s: f64,
    /// Closed-model users of the place-only peak step (orders/s against the ceiling).
    pub place_peak_users: usize,
    pub place_peak_duration_s: f64,
    pub setup_users: usize,
    pub ceiling: CeilingConfig,
    pub hop_rate: f64,
    /// Seconds of each probe against ours; the floor gets as many, interleaved.
    pub hop_duration_s: f64,
    /// Rounds the probes are interleaved in (ours, floor, ours, floor, ...).
    #[serde(default = "one")]
    pub hop_rounds: usize,
    /// Run each build once more with spans exported, for the trace map.
    #[serde(default)]
    pub trace_map: bool,
}

fn one() -> usize {
    1
}

/// Seconds we expect for what is not load: starting a build (migrations,
/// ready, edge), setting up the pool (argon2 hashes), stopping and
/// dropping databases; and a correctness check after a step.
const START_S: f64 = 8.0;
const SETUP_S: f64 = 6.0;
const STOP_S: f64 = 3.0;
const CHECK_S: f64 = 2.0;
const CEILING_PREP_S: f64 = 10.0;

impl Plan {
    pub fn full(repeats: usize) -> Self {
        Self {
            quick: false,
            repeats,
            levels: vec![0.25, 0.5, 0.7, 0.85, 1.0],
            refine: true,
            warmup_s: 3.0,
            duration_s: 15.0,
            peak_users: vec![16, 48],
            peak_duration_s: 10.0,
            place_level: 0.25,
            place_duration_s: 10.0,
            place_peak_users: 32,
            place_peak_duration_s: 8.0,
            setup_users: 100,
            ceiling: CeilingConfig { duration_s: 8.0, bisect: 3, sweep_clients: true },
            hop_rate: 200.0,
            hop_duration_s: 8.0,
            hop_rounds: 4,
            trace_map: true,
        }
    }

    pub fn quick(repeats: usize) -> Self {
        Self {
            quick: true,
            repeats,
            levels: vec![0.25, 0.5, 0.7, 0.85, 1.0],
            refine: false,
            warmup_s: 1.0,
            duration_s: 5.0,
            peak_users: vec![32],
            peak_duration_s: 5.0,
            place_level: 0.25,
            place_duration_s: 5.0,
            place_peak_users: 32,
            place_peak_duration_s: 4.0,
            setup_users: 40,
            ceiling: CeilingConfig { duration_s: 5.0, bisect: 0, sweep_clients: false },
            hop_rate: 200.0,
            hop_duration_s: 4.0,
            hop_rounds: 2,
            trace_map: true,
        }
    }

    /// Seconds of one step of `duration` (with warm-up and check).
    fn step_s(&self, duration: f64) -> f64 {
        self.warmup_s + duration + CHECK_S
    }

    /// The expected duration of each part, in seconds.
    pub fn budget(&self) -> Vec<(String, f64)> {
        let runs = 2 * self.repeats;
        let levels = self.levels.len() + usize::from(self.refine);
        let per_run = START_S
            + SETUP_S
            + levels as f64 * self.step_s(self.duration_s)
            + self.step_s(self.place_duration_s)
            + self.step_s(self.place_peak_duration_s)
            + STOP_S;
        let c = &self.ceiling;
        vec![
            (
                format!("monolith peak: {} closed step(s) × {:.0} s", self.peak_users.len(), self.peak_duration_s),
                START_S + SETUP_S + self.peak_users.len() as f64 * self.step_s(self.peak_duration_s) + STOP_S,
            ),
            (
                format!(
                    "{runs} runs (2 builds × {} repeats), each: {} mix step(s) × {:.0} s + place-only {:.0} s + \
                     place-only peak {:.0} s, warm-up {:.0} s each",
                    self.repeats,
                    levels,
                    self.duration_s,
                    self.place_duration_s,
                    self.place_peak_duration_s,
                    self.warmup_s
                ),
                runs as f64 * per_run,
            ),
            (
                format!(
                    "hop probes: 3 × {:.0} s, and as long against the floor, in {} interleaved round(s)",
                    self.hop_duration_s, self.hop_rounds
                ),
                6.0 * (1.0 + self.hop_duration_s),
            ),
            (
                format!(
                    "trace map: each build once more, {} traced mix step(s) × {:.0} s",
                    if self.trace_map { super::tracemap::LEVELS.len() } else { 0 },
                    self.duration_s
                ),
                if self.trace_map {
                    2.0 * (START_S
                        + SETUP_S
                        + super::tracemap::LEVELS.len() as f64 * (self.warmup_s + self.duration_s)
                        + STOP_S)
                } else {
                    0.0
                },
            ),
            (
                format!("database ceilings: pgbench {:.0} s × {}", c.duration_s, 2 * c.clients().len() + c.bisect),
                CEILING_PREP_S + (2 * c.clients().len() + c.bisect) as f64 * (c.duration_s + 1.0),
            ),
        ]
    }

    /// The whole budget, in seconds.
    pub fn total_s(&self) -> f64 {
        self.budget().iter().map(|(_, s)| s).sum()
    }

    /// The budget as printed at the start.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "plan ({}): levels {} of the monolith's peak, SLO p99 ≤ 25 ms\n",
            if self.quick { "quick" } else { "full" },
            self.levels.iter().map(|l| format!("{:.0} %", l * 100.0)).collect::<Vec<_>>().join(", ")
        );
        for (what, s) in self.budget() {
            let _ = writeln!(out, "  {:>6}  {what}", fmt_minutes(s));
        }
        let _ = write!(
            out,
            "  {:>6}  expected in all (plus the release build if it is not up to date)",
            fmt_minutes(self.total_s())
        );
        out
    }
}

/// `3m05s`.
pub fn fmt_minutes(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    format!("{}m{:02}s", s / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_plan_fits_thirty_minutes_and_quick_a_few() {
        let full = Plan::full(3);
        assert!(full.total_s() <= 25.0 * 60.0, "full: {}", full.describe());
        assert!(full.repeats >= 3 && full.levels.len() == 5);
        let quick = Plan::quick(1);
        assert!(quick.total_s() <= 5.0 * 60.0, "quick: {}", quick.describe());
    }

    #[test]
    fn the_budget_grows_with_the_repeats() {
        let (three, four) = (Plan::full(3).total_s(), Plan::full(4).total_s());
        let per_pair = four - three;
        assert!(per_pair > 2.0 * 5.0 * 15.0, "two runs of five 15 s steps at least: {per_pair}");
    }

    #[test]
    fn minutes_read_naturally() {
        assert_eq!(fmt_minutes(185.4), "3m05s");
        assert_eq!(fmt_minutes(-1.0), "0m00s");
    }
}
