//! Ports: what the user use cases need from the outside world.

use twinshop_contracts::events::{Envelope, UserRegistered};

use crate::{
    app::ProfileChanges,
    domain::{Email, Stats, User, UserId, UserSummary},
};

/// Error contract of [`UserRepository::insert`].
#[derive(Debug, thiserror::Error)]
pub enum InsertUserError {
    /// Another user has this email in any letter case.
    #[error("email already registered")]
    EmailTaken,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Durable storage of users and the stats read model.
#[async_trait::async_trait]
pub trait UserRepository: Send + Sync {
    /// Stores `user` with its password hash and its `user.registered` event
    /// in one transaction: afterwards both exist, or neither does.
    async fn insert(
        &self,
        user: &User,
        password_hash: &str,
        event: &Envelope<UserRegistered>,
    ) -> Result<(), InsertUserError>;

    /// The id and password hash of the user with this email (any case).
    async fn credentials(&self, email: &Email) -> anyhow::Result<Option<(UserId, String)>>;

    /// The user, or `None` if there is no such user.
    async fn find(&self, id: UserId) -> anyhow::Result<Option<User>>;

    /// Applies `changes` and returns the updated user (`None`: no such user).
    async fn update_profile(&self, id: UserId, changes: &ProfileChanges) -> anyhow::Result<Option<User>>;

    /// The user's stats read model (zeros when no order event was applied).
    async fn stats(&self, id: UserId) -> anyhow::Result<Stats>;

    /// Records an order fact for the stats read model, once per event:
    /// `(consumer, event_id)` is recorded in the same transaction, and a
    /// repeated event changes nothing. Facts are kept per order, so they may
    /// arrive in any order.
    async fn record_order_fact(&self, consumer: &str, event_id: uuid::Uuid, fact: &OrderFact) -> anyhow::Result<()>;
}

/// What an order event tells the stats read model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderFact {
    pub order_id: uuid::Uuid,
    pub user_id: UserId,
    pub total_cents: i64,
    pub kind: OrderFactKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderFactKind {
    Confirmed,
    Cancelled,
}

/// The cache in front of [`UserRepository::find`] for other areas' lookups.
/// Every error means "the cache is unavailable": callers fall back to the
/// repository and never fail because of the cache.
#[async_trait::async_trait]
pub trait UserCache: Send + Sync {
    /// `Ok(None)` on a miss.
    async fn get(&self, id: UserId) -> anyhow::Result<Option<UserSummary>>;
    /// Stores `summary` with the cache's TTL.
    async fn put(&self, summary: &UserSummary) -> anyhow::Result<()>;
    /// Removes the entry; called after a change commits.
    async fn invalidate(&self, id: UserId) -> anyhow::Result<()>;
}
