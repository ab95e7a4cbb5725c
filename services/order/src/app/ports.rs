//! Ports of the order area: the user directory, the payment gateway and
//! the order store, each with its error contract.

use std::time::Duration;

use serde_json::Value;
use twinshop_contracts::events::Envelope;
use twinshop_platform::{
    idempotency::{Found, Held, IdempotencyKey},
    pagination::{Page, PageRequest},
};
use uuid::Uuid;

use super::Placement;
use crate::domain::{ChargeOutcome, Order, OrderStatus, Product, ShippingAddress};

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

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Another request created an order with this key first.
    #[error("idempotency key taken")]
    KeyTaken,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A change of one order's state, decided by a use case: write `next` if
/// the order is still `from`, with the event it announces and the answer
/// its idempotency key keeps, all in one transaction. With an answer, the
/// transaction is fenced on the key: it writes nothing unless the request
/// still holds the key.
#[derive(Debug)]
pub struct Transition<'a> {
    pub from: OrderStatus,
    pub next: &'a Order,
    pub event: Option<Envelope<Value>>,
    pub answer: Option<(&'a Held, &'a Placement)>,
}

/// What became of a [`Transition`].
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// Written, with its event and answer.
    Applied,
    /// Someone moved the order first; this is the order as it now is.
    Lost(Box<Order>),
    /// The request no longer holds its key (another took it over while
    /// this one was stalled): nothing was written.
    Fenced,
}

/// The order store: it persists what the use cases decide, each call one
/// transaction.
#[async_trait::async_trait]
pub trait OrderRepository: Send + Sync {
    async fn catalog(&self) -> anyhow::Result<Vec<Product>>;

    /// The placement key of `user_id`, if used before.
    async fn find_key(&self, user_id: Uuid, key: &IdempotencyKey) -> anyhow::Result<Option<Found<Placement>>>;

    /// Leases an abandoned key to this request, in a new generation;
    /// `None` if another request took it over first.
    async fn take_over_key(&self, user_id: Uuid, key: &IdempotencyKey, lease: Duration)
    -> anyhow::Result<Option<Held>>;

    /// Extends the lease of a key the request still holds; `false` if it
    /// lost it.
    async fn renew_key(&self, user_id: Uuid, held: &Held, lease: Duration) -> anyhow::Result<bool>;

    /// Records the order as it is (`pending`), with the key (if any) in the
    /// same transaction, leased to this request for `lease`. Errors:
    /// `KeyTaken` when a concurrent request recorded the key first.
    async fn create(
        &self,
        order: &Order,
        key: Option<(&IdempotencyKey, &Value)>,
        lease: Duration,
    ) -> Result<(), CreateError>;

    /// Writes the transition if the order is still in its `from` state (and,
    /// with an answer, if the request still holds its key).
    async fn transition(&self, transition: Transition<'_>) -> anyhow::Result<Written>;

    /// Stores the key's answer, unless it has one already or the request no
    /// longer holds the key (`false`).
    async fn answer_key(&self, user_id: Uuid, held: &Held, answer: &Placement) -> anyhow::Result<bool>;

    /// The user's order (`None` for another user's order).
    async fn find(&self, user_id: Uuid, order_id: Uuid) -> anyhow::Result<Option<Order>>;

    async fn list(&self, user_id: Uuid, page: PageRequest) -> anyhow::Result<Page<Order>>;

    /// The effect of `payment.refunded`, once per event: a cancelled
    /// order's refund is done.
    async fn mark_refunded(&self, consumer: &str, event_id: Uuid, order_id: Uuid) -> anyhow::Result<()>;

    /// Pending orders untouched for longer than `older_than`, claimed (their
    /// clock reset) so another sweeper replica skips them for a while.
    async fn claim_stale_pending(&self, older_than: Duration, limit: i64) -> anyhow::Result<Vec<Order>>;

    /// Failed orders whose void is still owed, claimed likewise.
    async fn claim_owed_voids(&self, older_than: Duration, limit: i64) -> anyhow::Result<Vec<Uuid>>;

    /// The void of the order was answered.
    async fn void_done(&self, order_id: Uuid) -> anyhow::Result<()>;
}
