//! The in-process adapters: the order area's ports answered by the other
//! areas' application services directly, where the microservices use HTTP
//! and gRPC clients. Same traits, same error contracts; only the transport
//! differs, which is the point of the comparison.

use std::time::Duration;

use anyhow::anyhow;
use twinshop_order::{
    app::{DirectoryError, GatewayError, PaymentGateway, Recipient, UserDirectory},
    domain::{ChargeOutcome, ShippingAddress},
};
use twinshop_payment::{
    app::{ChargeError, PaymentService},
    domain::{Amount, ChargeOutcome as PaymentOutcome},
};
use twinshop_user::{
    app::{LookupError, UserService},
    domain::UserId,
};
use uuid::Uuid;

/// The user area's lookup, called in-process (cache-aside in Redis, as in
/// the user service).
#[derive(Debug, Clone)]
pub struct InProcessUserDirectory(pub UserService);

#[async_trait::async_trait]
impl UserDirectory for InProcessUserDirectory {
    async fn recipient(&self, user_id: Uuid) -> Result<Option<Recipient>, DirectoryError> {
        match self.0.lookup(UserId::from_uuid(user_id)).await {
            Ok(summary) => Ok(Some(Recipient {
                name: summary.name.into_string(),
                address: summary.address.map(|a| ShippingAddress {
                    line1: a.line1().to_owned(),
                    city: a.city().to_owned(),
                    postal_code: a.postal_code().to_owned(),
                    country: a.country().as_str().to_owned(),
                }),
            })),
            Err(LookupError::NotFound) => Ok(None),
            Err(LookupError::Unexpected(e)) => Err(DirectoryError::Unavailable(e)),
        }
    }
}

/// The payment area's Charge and Refund, called in-process. The deadline
/// is kept: a call that takes longer counts as payment unavailable, exactly
/// as a gRPC deadline would.
#[derive(Debug, Clone)]
pub struct InProcessPaymentGateway {
    pub payments: PaymentService,
    pub deadline: Duration,
}

#[async_trait::async_trait]
impl PaymentGateway for InProcessPaymentGateway {
    async fn charge(&self, order_id: Uuid, user_id: Uuid, amount_cents: i64) -> Result<ChargeOutcome, GatewayError> {
        let amount = Amount::charge(amount_cents).map_err(|e| GatewayError::Refused(anyhow!("{e}")))?;
        match tokio::time::timeout(self.deadline, self.payments.charge(order_id, user_id, amount)).await {
            Err(_) => Err(GatewayError::Unavailable(anyhow!("Charge: deadline exceeded"))),
            Ok(Ok((outcome, _balance))) => Ok(match outcome {
                PaymentOutcome::Charged => ChargeOutcome::Charged,
                PaymentOutcome::InsufficientFunds => ChargeOutcome::InsufficientFunds,
                PaymentOutcome::Voided => ChargeOutcome::Voided,
            }),
            Ok(Err(ChargeError::Mismatch)) => {
                Err(GatewayError::Refused(anyhow!("Charge: order charged with other details")))
            }
            Ok(Err(ChargeError::Unexpected(e))) => Err(GatewayError::Unavailable(e)),
        }
    }

    async fn void(&self, order_id: Uuid) -> Result<(), GatewayError> {
        match tokio::time::timeout(self.deadline, self.payments.refund(order_id)).await {
            Err(_) => Err(GatewayError::Unavailable(anyhow!("Refund: deadline exceeded"))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(GatewayError::Unavailable(anyhow!(e))),
        }
    }
}
