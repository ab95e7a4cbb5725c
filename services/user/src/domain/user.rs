//! The user aggregate and the views other areas see of it.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Address, Email, UserName};

/// A user's id: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Uuid);

impl UserId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A registered user as its owner sees it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: UserName,
    pub address: Option<Address>,
    pub created_at: OffsetDateTime,
}

/// What other areas may know about a user: enough to ship an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub id: UserId,
    pub name: UserName,
    pub address: Option<Address>,
}

impl From<&User> for UserSummary {
    fn from(u: &User) -> Self {
        Self { id: u.id, name: u.name.clone(), address: u.address.clone() }
    }
}

/// The eventually consistent read model fed by order events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub orders_confirmed: i64,
    pub total_spent_cents: i64,
}
