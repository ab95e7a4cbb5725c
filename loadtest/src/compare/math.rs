//! The numbers a comparison reports, as pure functions: medians and
//! ranges over repeats, ratios per pair of runs, the throughput at the SLO
//! of a step series, the next step to refine it, and where a difference in
//! CPU per order goes.
//!
//! Why it exists: these few lines decide the headline, so they live apart
//! from any I/O and are unit-tested on their own. Depends on nothing but
//! [`StepResult`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::step::StepResult;

/// The SLO every step is held to: p99 of all requests at most this.
pub const SLO_P99_US: u64 = 25_000;

/// A median with the range it came from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// How many values (repeats) it summarises.
    pub n: usize,
}

impl Spread {
    /// `None` for no (finite) values.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Self { median: median_sorted(&v), min: v[0], max: v[v.len() - 1], n: v.len() })
    }

    /// `0.82× (0.78–0.85×)`, or just the value for one repeat.
    pub fn ratio_text(&self) -> String {
        if self.n <= 1 || (self.max - self.min).abs() < 5e-3 {
            format!("{:.2}×", self.median)
        } else {
            format!("{:.2}× ({:.2}–{:.2}×)", self.median, self.min, self.max)
        }
    }

    /// `812 (790–850)` with `format` applied to each number.
    pub fn text(&self, format: impl Fn(f64) -> String) -> String {
        if self.n <= 1 {
            format(self.median)
        } else {
            format!("{} ({}–{})", format(self.median), format(self.min), format(self.max))
        }
    }
}

/// The median of sorted values (the mean of the middle two for an even count).
fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// `a[i] / b[i]` for each pair where both exist and `b[i] > 0`.
pub fn pair_ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).filter(|(_, d)| **d > 0.0).map(|(n, d)| n / d).collect()
}

/// The throughput at the SLO of one run's open-model steps: the highest
/// offered rate whose step met the SLO (p99 ≤ `p99_us`, no errors, the
/// correctness check passed); 0 when none did.
pub fn slo_throughput(steps: &[&StepResult], p99_us: u64) -> f64 {
    steps.iter().filter(|s| s.meets_slo(p99_us)).filter_map(|s| s.offered_rps).fold(0.0, f64::max)
}

/// The rate worth one more step: halfway between the highest passing rate
/// and the lowest failing rate above it, when those two are further apart
/// than `min_gap` (a fraction of the passing rate). `None` when every step
/// passed, none did, or the bracket is already narrow.
pub fn refinement(steps: &[&StepResult], p99_us: u64, min_gap: f64) -> Option<f64> {
    let pass = slo_throughput(steps, p99_us);
    if pass <= 0.0 {
        return None;
    }
    let fail = steps
        .iter()
        .filter(|s| !s.meets_slo(p99_us))
        .filter_map(|s| s.offered_rps)
        .filter(|r| *r > pass)
        .fold(f64::INFINITY, f64::min);
    (fail.is_finite() && fail - pass > min_gap * pass).then(|| ((pass + fail) / 2.0).round())
}

/// The rate of step `level` (a fraction) of the monolith's `peak`, rounded
/// to a whole request per second.
pub fn level_rate(peak: f64, level: f64) -> f64 {
    (peak * level).round().max(1.0)
}

/// CPU microseconds per unit (`cpu_ms` per process, `units` orders or
/// requests); empty when there were no units.
pub fn per_unit(cpu_ms: &BTreeMap<String, f64>, units: u64) -> BTreeMap<String, f64> {
    if units == 0 {
        return BTreeMap::new();
    }
    cpu_ms.iter().map(|(k, ms)| (k.clone(), ms * 1e3 / units as f64)).collect()
}

/// The sum of a per-process map, leaving out the keys in `except` (e.g.
/// the generator, or "other" CPU of the machine).
pub fn total(map: &BTreeMap<String, f64>, except: &[&str]) -> f64 {
    map.iter().filter(|(k, _)| !except.contains(&k.as_str())).map(|(_, v)| v).sum()
}

/// `b − a` per process (a process missing on one side counts 0 there),
/// largest absolute difference first: where a difference goes.
pub fn differences(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out: Vec<(String, f64)> = keys
        .into_iter()
        .map(|k| (k.clone(), b.get(k).copied().unwrap_or(0.0) - a.get(k).copied().unwrap_or(0.0)))
        .collect();
    out.sort_by(|x, y| y.1.abs().total_cmp(&x.1.abs()));
    out
}

