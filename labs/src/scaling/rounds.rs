//! How many rounds the quick variant measures: as many as it takes to tell
//! which side of the bound the 1 → 2 ratio is on, and no more.
//!
//! A quick run measures one and two quarter-core replicas in rounds of
//! four searches (1, 2, 2, 1 replicas). One search's figure for a shape
//! varies from the next one's in the same run by about a tenth (the
//! standard deviation of its logarithm, [`SEARCH_SD`]), so a ratio of
//! means of two is known to within about ±20 %: a system that scales 2×
//! lands under the 1.6× bound about one run in sixty for nothing in the
//! code, and one that scales 1.5× lands over it one run in four.
//!
//! So the run is a sequential test. After each round the ratio of the
//! means of all searches so far gets an interval from that spread
//! ([`judge`]); if the whole interval lies on one side of the bound the
//! verdict is known and the run stops, otherwise it measures another
//! round, up to [`MAX_ROUNDS`]. The check itself does not change: the
//! ratio of the means of every search must reach the bound. A run that
//! stops early passes only if its interval's low end cleared the bound (a
//! stricter test than the check), and fails only if its high end did not
//! reach it; a run that needs every round is judged on three times the
//! data of one round.

use serde::Serialize;

use super::{SHARE, Shape, point::Point};

/// The standard deviation of the natural logarithm of one search's
/// throughput at the SLO, for one shape within one run. Measured from
/// the runs committed in `docs/labs/scaling/quick-2026-12-06/` (an EPYC
/// VM: 0.104, from 16 pairs of searches of one shape in one run) and
/// `docs/labs/scaling/quick-2026-12-06-xeon/` (an Intel Xeon VM: 0.099,
/// 28 degrees of freedom); rounded up, because a larger spread only makes
/// a run stop later.
pub const SEARCH_SD: f64 = 0.12;

/// The width of the interval in standard errors (one-sided 95 %).
pub const Z: f64 = 1.645;

/// Rounds of 1, 2, 2, 1 replicas at most.
pub const MAX_ROUNDS: usize = 3;

/// What a round of the quick variant left known.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Round {
    /// 1 for the first round.
    pub round: usize,
    /// Every search's figure so far with one replica, rps.
    pub one: Vec<f64>,
    /// Every search's figure so far with two replicas, rps.
    pub two: Vec<f64>,
    /// The ratio of their means: none if one replica met the SLO at no
    /// rate, 0 if two replicas met it at none.
    pub ratio: Option<f64>,
    /// The interval's low end (none when the ratio is none or 0).
    pub low: Option<f64>,
    /// The interval's high end (likewise).
    pub high: Option<f64>,
    /// The interval lies wholly on one side of `bound` (or a shape met
    /// the SLO at no rate).
    pub decided: bool,
    /// The ratio the check asks for.
    pub bound: f64,
}

/// The mean of `values`, if there are any.
pub(crate) fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// `a / b`, when both are known and `b` is above zero.
pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (b > 0.0).then(|| a / b)
}

/// Where the ratio of two replicas' throughput at the SLO to one's stands
/// after `round` rounds, given every search's figure so far.
pub fn judge(round: usize, one: &[f64], two: &[f64], bound: f64) -> Round {
    let ratio = ratio(mean(two), mean(one));
    let (low, high, decided) = match ratio {
        // A shape that met the SLO at no rate is not noise near the bound.
        None | Some(0.0) => (None, None, true),
        Some(r) => {
            let se = SEARCH_SD * (1.0 / one.len() as f64 + 1.0 / two.len() as f64).sqrt();
            let (low, high) = (r * (-Z * se).exp(), r * (Z * se).exp());
            (Some(low), Some(high), low >= bound || high < bound)
        }
    };
    Round { round, one: one.to_vec(), two: two.to_vec(), ratio, low, high, decided, bound }
}

/// Judges the points measured so far (one and two quarter-core replicas).
pub fn judge_points(round: usize, points: &[Point], bound: f64) -> Round {
    let figures = |replicas: u16| -> Vec<f64> {
        let shape = Shape { replicas, cores_each: SHARE };
        points.iter().filter(|p| p.shape == shape).map(|p| p.slo_rps).collect()
    };
    judge(round, &figures(1), &figures(2), bound)
}

/// Whether the run measures another round after `rounds`.
pub fn another(rounds: &[Round]) -> bool {
    rounds.last().is_some_and(|r| !r.decided) && rounds.len() < MAX_ROUNDS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_well_above_the_bound_is_decided_after_one_round() {
        let r = judge(1, &[50.0, 52.0], &[104.0, 100.0], 1.6);
        assert!(r.decided, "{r:?}");
        assert!(r.low.is_some_and(|l| l >= 1.6), "{r:?}");
    }

    #[test]
    fn a_ratio_near_the_bound_asks_for_another_round() {
        // 1.75×: two searches a shape leave the bound inside the interval.
        let r = judge(1, &[40.0, 40.0], &[70.0, 70.0], 1.6);
        assert!(!r.decided, "{r:?}");
        assert!(another(&[r]));
    }

    #[test]
    fn more_searches_narrow_the_interval_until_it_decides() {
        let (one, two) = ([40.0; 6], [76.0; 6]);
        let after = |n: usize| judge(n / 2, &one[..n], &two[..n], 1.6);
        let widths: Vec<f64> =
            [2, 4, 6].iter().map(|&n| after(n)).map(|r| r.high.unwrap_or(0.0) - r.low.unwrap_or(0.0)).collect();
        assert!(widths[0] > widths[1] && widths[1] > widths[2], "{widths:?}");
        // 1.9×: undecided after one round, decided after two.
        assert!(!after(2).decided);
        assert!(after(4).decided);
    }

    #[test]
    fn a_ratio_well_below_the_bound_is_decided_too() {
        let r = judge(1, &[50.0, 50.0], &[55.0, 60.0], 1.6);
        assert!(r.decided && r.high.is_some_and(|h| h < 1.6), "{r:?}");
    }

    #[test]
    fn the_run_stops_after_the_last_round_even_undecided() {
        let undecided = judge(1, &[40.0, 40.0], &[66.0, 66.0], 1.6);
        assert!(!undecided.decided);
        let rounds = vec![undecided; MAX_ROUNDS];
        assert!(!another(&rounds));
        assert!(another(&rounds[..MAX_ROUNDS - 1]));
    }

    #[test]
    fn a_shape_meeting_the_slo_at_no_rate_decides() {
        let r = judge(1, &[0.0, 0.0], &[60.0, 70.0], 1.6);
        assert!(r.decided && r.ratio.is_none(), "{r:?}");
        let r = judge(1, &[40.0, 50.0], &[0.0, 0.0], 1.6);
        assert!(r.decided && r.ratio == Some(0.0), "{r:?}");
    }
}
