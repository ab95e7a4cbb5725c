//! Orders and their state machine:
//!
//! ```text
//!            ┌── charged ─────────→ confirmed ── cancel ──→ cancelled (refund: pending → refunded)
//! pending ───┼── insufficient ────→ rejected
//!            ├── voided ──────────→ failed
//!            └── payment unreachable (strict) → failed (its charge, if any landed, is voided)
//! ```
//! `pending` is left by the request that placed the order or, if that
//! request died or ran in `available` mode, by the sweeper.

use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub price_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub product_id: String,
    pub name: String,
    pub unit_price_cents: i64,
    pub quantity: i64,
}

/// The shipping address copied from the user at placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippingAddress {
    pub line1: String,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipTo {
    pub name: String,
    pub address: ShippingAddress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: OrderStatus,
    pub items: Vec<OrderLine>,
    pub total_cents: i64,
    pub ship_to: ShipTo,
    pub rejection_reason: Option<RejectionReason>,
    pub refund_status: Option<RefundStatus>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Cancelling is only for confirmed orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {0} order cannot be cancelled")]
pub struct NotCancellable(pub &'static str);

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

    /// `Ok(true)`: cancel it now; `Ok(false)`: already cancelled (the same
    /// answer again); `Err`: not cancellable.
    pub fn can_cancel(&self) -> Result<bool, NotCancellable> {
        match self.status {
            OrderStatus::Confirmed => Ok(true),
            OrderStatus::Cancelled => Ok(false),
            other => Err(NotCancellable(other.as_str())),
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
