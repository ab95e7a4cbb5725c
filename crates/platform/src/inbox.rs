//! The idempotent consumer: apply each event's effect at most once.
//!
//! A consumer calls [`claim`] inside the transaction that applies the
//! effect. The first delivery inserts `(consumer, event_id)` and goes on;
//! any later delivery (a redelivery, a duplicate publish after a relay
//! crash, a second replica racing) finds the row and skips the effect. Two
//! concurrent deliveries serialise on the primary key: the second waits for
//! the first to commit, then sees the row. Effects must also not depend on
//! arrival order (see each area's consumer).
//!
//! [`process`] is the one place that applies a delivery: the span that
//! continues the writer's trace, the metrics, and the rules for what
//! happens after a failure ([`DeliveryPolicy`]). The RabbitMQ consumer
//! (`amqp::consume`) and the in-process delivery of the monolith
//! (`host::inprocess`) both call it, so an event is handled the same way
//! whichever transport brought it.

use std::{collections::HashMap, time::Duration};

use serde_json::Value;
use sqlx::PgConnection;
use twinshop_contracts::events::Envelope;
use uuid::Uuid;

use crate::propagation;

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

/// What a consumer does after a failed attempt, whatever delivers the event.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    /// Tries for a permanent failure before the event is dead-lettered.
    /// Transient failures are retried without limit (an outage loses
    /// nothing; the event waits).
    pub permanent_attempts: u32,
    /// Cap of the backoff between tries (100 ms × 2^attempt below it).
    pub max_backoff: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self { permanent_attempts: 3, max_backoff: Duration::from_secs(5) }
    }
}

impl DeliveryPolicy {
    /// The wait before try number `attempt + 1`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        Duration::from_millis(100u64 << attempt.min(10)).min(self.max_backoff)
    }
}

/// What to do with an event after one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Applied (or applied before): acknowledge it.
    Done,
    /// Failed; try again after this wait.
    Retry(Duration),
    /// Failed for good: park it where an operator looks (the dead-letter
    /// queue, or the outbox row marked dead-lettered), never retry.
    DeadLetter(String),
}

/// Applies attempt number `attempt` (from 1) of `event` to `handler`, in a
/// span whose parent is the trace of the request that wrote the event
/// (`trace`: its `traceparent`/`tracestate`), counting the outcome in the
/// `consumer_*_total` metrics, and says what to do next.
pub async fn process(
    handler: &dyn EventHandler,
    event: Envelope<Value>,
    trace: &HashMap<String, String>,
    attempt: u32,
    policy: &DeliveryPolicy,
) -> Verdict {
    let consumer = handler.consumer();
    let span = tracing::info_span!(
        "event.process",
        otel.name = format!("{} process", event.event_type),
        otel.kind = "consumer",
        consumer,
        event_type = event.event_type.as_str(),
        event_id = %event.event_id,
        attempt,
    );
    propagation::set_parent(&span, propagation::extract_map(trace));
    let outcome = tracing::Instrument::instrument(handler.handle(event), span.clone()).await;
    let _entered = span.enter();
    match outcome {
        Ok(()) => {
            metrics::counter!("consumer_processed_total", "consumer" => consumer).increment(1);
            Verdict::Done
        }
        Err(HandleError::Permanent(err)) if attempt >= policy.permanent_attempts => {
            metrics::counter!("consumer_dead_lettered_total", "consumer" => consumer).increment(1);
            let reason = format!("{err:#}");
            tracing::error!(error = reason, "event failed permanently, dead-lettering");
            Verdict::DeadLetter(reason)
        }
        Err(err) => {
            metrics::counter!("consumer_retries_total", "consumer" => consumer).increment(1);
            tracing::warn!(error = %err, "event failed, retrying");
            Verdict::Retry(policy.backoff(attempt))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    };

    use super::*;

    /// Fails the way it is told, counting calls.
    struct Flaky {
        permanent: bool,
        calls: Arc<AtomicU32>,
    }

    #[async_trait::async_trait]
    impl EventHandler for Flaky {
        fn consumer(&self) -> &'static str {
            "test.flaky"
        }
        async fn handle(&self, _event: Envelope<Value>) -> Result<(), HandleError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            Err(if self.permanent {
                HandleError::Permanent(anyhow::anyhow!("impossible event"))
            } else {
                HandleError::Transient(anyhow::anyhow!("database away"))
            })
        }
    }

    fn event() -> Envelope<Value> {
        Envelope {
            event_id: Uuid::now_v7(),
            occurred_at: time::OffsetDateTime::now_utc(),
            event_type: "test.happened".into(),
            payload: Value::Null,
        }
    }

    #[tokio::test]
    async fn a_permanent_failure_is_dead_lettered_on_the_third_try_and_not_before() {
        let handler = Flaky { permanent: true, calls: Arc::default() };
        let policy = DeliveryPolicy::default();
        let trace = HashMap::new();
        assert_eq!(process(&handler, event(), &trace, 1, &policy).await, Verdict::Retry(Duration::from_millis(200)));
        assert_eq!(process(&handler, event(), &trace, 2, &policy).await, Verdict::Retry(Duration::from_millis(400)));
        assert!(
            matches!(process(&handler, event(), &trace, 3, &policy).await, Verdict::DeadLetter(r) if r.contains("impossible"))
        );
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_forever_with_a_capped_backoff() {
        let handler = Flaky { permanent: false, calls: Arc::default() };
        let policy = DeliveryPolicy::default();
        let verdict = process(&handler, event(), &HashMap::new(), 1_000, &policy).await;
        assert_eq!(verdict, Verdict::Retry(policy.max_backoff));
        assert_eq!(handler.calls.load(Ordering::Relaxed), 1);
    }
}
