//! `Amount`: a positive number of euro cents.

use std::fmt;

/// Largest single top-up (docs/api.md: 1 … 1,000,000 cents).
pub const TOP_UP_MAX: i64 = 1_000_000;
/// Largest single charge: well above any order the catalog allows
/// (50 lines × 100 units × the priciest product), far below overflow.
pub const CHARGE_MAX: i64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("must be an integer from 1 to {0}")]
    OutOfRange(i64),
}

impl Amount {
    /// A top-up amount: 1 … [`TOP_UP_MAX`] cents.
    pub fn top_up(cents: i64) -> Result<Self, AmountError> {
        Self::bounded(cents, TOP_UP_MAX)
    }

    /// A charge amount: 1 … [`CHARGE_MAX`] cents.
    pub fn charge(cents: i64) -> Result<Self, AmountError> {
        Self::bounded(cents, CHARGE_MAX)
    }

    fn bounded(cents: i64, max: i64) -> Result<Self, AmountError> {
        if (1..=max).contains(&cents) { Ok(Self(cents)) } else { Err(AmountError::OutOfRange(max)) }
    }

    pub fn cents(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cents", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn top_ups_accept_exactly_one_to_a_million_cents(cents in any::<i64>()) {
            prop_assert_eq!(Amount::top_up(cents).is_ok(), (1..=TOP_UP_MAX).contains(&cents));
        }

        #[test]
        fn charges_reject_zero_negative_and_huge_amounts(cents in any::<i64>()) {
            prop_assert_eq!(Amount::charge(cents).is_ok(), cents > 0 && cents <= CHARGE_MAX);
        }
    }
}
