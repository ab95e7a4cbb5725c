//! The payment area's storage port.
//!
//! Each method is one transaction that applies the domain rules of
//! `domain::charge` under a row lock on the wallet, so concurrent charges on
//! one wallet serialise and can never overdraw it.

use serde::{Deserialize, Serialize};
use twinshop_platform::{
    idempotency::{IdempotencyKey, Repeat},
    pagination::{Page, PageRequest},
};
use uuid::Uuid;

use crate::domain::{Amount, ChargeOutcome, LedgerEntry, RefundOutcome, Wallet};

/// A top-up's answer: also the typed outcome its idempotency key keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopUp {
    pub id: Uuid,
    pub amount_cents: i64,
    /// The wallet's balance right after it.
    pub balance_cents: i64,
}

/// What the store did with a top-up request.
#[derive(Debug, Clone, PartialEq)]
pub enum TopUpWrite {
    /// Applied now (with its key's outcome, if any, in the same transaction).
    Applied(TopUp),
    /// Its key was used before; nothing was written.
    Repeated(Repeat<TopUp>),
}

/// A top-up request with its optional idempotency key and the request
/// body's fingerprint (its parsed JSON).
#[derive(Debug, Clone)]
pub struct TopUpRequest {
    pub user_id: Uuid,
    pub amount: Amount,
    pub key: Option<IdempotencyKey>,
    pub fingerprint: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum TopUpError {
    /// The key was used before with another request body.
    #[error("idempotency key reused with another request")]
    KeyReused,
    /// Another request with the key is being applied right now.
    #[error("idempotency key in use by a request in progress")]
    KeyInUse,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The answer to a Charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeResult {
    Decided {
        outcome: ChargeOutcome,
        balance_cents: i64,
    },
    /// The order id was charged before for another user or amount.
    Mismatch,
}

#[async_trait::async_trait]
pub trait PaymentRepository: Send + Sync {
    /// The user's wallet (zero balance if it was never used).
    async fn wallet(&self, user_id: Uuid) -> anyhow::Result<Wallet>;

    /// The user's ledger, newest first.
    async fn ledger(&self, user_id: Uuid, page: PageRequest) -> anyhow::Result<Page<LedgerEntry>>;

    /// Adds to the wallet and the ledger with the key's outcome in one
    /// transaction, or, when the key was used before, writes nothing and
    /// says what the earlier use was.
    async fn top_up(&self, request: &TopUpRequest) -> anyhow::Result<TopUpWrite>;

    /// Decides the order's charge once; afterwards replays it.
    async fn charge(&self, order_id: Uuid, user_id: Uuid, amount: Amount) -> anyhow::Result<ChargeResult>;

    /// Gives back the order's charge once (publishing `payment.refunded`
    /// through the outbox in the same transaction), or leaves a tombstone if
    /// there was no charge. With `dedup = Some((consumer, event_id))` the
    /// call is also recorded as that consumer's processing of that event, in
    /// the same transaction, and is a no-op when it was recorded before.
    /// Returns the outcome and the amount given back by this order's refund.
    async fn refund(&self, order_id: Uuid, dedup: Option<(&str, Uuid)>) -> anyhow::Result<(RefundOutcome, i64)>;
}
