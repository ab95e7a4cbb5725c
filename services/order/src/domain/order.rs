//! Orders and their state machine:
//!
//! ```text
//!            ┌── charged ─────────→ confirmed ── cancel ──→ cancelled (refund: pending → refunded)
//! pending ───┼── insufficient ────→ rejected
//!            ├── voided ──────────→ failed
//!            └── payment unreachable (strict) → failed (its charge, if any landed, is voided)
//! ```
//! `pending` is left by the request that placed the order or, if that
//! request died or ran in `available` mode, by the sweeper. A `failed`
//! order owes the payment side a void (a Refund, in case a timed-out Charge
//! did land) until the payment side answers it.
//!
//! Each transition is a method that returns the next state; the use case
//! asks the store to write it only if the order is still in the state it
//! was read in, so two actors racing on one order cannot both move it.
//! The types are serde values because an order is also part of a stored
//! idempotent outcome (`app::Placement`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub price_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: String,
    pub name: String,
    pub unit_price_cents: i64,
    pub quantity: i64,
}

/// The shipping address copied from the user at placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingAddress {
    pub line1: String,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipTo {
    pub name: String,
    pub address: ShippingAddress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Rejected,
    Failed,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "confirmed" => Self::Confirmed,
            "rejected" => Self::Rejected,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionReason {
    InsufficientFunds,
    PaymentUnavailable,
}

impl RejectionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InsufficientFunds => "insufficient_funds",
            Self::PaymentUnavailable => "payment_unavailable",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "insufficient_funds" => Some(Self::InsufficientFunds),
            "payment_unavailable" => Some(Self::PaymentUnavailable),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Pending,
    Refunded,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "refunded" => Some(Self::Refunded),
            _ => None,
        }
    }
}

/// What the payment side answered to a Charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeOutcome {
    Charged,
    InsufficientFunds,
    /// A void (refund) for this order came first.
    Voided,
}

/// `ORDER_CONSISTENCY_MODE`: what to do when payment cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsistencyMode {
    /// CP: fail the order (503 `payment_unavailable`) and void any charge.
    #[default]
    Strict,
    /// AP: accept it as `pending` (201); the sweeper settles it later.
    Available,
}

/// Whether a failed order's void has been answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoidStatus {
    Owed,
    Done,
}

impl VoidStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owed => "owed",
            Self::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owed" => Some(Self::Owed),
            "done" => Some(Self::Done),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: OrderStatus,
    pub items: Vec<OrderLine>,
    pub total_cents: i64,
    pub ship_to: ShipTo,
    pub rejection_reason: Option<RejectionReason>,
    pub refund_status: Option<RefundStatus>,
    /// Only on a failed order: its void, owed until answered.
    #[serde(default)]
    pub void_status: Option<VoidStatus>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Cancelling is only for confirmed orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {0} order cannot be cancelled")]