/// Per key, the median over several maps (a key missing from a map is not
/// counted for it).
pub fn median_maps(maps: &[BTreeMap<String, f64>]) -> BTreeMap<String, f64> {
    let mut by_key: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for m in maps {
        for (k, v) in m {
            by_key.entry(k.clone()).or_default().push(*v);
        }
    }
    by_key.into_iter().filter_map(|(k, v)| Spread::of(&v).map(|s| (k, s.median))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample_step;

    /// A step at `rate` with this p99 and no errors (sample steps have 2).
    fn step(rate: f64, p99_us: u64, passed: bool) -> StepResult {
        let mut s = sample_step("s", rate, p99_us / 4, passed);
        s.summary.overall.errors = 0;
        s
    }

    #[test]
    fn medians_and_ranges_cover_odd_and_even_counts_and_skip_non_numbers() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).expect("values");
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        let s = Spread::of(&[4.0, 1.0, 2.0, f64::NAN, 3.0]).expect("values");
        assert_eq!((s.median, s.n), (2.5, 4));
        assert!(Spread::of(&[]).is_none());
        assert!(Spread::of(&[f64::INFINITY]).is_none());
    }

    #[test]
    fn spreads_read_as_a_median_and_its_range() {
        let s = Spread::of(&[0.78, 0.82, 0.85]).expect("values");
        assert_eq!(s.ratio_text(), "0.82× (0.78–0.85×)");
        assert_eq!(Spread::of(&[0.8]).expect("one").ratio_text(), "0.80×");
        assert_eq!(s.text(|v| format!("{:.0}", v * 100.0)), "82 (78–85)");
    }

    #[test]
    fn ratios_are_taken_pair_by_pair_and_skip_a_zero_denominator() {
        assert_eq!(pair_ratios(&[400.0, 300.0, 100.0], &[800.0, 0.0, 200.0]), [0.5, 0.5]);
        let r = Spread::of(&pair_ratios(&[1.0, 3.0, 2.0], &[2.0, 3.0, 2.0])).expect("ratios");
        assert_eq!((r.median, r.min, r.max), (1.0, 0.5, 1.0));
    }

    #[test]
    fn the_slo_throughput_is_the_highest_rate_that_met_the_slo() {
        let steps = [step(100.0, 2_000, true), step(200.0, 9_000, true), step(300.0, 60_000, true)];
        let refs: Vec<&StepResult> = steps.iter().collect();
        assert_eq!(slo_throughput(&refs, SLO_P99_US), 200.0);
        // A slow step below a passing one does not lower it (noise), but the
        // passing one must pass on every count.
        let steps = [step(100.0, 30_000, true), step(200.0, 9_000, true)];
        assert_eq!(slo_throughput(&steps.iter().collect::<Vec<_>>(), SLO_P99_US), 200.0);
    }

    #[test]
    fn errors_or_a_failed_check_disqualify_a_step_whatever_its_latency() {
        let mut with_errors = step(300.0, 2_000, true);
        with_errors.summary.overall.errors = 1;
        let failed = step(400.0, 2_000, false);
        let steps = [step(100.0, 2_000, true), with_errors, failed];
        assert_eq!(slo_throughput(&steps.iter().collect::<Vec<_>>(), SLO_P99_US), 100.0);
        assert_eq!(slo_throughput(&[&step(100.0, 26_000, true)], SLO_P99_US), 0.0);
    }

    #[test]
    fn refinement_halves_the_bracket_around_the_slo_until_it_is_narrow() {
        let steps = [step(100.0, 2_000, true), step(200.0, 9_000, true), step(300.0, 60_000, true)];
        let refs: Vec<&StepResult> = steps.iter().collect();
        assert_eq!(refinement(&refs, SLO_P99_US, 0.05), Some(250.0));
        assert_eq!(refinement(&refs, SLO_P99_US, 0.6), None, "a 50 % gap is narrow enough at 60 %");
        let all_pass = [step(100.0, 2_000, true), step(200.0, 2_000, true)];
        assert_eq!(refinement(&all_pass.iter().collect::<Vec<_>>(), SLO_P99_US, 0.05), None);
        let none_pass = [step(100.0, 50_000, true)];
        assert_eq!(refinement(&none_pass.iter().collect::<Vec<_>>(), SLO_P99_US, 0.05), None);
    }

    #[test]
    fn levels_are_rounded_rates_of_the_peak() {
        assert_eq!(level_rate(1234.0, 0.25), 309.0);
        assert_eq!(level_rate(1.0, 0.25), 1.0);
    }

    #[test]
    fn cpu_per_order_and_where_the_difference_goes() {
        let mono = BTreeMap::from([("monolith".to_owned(), 300.0), ("postgres".to_owned(), 200.0)]);
        let micro = BTreeMap::from([
            ("order-service".to_owned(), 250.0),
            ("user-service".to_owned(), 100.0),
            ("postgres".to_owned(), 220.0),
            ("generator".to_owned(), 50.0),
        ]);
        let per_order = per_unit(&micro, 1000);
        assert_eq!(per_order["order-service"], 250.0);
        assert!(per_unit(&micro, 0).is_empty());
        assert_eq!(total(&micro, &["generator"]), 570.0);
        let diff = differences(&mono, &micro);
        assert_eq!(diff[0], ("monolith".to_owned(), -300.0));
        assert_eq!(diff[1], ("order-service".to_owned(), 250.0));
        assert_eq!(diff.iter().find(|(k, _)| k == "postgres").map(|d| d.1), Some(20.0));
    }

    #[test]
    fn per_process_medians_skip_missing_keys() {
        let a = BTreeMap::from([("x".to_owned(), 1.0), ("y".to_owned(), 5.0)]);
        let b = BTreeMap::from([("x".to_owned(), 3.0)]);
        let c = BTreeMap::from([("x".to_owned(), 2.0)]);
        let m = median_maps(&[a, b, c]);
        assert_eq!((m["x"], m["y"]), (2.0, 5.0));
    }
}
