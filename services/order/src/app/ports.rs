//! Ports of the order area: the user directory, the payment gateway and
//! the order store, each with its error contract.

use std::time::Duration;

use serde_json::Value;
use twinshop_platform::{
    idempotency::IdempotencyKey,
    pagination::{Page, PageRequest},
};
use uuid::Uuid;

use crate::domain::{ChargeOutcome, Order, Product, ShippingAddress};

/// What the order area needs to know about a user to ship to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub name: String,
    pub address: Option<ShippingAddress>,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The user area could not answer in time.
    #[error("user directory unavailable: {0:#}")]
    Unavailable(anyhow::Error),
}

/// The user area, as the order area sees it.
#[async_trait::async_trait]
pub trait UserDirectory: Send + Sync {
    /// `Ok(None)` when no such user exists.
    async fn recipient(&self, user_id: Uuid) -> Result<Option<Recipient>, DirectoryError>;
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Unreachable or past the deadline: the call may or may not have
    /// taken effect (both Charge and Refund are safe to repeat).
    #[error("payment unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// The payment side refused the call itself (a contract violation such
    /// as the same order id with another amount): a bug, not an outage.
    #[error("payment refused the call: {0:#}")]
    Refused(anyhow::Error),
}

/// The payment area, as the order area sees it. Both calls are idempotent
/// by order id.
#[async_trait::async_trait]
pub trait PaymentGateway: Send + Sync {
    async fn charge(&self, order_id: Uuid, user_id: Uuid, amount_cents: i64) -> Result<ChargeOutcome, GatewayError>;
    /// Gives back whatever was charged for the order (or makes sure a late
    /// charge is voided). `Ok` once the payment side has answered.
    async fn void(&self, order_id: Uuid) -> Result<(), GatewayError>;
}

/// An idempotency key as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    /// The request body (parsed JSON) the key was first used with.
    pub fingerprint: Value,
    pub order_id: Uuid,
    /// The first answer, once there is one: HTTP status and order snapshot.
    pub response: Option<(u16, Value)>,
    /// The request holding the key stopped renewing it (it died).
    pub lease_expired: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Another request created an order with this key first.
    #[error("idempotency key taken")]
    KeyTaken,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no such order")]
    NotFound,
    #[error(transparent)]
    NotCancellable(#[from] crate::domain::NotCancellable),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The order store. State changes that announce an event write it to the
/// outbox in the same transaction.
#[async_trait::async_trait]
pub trait OrderRepository: Send + Sync {
    async fn catalog(&self) -> anyhow::Result<Vec<Product>>;

    async fn find_key(&self, user_id: Uuid, key: &IdempotencyKey) -> anyhow::Result<Option<KeyRecord>>;

    /// Renews an expired lease for this request; `false` if another
    /// request renewed it first.
    async fn take_over_key(&self, user_id: Uuid, key: &IdempotencyKey, lease: Duration) -> anyhow::Result<bool>;

    /// Records the order as `pending`, with the key (if any) in the same
    /// transaction, leased to this request for `lease`.
    async fn create_pending(
        &self,
        order: &Order,
        key: Option<(&IdempotencyKey, &Value)>,
        lease: Duration,
    ) -> Result<(), CreateError>;

    /// Moves a pending order to the state `outcome` decides (announcing it),
    /// completes the key with 201 and the order, and returns the order as it
    /// now is (also when someone else settled it first).
    async fn settle(
        &self,
        order_id: Uuid,
        outcome: ChargeOutcome,
        key: Option<&IdempotencyKey>,
    ) -> anyhow::Result<Order>;

    /// Moves a pending order to `failed` with its void owed, completes the
    /// key with 503, and returns the order as it now is.
    async fn fail(&self, order_id: Uuid, key: Option<&IdempotencyKey>) -> anyhow::Result<Order>;

    /// Completes the key with 201 and the order as it now is.
    async fn complete_key(&self, order: &Order, key: &IdempotencyKey) -> anyhow::Result<()>;

    /// The user's order (`None` for another user's order).
    async fn find(&self, user_id: Uuid, order_id: Uuid) -> anyhow::Result<Option<Order>>;

    async fn list(&self, user_id: Uuid, page: PageRequest) -> anyhow::Result<Page<Order>>;

    /// Cancels a confirmed order (announcing `order.cancelled`).
    async fn cancel(&self, user_id: Uuid, order_id: Uuid) -> Result<Order, CancelError>;

    /// The effect of `payment.refunded`, once per event.
    async fn mark_refunded(&self, consumer: &str, event_id: Uuid, order_id: Uuid) -> anyhow::Result<()>;

    /// Pending orders untouched for longer than `older_than`, claimed (their
    /// clock reset) so another sweeper replica skips them for a while.
    async fn claim_stale_pending(&self, older_than: Duration, limit: i64) -> anyhow::Result<Vec<Order>>;

    /// Failed orders whose void is still owed, claimed likewise.
    async fn claim_owed_voids(&self, older_than: Duration, limit: i64) -> anyhow::Result<Vec<Uuid>>;

    /// The void of the order was answered.
    async fn void_done(&self, order_id: Uuid) -> anyhow::Result<()>;
}