pub struct NotCancellable(pub &'static str);

/// A transition asked of an order that has already left the state it
/// starts from (a bug in the caller: the use cases only ask pending orders
/// to settle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {0} order cannot be settled")]
pub struct NotPending(pub &'static str);

impl Order {
    /// The state a pending order moves to for a charge outcome.
    pub fn settled_by(outcome: ChargeOutcome) -> (OrderStatus, Option<RejectionReason>) {
        match outcome {
            ChargeOutcome::Charged => (OrderStatus::Confirmed, None),
            ChargeOutcome::InsufficientFunds => (OrderStatus::Rejected, Some(RejectionReason::InsufficientFunds)),
            // Only a failed order is ever voided, so this one was failed.
            ChargeOutcome::Voided => (OrderStatus::Failed, Some(RejectionReason::PaymentUnavailable)),
        }
    }

    /// This pending order, settled by the payment side's answer.
    pub fn settle(&self, outcome: ChargeOutcome, now: OffsetDateTime) -> Result<Order, NotPending> {
        self.expect_pending()?;
        let (status, rejection_reason) = Self::settled_by(outcome);
        Ok(self.moved(status, rejection_reason, now))
    }

    /// This pending order, failed because payment could not be reached
    /// (strict mode): its void is owed from now on.
    pub fn fail(&self, now: OffsetDateTime) -> Result<Order, NotPending> {
        self.expect_pending()?;
        Ok(self.moved(OrderStatus::Failed, Some(RejectionReason::PaymentUnavailable), now))
    }

    /// `Ok(Some(order))`: cancelled now, its refund pending; `Ok(None)`:
    /// already cancelled (the same answer again); `Err`: not cancellable.
    pub fn cancel(&self, now: OffsetDateTime) -> Result<Option<Order>, NotCancellable> {
        match self.status {
            OrderStatus::Confirmed => Ok(Some(Order {
                status: OrderStatus::Cancelled,
                refund_status: Some(RefundStatus::Pending),
                updated_at: now,
                ..self.clone()
            })),
            OrderStatus::Cancelled => Ok(None),
            other => Err(NotCancellable(other.as_str())),
        }
    }

    fn expect_pending(&self) -> Result<(), NotPending> {
        match self.status {
            OrderStatus::Pending => Ok(()),
            other => Err(NotPending(other.as_str())),
        }
    }

    fn moved(&self, status: OrderStatus, rejection_reason: Option<RejectionReason>, now: OffsetDateTime) -> Order {
        Order {
            status,
            rejection_reason,
            // A failed order owes the payment side a void until answered.
            void_status: (status == OrderStatus::Failed).then_some(VoidStatus::Owed),
            updated_at: now,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_charge_outcome_settles_a_pending_order_in_exactly_one_way() {
        assert_eq!(Order::settled_by(ChargeOutcome::Charged), (OrderStatus::Confirmed, None));
        assert_eq!(
            Order::settled_by(ChargeOutcome::InsufficientFunds),
            (OrderStatus::Rejected, Some(RejectionReason::InsufficientFunds))
        );
        assert_eq!(Order::settled_by(ChargeOutcome::Voided).0, OrderStatus::Failed);
    }

    fn pending() -> Order {
        let t = OffsetDateTime::UNIX_EPOCH;
        Order {
            id: Uuid::nil(),
            user_id: Uuid::nil(),
            status: OrderStatus::Pending,
            items: vec![OrderLine {
                product_id: "sku-tea".into(),
                name: "Tea".into(),
                unit_price_cents: 650,
                quantity: 1,
            }],
            total_cents: 650,
            ship_to: ShipTo {
                name: "Ada".into(),
                address: ShippingAddress {
                    line1: "1 Main St".into(),
                    city: "Berlin".into(),
                    postal_code: "10115".into(),
                    country: "DE".into(),
                },
            },
            rejection_reason: None,
            refund_status: None,
            void_status: None,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn only_a_pending_order_settles_and_a_failed_one_owes_its_void() {
        let later = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(5);
        let confirmed = pending().settle(ChargeOutcome::Charged, later).expect("pending");
        assert_eq!(
            (confirmed.status, confirmed.void_status, confirmed.updated_at),
            (OrderStatus::Confirmed, None, later)
        );
        assert_eq!(confirmed.settle(ChargeOutcome::Charged, later), Err(NotPending("confirmed")));
        let failed = pending().fail(later).expect("pending");
        assert_eq!(failed.status, OrderStatus::Failed);
        assert_eq!(failed.rejection_reason, Some(RejectionReason::PaymentUnavailable));
        assert_eq!(failed.void_status, Some(VoidStatus::Owed));
        assert_eq!(pending().settle(ChargeOutcome::Voided, later).map(|o| o.void_status), Ok(Some(VoidStatus::Owed)));
    }

    #[test]
    fn a_confirmed_order_cancels_once_and_others_not_at_all() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let confirmed = pending().settle(ChargeOutcome::Charged, now).expect("pending");
        let cancelled = confirmed.cancel(now).expect("cancellable").expect("cancelled now");
        assert_eq!((cancelled.status, cancelled.refund_status), (OrderStatus::Cancelled, Some(RefundStatus::Pending)));
        assert_eq!(cancelled.cancel(now), Ok(None));
        assert_eq!(pending().cancel(now), Err(NotCancellable("pending")));
        let rejected = pending().settle(ChargeOutcome::InsufficientFunds, now).expect("pending");
        assert_eq!(rejected.cancel(now), Err(NotCancellable("rejected")));
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in [
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            OrderStatus::Rejected,
            OrderStatus::Failed,
            OrderStatus::Cancelled,
        ] {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
    }
}
