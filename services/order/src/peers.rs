//! The order area's view of its peers: the user area's lookup and the
//! payment area's Charge/Refund (`twinshop_contracts::internal`), behind the
//! order area's own ports, with the order area's rules for calling them.
//!
//! Both builds go through here: the microservices hand in network clients
//! (HTTP, gRPC), the monolith the other areas themselves. The rules are
//! the same either way: one deadline per call, retries included (sent along
//! as `grpc-timeout` over the network), and retries with backoff only
//! because every call is safe to repeat (a lookup; Charge and Refund by
//! order id).

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::anyhow;
use twinshop_contracts::internal::{self as contract, CallError, UserLookup};
use uuid::Uuid;

use crate::{
    app::{DirectoryError, GatewayError, PaymentGateway, Recipient, UserDirectory},
    domain::{ChargeOutcome, ShippingAddress},
};

/// Tries of one call (the first plus retries), within its deadline.
const TRIES: u32 = 3;

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(25 << attempt.min(4))
}

/// Runs `call` with the time left until `deadline` is spent or it answers
/// something other than `Unavailable`.
async fn with_retries<T, F, Fut>(what: &'static str, deadline: Duration, mut call: F) -> Result<T, CallError>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<T, CallError>>,
{
    let until = tokio::time::Instant::now() + deadline;
    let mut last = CallError::Unavailable(anyhow!("{what}: no attempt made"));
    for attempt in 0..TRIES {
        let remaining = until.saturating_duration_since(tokio::time::Instant::now());
        if remaining.is_zero() {
            break;
        }
        match tokio::time::timeout(remaining, call(remaining)).await {
            Ok(Err(CallError::Unavailable(err))) => last = CallError::Unavailable(err),
            Ok(answer) => return answer,
            Err(_) => return Err(CallError::Unavailable(anyhow!("{what}: deadline exceeded"))),
        }
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        tokio::time::sleep(backoff(attempt).min(left)).await;
    }
    Err(last)
}

/// [`UserDirectory`] over the user area's lookup.
pub struct Directory {
    pub lookup: Arc<dyn UserLookup>,
    /// The deadline of one lookup, retries included.
    pub timeout: Duration,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl UserDirectory for Directory {
    async fn recipient(&self, user_id: Uuid) -> Result<Option<Recipient>, DirectoryError> {
        let card = with_retries("user lookup", self.timeout, |left| self.lookup.lookup(user_id, left))
            .await
            .map_err(|e| DirectoryError::Unavailable(anyhow!(e)))?;
        Ok(card.map(|card| Recipient {
            name: card.name,
            address: card.address.map(|a| ShippingAddress {
                line1: a.line1,
                city: a.city,
                postal_code: a.postal_code,
                country: a.country,
            }),
        }))
    }
}

/// [`PaymentGateway`] over the payment area's Charge and Refund.
pub struct Gateway {
    pub payments: Arc<dyn contract::Payments>,
    /// The deadline of one Charge or Refund, retries included.
    pub deadline: Duration,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("deadline", &self.deadline).finish_non_exhaustive()
    }
}

fn gateway_error(err: CallError) -> GatewayError {
    match err {
        CallError::Unavailable(e) => GatewayError::Unavailable(e),
        refused => GatewayError::Refused(anyhow!(refused)),
    }
}

#[async_trait::async_trait]
impl PaymentGateway for Gateway {
    async fn charge(&self, order_id: Uuid, user_id: Uuid, amount_cents: i64) -> Result<ChargeOutcome, GatewayError> {
        let charge =
            with_retries("Charge", self.deadline, |left| self.payments.charge(order_id, user_id, amount_cents, left))
                .await
                .map_err(gateway_error)?;
        Ok(match charge.outcome {
            contract::ChargeOutcome::Charged => ChargeOutcome::Charged,
            contract::ChargeOutcome::InsufficientFunds => ChargeOutcome::InsufficientFunds,
            contract::ChargeOutcome::Voided => ChargeOutcome::Voided,
        })
    }

    async fn void(&self, order_id: Uuid) -> Result<(), GatewayError> {
        with_retries("Refund", self.deadline, |left| self.payments.refund(order_id, left))
            .await
            .map_err(gateway_error)?;
        Ok(())
    }
}
