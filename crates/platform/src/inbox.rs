//! The idempotent consumer: apply each event's effect at most once.
//!
//! A consumer calls [`claim`] inside the transaction that applies the
//! effect. The first delivery inserts `(consumer, event_id)` and goes on;
//! any later delivery (a redelivery, a duplicate publish after a relay
//! crash, a second replica racing) finds the row and skips the effect. Two
//! concurrent deliveries serialise on the primary key: the second waits for
//! the first to commit, then sees the row. Effects must also not depend on
//! arrival order (see each area's consumer).

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use contracts::events::Envelope;
use twinshop_contracts as contracts;

/// `true` if this is the first time `consumer` sees `event_id`: go on and
/// apply the effect in the same transaction. `false`: already applied.
pub async fn claim(tx: &mut PgConnection, consumer: &str, event_id: Uuid) -> sqlx::Result<bool> {
    let inserted =
        sqlx::query("INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(consumer)
            .bind(event_id)
            .execute(tx)
            .await?
            .rows_affected();
    Ok(inserted == 1)
}

/// Why handling an event failed, which decides what happens to it.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Worth retrying (a database or network hiccup): retried with backoff
    /// and never dead-lettered for it, so an outage loses nothing.
    #[error("transient: {0:#}")]
    Transient(anyhow::Error),
    /// Will not succeed however often it is tried (an undecodable or
    /// impossible event): dead-lettered after a few tries.
    #[error("permanent: {0:#}")]
    Permanent(anyhow::Error),
}

impl HandleError {
    /// Database errors are transient unless they are about the data itself.
    pub fn from_sqlx(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_check_violation() || db.is_foreign_key_violation() => {
                Self::Permanent(err.into())
            }
            _ => Self::Transient(err.into()),
        }
    }
}

/// Applies one event. Implemented by each area's consumer adapter; called
/// by the RabbitMQ consumer in the microservices and directly by the
/// monolith's in-process dispatcher.
#[async_trait::async_trait]
pub trait EventHandler: Send + Sync {
    /// A stable name, recorded with each processed event id.
    fn consumer(&self) -> &'static str;
    async fn handle(&self, event: Envelope<Value>) -> Result<(), HandleError>;
}
