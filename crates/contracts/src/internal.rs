//! The internal contracts between areas, as Rust traits: what
//! `docs/api.md` ("Internal contracts") describes for the wire.
//!
//! Why they are traits here: one area calls another through them whatever
//! the build. In the microservices a network adapter implements them (the
//! HTTP user lookup, gRPC `Payments`; see `twinshop_platform::links`); in
//! the monolith the providing area's own implementation is handed over
//! directly. The calling area never knows which, and the providing area
//! maps its domain to these types in exactly one place.
//!
//! Both calls are safe to repeat: the lookup is a read, Charge and Refund
//! are idempotent by order id. So a caller may retry [`CallError::Unavailable`]
//! within its deadline. Each call takes the time left of that deadline, which
//! a network adapter sends along (`grpc-timeout`) and enforces.

use std::time::Duration;

use uuid::Uuid;

/// Why an internal call got no answer, or was refused.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Unreachable, timed out, or failed on the other side mid-call: the
    /// call may or may not have taken effect. Safe to retry.
    #[error("unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// The request itself is malformed (`INVALID_ARGUMENT`): a caller bug.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The request contradicts an earlier one with the same id
    /// (`FAILED_PRECONDITION`): a caller bug, never retried.
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
}

/// A postal address as the user lookup returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostalAddress {
    pub line1: String,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

/// `GET /internal/v1/users/{id}`: who a user is and where to ship to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCard {
    pub id: Uuid,
    pub name: String,
    pub address: Option<PostalAddress>,
}

/// The user area's lookup, served to the other areas.
#[async_trait::async_trait]
pub trait UserLookup: Send + Sync + 'static {
    /// `Ok(None)` when no such user exists.
    async fn lookup(&self, user_id: Uuid, timeout: Duration) -> Result<Option<UserCard>, CallError>;
}

/// `Charge`'s outcome: final for an order id, replayed on every retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeOutcome {
    Charged,
    InsufficientFunds,
    /// A Refund for this order came first: nothing is or will be taken.
    Voided,
}

/// `Refund`'s outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundOutcome {
    Refunded,
    AlreadyRefunded,
    /// Nothing was charged (a tombstone now voids any later Charge).
    NotCharged,
}

/// The answer to `Charge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    pub outcome: ChargeOutcome,
    /// The wallet's balance right after the outcome was first decided.
    pub balance_cents: i64,
}

/// The answer to `Refund`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refund {
    pub outcome: RefundOutcome,
    /// What this order's refund gave back (0 when nothing was).
    pub amount_cents: i64,
}

/// The payment area's `twinshop.payment.v1.Payments`, served to the other
/// areas. Both calls are idempotent by `order_id`.
#[async_trait::async_trait]
pub trait Payments: Send + Sync + 'static {
    /// Takes `amount_cents` from the user's wallet for the order, at most
    /// once. The same order id with another user or amount is
    /// [`CallError::FailedPrecondition`].
    async fn charge(
        &self,
        order_id: Uuid,
        user_id: Uuid,
        amount_cents: i64,
        timeout: Duration,
    ) -> Result<Charge, CallError>;

    /// Gives back what Charge took for the order, at most once; before any
    /// Charge it leaves a tombstone.
    async fn refund(&self, order_id: Uuid, timeout: Duration) -> Result<Refund, CallError>;
}
