//! Charges, refunds and the ledger: the rules that keep money conserved.
//!
//! Invariant, checkable at any time: for every user,
//! `balance = top-ups − charges + refunds`, and no balance is negative.
//! A charge's first outcome for an order is final; a refund before any
//! charge leaves a tombstone that voids a later charge.

use time::OffsetDateTime;
use uuid::Uuid;

use super::Amount;

/// A wallet's balance (no row yet = zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wallet {
    pub user_id: Uuid,
    pub balance_cents: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    TopUp,
    Charge,
    Refund,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TopUp => "top_up",
            Self::Charge => "charge",
            Self::Refund => "refund",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "top_up" => Some(Self::TopUp),
            "charge" => Some(Self::Charge),
            "refund" => Some(Self::Refund),
            _ => None,
        }
    }
}

/// One ledger line. Amounts are positive; the kind says which way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: Uuid,
    pub kind: EntryKind,
    pub amount_cents: i64,
    pub order_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeOutcome {
    Charged,
    InsufficientFunds,
    /// A refund for the order came first (the tombstone).
    Voided,
}

impl ChargeOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Charged => "charged",
            Self::InsufficientFunds => "insufficient_funds",
            Self::Voided => "voided",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "charged" => Some(Self::Charged),
            "insufficient_funds" => Some(Self::InsufficientFunds),
            "voided" => Some(Self::Voided),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundOutcome {
    Refunded,
    AlreadyRefunded,
    NotCharged,
}

/// What is recorded about an order's charge. A tombstone has no user or
/// amount (the refund that made it did not know them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRecord {
    pub order_id: Uuid,
    pub user_id: Option<Uuid>,
    pub amount_cents: Option<i64>,
    pub outcome: ChargeOutcome,
    /// The wallet balance right after the charge was decided.
    pub balance_after: i64,
    pub refunded: bool,
}

/// What to answer a Charge for an order that already has a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeDecision {
    /// Already decided: answer the same again.
    Replay(ChargeOutcome, i64),
    /// The same order id with another user or amount.
    Mismatch,
}

impl ChargeRecord {
    /// The rule for a repeated Charge: replay, or refuse a mismatch. A
    /// tombstone voids whatever arrives.
    pub fn decide_repeat(&self, user_id: Uuid, amount: Amount) -> ChargeDecision {
        if self.outcome == ChargeOutcome::Voided && self.user_id.is_none() {
            return ChargeDecision::Replay(ChargeOutcome::Voided, self.balance_after);
        }
        if self.user_id != Some(user_id) || self.amount_cents != Some(amount.cents()) {
            return ChargeDecision::Mismatch;
        }
        ChargeDecision::Replay(self.outcome, self.balance_after)
    }

    /// The rule for a Refund of this order.
    pub fn refund_outcome(&self) -> RefundOutcome {
        match (self.outcome, self.refunded) {
            (ChargeOutcome::Charged, false) => RefundOutcome::Refunded,
            (ChargeOutcome::Charged, true) => RefundOutcome::AlreadyRefunded,
            _ => RefundOutcome::NotCharged,
        }
    }
}

/// The rule for a first Charge: charged if the balance covers it.
pub fn first_charge(balance_cents: i64, amount: Amount) -> (ChargeOutcome, i64) {
    if balance_cents >= amount.cents() {
        (ChargeOutcome::Charged, balance_cents - amount.cents())
    } else {
        (ChargeOutcome::InsufficientFunds, balance_cents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(c: i64) -> Amount {
        Amount::charge(c).expect("valid")
    }

    #[test]
    fn a_first_charge_takes_the_money_only_if_the_balance_covers_it() {
        assert_eq!(first_charge(500, amount(500)), (ChargeOutcome::Charged, 0));
        assert_eq!(first_charge(499, amount(500)), (ChargeOutcome::InsufficientFunds, 499));
    }

    #[test]
    fn a_repeated_charge_replays_the_first_outcome_and_refuses_a_mismatch() {
        let (user, order) = (Uuid::now_v7(), Uuid::now_v7());
        let rec = ChargeRecord {
            order_id: order,
            user_id: Some(user),
            amount_cents: Some(300),
            outcome: ChargeOutcome::InsufficientFunds,
            balance_after: 100,
            refunded: false,
        };
        assert_eq!(rec.decide_repeat(user, amount(300)), ChargeDecision::Replay(ChargeOutcome::InsufficientFunds, 100));
        assert_eq!(rec.decide_repeat(user, amount(301)), ChargeDecision::Mismatch);
        assert_eq!(rec.decide_repeat(Uuid::now_v7(), amount(300)), ChargeDecision::Mismatch);
    }

    #[test]
    fn a_tombstone_voids_any_later_charge() {
        let rec = ChargeRecord {
            order_id: Uuid::now_v7(),
            user_id: None,
            amount_cents: None,
            outcome: ChargeOutcome::Voided,
            balance_after: 0,
            refunded: false,
        };
        assert_eq!(rec.decide_repeat(Uuid::now_v7(), amount(1)), ChargeDecision::Replay(ChargeOutcome::Voided, 0));
        assert_eq!(rec.refund_outcome(), RefundOutcome::NotCharged);
    }

    #[test]
    fn only_an_unrefunded_charge_is_refunded() {
        let mut rec = ChargeRecord {
            order_id: Uuid::now_v7(),
            user_id: Some(Uuid::now_v7()),
            amount_cents: Some(5),
            outcome: ChargeOutcome::Charged,
            balance_after: 0,
            refunded: false,
        };
        assert_eq!(rec.refund_outcome(), RefundOutcome::Refunded);
        rec.refunded = true;
        assert_eq!(rec.refund_outcome(), RefundOutcome::AlreadyRefunded);
    }
}
