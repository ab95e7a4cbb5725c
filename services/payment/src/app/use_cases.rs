//! The payment use cases.

use std::sync::Arc;

use tracing::instrument;
use twinshop_platform::pagination::{Page, PageRequest};
use uuid::Uuid;

use twinshop_platform::idempotency::Repeat;

use super::ports::{ChargeResult, PaymentRepository, TopUp, TopUpError, TopUpRequest, TopUpWrite};
use crate::domain::{Amount, ChargeOutcome, LedgerEntry, RefundOutcome, Wallet};

#[derive(Debug, thiserror::Error)]
pub enum ChargeError {
    /// Same order id, another user or amount.
    #[error("order was charged with other details")]
    Mismatch,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The payment area's application service.
#[derive(Clone)]
pub struct PaymentService {
    repo: Arc<dyn PaymentRepository>,
}

impl std::fmt::Debug for PaymentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentService").finish_non_exhaustive()
    }
}

impl PaymentService {
    pub fn new(repo: Arc<dyn PaymentRepository>) -> Self {
        Self { repo }
    }

    #[instrument(name = "payment.wallet", skip_all, fields(user_id = %user_id))]
    pub async fn wallet(&self, user_id: Uuid) -> anyhow::Result<Wallet> {
        self.repo.wallet(user_id).await
    }

    #[instrument(name = "payment.ledger", skip_all, fields(user_id = %user_id))]
    pub async fn ledger(&self, user_id: Uuid, page: PageRequest) -> anyhow::Result<Page<LedgerEntry>> {
        self.repo.ledger(user_id, page).await
    }

    #[instrument(name = "payment.top_up", skip_all, fields(user_id = %request.user_id, amount = request.amount.cents()))]
    /// Tops the wallet up. `(top_up, replayed)`: `replayed` when this is the
    /// first answer to an earlier request with the same key and body.
    pub async fn top_up(&self, request: TopUpRequest) -> Result<(TopUp, bool), TopUpError> {
        let (top_up, replayed) = match self.repo.top_up(&request).await? {
            TopUpWrite::Applied(top_up) => (top_up, false),
            TopUpWrite::Repeated(Repeat::Replay(top_up)) => (top_up, true),
            TopUpWrite::Repeated(Repeat::Reused) => return Err(TopUpError::KeyReused),
            TopUpWrite::Repeated(Repeat::InUse) => return Err(TopUpError::KeyInUse),
            // A top-up stores its outcome with its effect: a key without
            // one was never applied, and nothing created is to be resumed.
            TopUpWrite::Repeated(Repeat::Abandoned { .. }) => {
                return Err(TopUpError::Unexpected(anyhow::anyhow!("a top-up key without an outcome")));
            }
        };
        tracing::info!(replayed, balance = top_up.balance_cents, "wallet topped up");
        Ok((top_up, replayed))
    }

    /// Charges the order once; a retry replays the first outcome.
    #[instrument(name = "payment.charge", skip_all, fields(order_id = %order_id, user_id = %user_id, amount = amount.cents(), outcome))]
    pub async fn charge(
        &self,
        order_id: Uuid,
        user_id: Uuid,
        amount: Amount,
    ) -> Result<(ChargeOutcome, i64), ChargeError> {
        match self.repo.charge(order_id, user_id, amount).await? {
            ChargeResult::Decided { outcome, balance_cents } => {
                tracing::Span::current().record("outcome", outcome.as_str());
                Ok((outcome, balance_cents))
            }
            ChargeResult::Mismatch => Err(ChargeError::Mismatch),
        }
    }

    /// Refunds the order's charge once, or leaves a tombstone.
    #[instrument(name = "payment.refund", skip_all, fields(order_id = %order_id))]
    pub async fn refund(&self, order_id: Uuid) -> Result<(RefundOutcome, i64), RefundError> {
        Ok(self.repo.refund(order_id, None).await?)
    }

    /// The effect of `order.cancelled`: refund, once per event.
    #[instrument(name = "payment.refund_cancelled_order", skip_all, fields(order_id = %order_id, event_id = %event_id))]
    pub async fn refund_cancelled_order(&self, consumer: &str, event_id: Uuid, order_id: Uuid) -> anyhow::Result<()> {
        let (outcome, amount) = self.repo.refund(order_id, Some((consumer, event_id))).await?;
        tracing::info!(?outcome, amount, "cancelled order refunded");
        Ok(())
    }
}
