//! The payment area's side of its internal contract
//! (`twinshop_contracts::internal::Payments`): Charge and Refund as the
//! other areas call them, mapped to the use cases in this one place. The
//! host serves it over gRPC in the microservices and hands it to the order
//! area directly in the monolith.

use std::time::Duration;

use anyhow::anyhow;
use twinshop_contracts::internal::{self as contract, CallError, Charge, Refund};
use uuid::Uuid;

use crate::{
    app::{ChargeError, PaymentService, RefundError},
    domain::{Amount, ChargeOutcome, RefundOutcome},
};

/// [`PaymentService`] as the contract's provider.
#[derive(Debug, Clone)]
pub struct PaymentsProvider(pub PaymentService);

#[async_trait::async_trait]
impl contract::Payments for PaymentsProvider {
    async fn charge(&self, order_id: Uuid, user_id: Uuid, amount_cents: i64, _: Duration) -> Result<Charge, CallError> {
        let amount =
            Amount::charge(amount_cents).map_err(|e| CallError::InvalidArgument(format!("amount_cents: {e}")))?;
        match self.0.charge(order_id, user_id, amount).await {
            Ok((outcome, balance_cents)) => Ok(Charge {
                outcome: match outcome {
                    ChargeOutcome::Charged => contract::ChargeOutcome::Charged,
                    ChargeOutcome::InsufficientFunds => contract::ChargeOutcome::InsufficientFunds,
                    ChargeOutcome::Voided => contract::ChargeOutcome::Voided,
                },
                balance_cents,
            }),
            Err(ChargeError::Mismatch) => Err(CallError::FailedPrecondition(
                "order_id was charged before with another user_id or amount_cents".into(),
            )),
            Err(ChargeError::Unexpected(e)) => Err(CallError::Unavailable(e)),
        }
    }

    async fn refund(&self, order_id: Uuid, _: Duration) -> Result<Refund, CallError> {
        match self.0.refund(order_id).await {
            Ok((outcome, amount_cents)) => Ok(Refund {
                outcome: match outcome {
                    RefundOutcome::Refunded => contract::RefundOutcome::Refunded,
                    RefundOutcome::AlreadyRefunded => contract::RefundOutcome::AlreadyRefunded,
                    RefundOutcome::NotCharged => contract::RefundOutcome::NotCharged,
                },
                amount_cents,
            }),
            Err(RefundError::Unexpected(e)) => Err(CallError::Unavailable(anyhow!(e))),
        }
    }
}
