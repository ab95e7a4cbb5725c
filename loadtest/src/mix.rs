//! The scenario mix: which kinds of request a run sends, and how often.
//!
//! Why it exists: "realistic traffic" must be a written-down, configurable
//! thing (`place=40,browse=25,read=20,list=10,cancel=5`) that the report
//! records, so two runs can be compared knowing they offered the same work.

use std::{fmt, str::FromStr};

use anyhow::{Context as _, bail, ensure};
use serde::{Deserialize, Serialize};

/// One kind of user action (see [`crate::shop`] for what each sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// `POST /v1/orders` with an Idempotency-Key and 1–3 catalog items.
    Place,
    /// `GET /v1/products`.
    Browse,
    /// `GET /v1/orders/{id}` of one of the user's orders (or the wallet).
    Read,
    /// `GET /v1/orders?limit=20` or `GET /v1/payments?limit=20`.
    List,
    /// `POST /v1/orders/{id}/cancel` of a confirmed order (or the wallet).
    Cancel,
}

/// Relative weights of the scenarios (they need not add up to 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mix {
    pub place: u32,
    pub browse: u32,
    pub read: u32,
    pub list: u32,
    pub cancel: u32,
}

/// The default mix, as the CLI spells it.
pub const DEFAULT_MIX: &str = "place=40,browse=25,read=20,list=10,cancel=5";

impl Default for Mix {
    fn default() -> Self {
        Self { place: 40, browse: 25, read: 20, list: 10, cancel: 5 }
    }
}

impl Mix {
    fn weights(&self) -> [(Scenario, u32); 5] {
        [
            (Scenario::Place, self.place),
            (Scenario::Browse, self.browse),
            (Scenario::Read, self.read),
            (Scenario::List, self.list),
            (Scenario::Cancel, self.cancel),
        ]
    }

    /// The sum of the weights (never 0 for a parsed mix).
    pub fn total(&self) -> u32 {
        self.weights().iter().map(|(_, w)| w).sum()
    }

    /// The share of `place` among all requests.
    pub fn place_share(&self) -> f64 {
        if self.total() == 0 { 0.0 } else { f64::from(self.place) / f64::from(self.total()) }
    }

    /// The scenario for a roll in `0..total()`.
    pub fn pick(&self, roll: u32) -> Scenario {
        let mut rest = roll;
        for (scenario, weight) in self.weights() {
            if rest < weight {
                return scenario;
            }
            rest -= weight;
        }
        Scenario::Browse
    }
}

impl FromStr for Mix {
    type Err = anyhow::Error;

    /// `name=weight` pairs separated by commas; names not given weigh 0.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut mix = Mix { place: 0, browse: 0, read: 0, list: 0, cancel: 0 };
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = pair.split_once('=').with_context(|| format!("{pair:?} is not name=weight"))?;
            let weight: u32 =
                weight.trim().parse().with_context(|| format!("the weight of {name:?} is not a whole number"))?;
            ensure!(weight <= 1_000_000, "the weight of {name:?} is too large");
            let slot = match name.trim() {
                "place" => &mut mix.place,
                "browse" => &mut mix.browse,
                "read" => &mut mix.read,
                "list" => &mut mix.list,
                "cancel" => &mut mix.cancel,
                other => bail!("unknown scenario {other:?} (known: place, browse, read, list, cancel)"),
            };
            *slot = weight;
        }
        ensure!(mix.total() > 0, "the mix must give some scenario a weight above 0");
        Ok(mix)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "place={},browse={},read={},list={},cancel={}",
            self.place, self.browse, self.read, self.list, self.cancel
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_mix_parses_from_its_spelling() {
        let mix: Mix = DEFAULT_MIX.parse().expect("default mix");
        assert_eq!(mix, Mix::default());
        assert_eq!(mix.to_string(), DEFAULT_MIX);
        assert!((mix.place_share() - 0.4).abs() < 1e-9);
    }

    #[test]
    fn rolls_map_to_scenarios_in_proportion_to_their_weights() {
        let mix: Mix = "place=2,browse=1,cancel=1".parse().expect("mix");
        let picks: Vec<Scenario> = (0..mix.total()).map(|r| mix.pick(r)).collect();
        assert_eq!(picks, [Scenario::Place, Scenario::Place, Scenario::Browse, Scenario::Cancel]);
    }

    #[test]
    fn bad_mixes_are_refused_with_a_reason() {
        for bad in ["", "place=0", "buy=3", "place=x", "place"] {
            assert!(bad.parse::<Mix>().is_err(), "{bad:?} should be refused");
        }
    }
}
