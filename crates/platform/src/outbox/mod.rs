//! The transactional outbox and its relay.
//!
//! Writing: an area's store calls [`enqueue`] inside the transaction that
//! changes state. The row carries the envelope (its `event_id` fixed now)
//! and the current trace context; `pg_notify` wakes the process's own relay
//! at commit ([`notify_channel`]).
//!
//! Relaying: [`Relay`] claims a batch of unpublished rows with
//! `FOR UPDATE SKIP LOCKED` (so several replicas share the work without
//! publishing the same row at once), hands them to a [`Publisher`], marks
//! the confirmed ones published and schedules the others for a retry with
//! exponential backoff, all in one short transaction. If the process dies
//! between the broker's confirm and the commit, the rows are published again
//! later: delivery is at-least-once, and consumers deduplicate on
//! `event_id`. Published rows are deleted after `retention`. What the relay
//! logs and measures about its own health is in [`watch`].

mod watch;

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
    time::Duration,
};

use anyhow::Context as _;
use serde::Serialize;
use sqlx::{PgConnection, PgPool, postgres::PgListener};
use twinshop_contracts::events::Envelope;
use uuid::Uuid;

use crate::{db::DbTarget, propagation, shutdown::Shutdown};

/// Writes `envelope` to the outbox in the caller's transaction. The payload
/// may be a typed event or already JSON (`Envelope<Value>`, see
/// `Envelope::erase`), which is how a use case hands a store the event it
/// chose.
pub async fn enqueue<P: Serialize>(
    tx: &mut PgConnection,
    target: &DbTarget,
    envelope: &Envelope<P>,
) -> anyhow::Result<()> {
    let body = envelope.to_json().context("serialising the event")?;
    let trace = serde_json::to_value(propagation::current_headers()).context("serialising the trace context")?;
    sqlx::query("INSERT INTO outbox (event_id, event_type, body, trace_context) VALUES ($1, $2, $3, $4)")
        .bind(envelope.event_id)
        .bind(&envelope.event_type)
        .bind(body)
        .bind(trace)
        .execute(&mut *tx)
        .await
        .context("inserting the outbox row")?;
    // Delivered at commit; several in one transaction collapse into one.
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(notify_channel(target))
        .execute(&mut *tx)
        .await
        .context("notifying the relay")?;
    Ok(())
}

/// The channel on which this process's commits to `target`'s outbox wake
/// this process's relay: one per schema (the relays of areas sharing a
/// database do not wake each other) and one per process. A replica's relay
/// wakes on its own replica's commits only; with one channel for all, every
/// relay heard every replica's commits and answered each with a pass that
/// the others' relays had mostly emptied already (docs/concepts/scaling.md).
/// What a replica leaves behind (it died between its commit and its pass)
/// any relay claims on its poll.
pub fn notify_channel(target: &DbTarget) -> String {
    static PROCESS: OnceLock<String> = OnceLock::new();
    let process = PROCESS.get_or_init(|| {
        let mut id = Uuid::new_v4().simple().to_string();
        id.truncate(12);
        id
    });
    format!("{}_{process}", target.notify_channel())
}

/// One claimed row, ready to publish.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub event_id: Uuid,
    pub event_type: String,
    /// The envelope as JSON bytes, published verbatim.
    pub body: Vec<u8>,
    /// `traceparent`/`tracestate` of the request that wrote the event.
    pub trace_context: HashMap<String, String>,
    /// Earlier failed attempts.
    pub attempts: i32,
}

/// What became of one message handed to a [`Publisher`].
#[derive(Debug)]
pub enum Delivery {
    /// Safely stored downstream (confirmed by the broker and routed to at
    /// least one queue; or applied by every in-process consumer).
    Done,
    /// Not delivered: the row stays and is tried again, after `retry_in`
    /// if the publisher knows better, else after the relay's own backoff.
    Failed { error: anyhow::Error, retry_in: Option<Duration> },
    /// A consumer gave up on it for good (in-process delivery only; the
    /// broker has its dead-letter queues): the row is marked published with
    /// `last_error` starting `dead-lettered`, kept for an operator, and never
    /// retried.
    DeadLettered { reason: String },
}

impl Delivery {
    /// `Failed` with the relay's own backoff.
    pub fn failed(error: anyhow::Error) -> Self {
        Self::Failed { error, retry_in: None }
    }
}

/// Where the relay sends events: RabbitMQ in the microservices, the
/// in-process delivery in the monolith.
#[async_trait::async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes a batch; one [`Delivery`] per message, in order.
    async fn publish(&self, batch: &[OutboxMessage]) -> Vec<Delivery>;
}

/// The `last_error` prefix of a dead-lettered outbox row.
pub const DEAD_LETTERED: &str = "dead-lettered";

/// Relay tuning.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Rows claimed per transaction.
    pub batch_size: i64,
    /// Poll interval when no notification arrives (safety net: a NOTIFY is
    /// lost while the listener reconnects).
    pub poll_interval: Duration,
    /// How long published rows are kept (for inspection) before deletion.
    pub retention: Duration,
    /// Cap of the retry backoff of one row.
    pub max_backoff: Duration,
    /// Least time from the start of one pass to the start of the next one a
    /// notification triggers. Notifications that arrive in between wait for
    /// it and are served by one pass: under load a pass claims the rows of
    /// many commits instead of one (and in a service of several replicas,
    /// where every replica's relay hears every commit, most passes found
    /// nothing). Costs at most this much delay, and only under load; zero
    /// passes once per notification. A full batch is followed at once.
    pub min_gap: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 100,
            poll_interval: Duration::from_millis(500),
            retention: Duration::from_secs(24 * 3600),
            max_backoff: Duration::from_secs(30),
            min_gap: DEFAULT_MIN_GAP,
        }
    }
}

/// [`RelaySettings::min_gap`]'s default (`{PREFIX}OUTBOX_MIN_GAP_MS`).
pub const DEFAULT_MIN_GAP: Duration = Duration::from_millis(50);

#[derive(sqlx::FromRow)]
struct Row {
    event_id: Uuid,
    event_type: String,
    body: serde_json::Value,
    trace_context: serde_json::Value,
    attempts: i32,
    /// Seconds since the transaction that wrote it (for the relay delay).
    age_seconds: f64,
}

/// Moves outbox rows to a [`Publisher`].
#[derive(Clone)]
pub struct Relay {
    area: &'static str,
    pool: PgPool,
    target: DbTarget,
    publisher: Arc<dyn Publisher>,
    settings: RelaySettings,
}

/// What one relay pass did.
#[derive(Debug, Default)]
struct Pass {
    published: usize,
    /// Events that could not be published (they stay, for a retry).
    failed: usize,
    /// The first failure's reason.
    first_error: Option<String>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("area", &self.area)
            .field("target", &self.target)
            .field("settings", &self.settings)
            .finish()
    }
}

impl Relay {
    /// A relay of `area`'s outbox (the name labels its logs and metrics).
    pub fn new(
        area: &'static str,
        pool: PgPool,
        target: DbTarget,
        publisher: Arc<dyn Publisher>,
        settings: RelaySettings,
    ) -> Self {
        Self { area, pool, target, publisher, settings }
    }

    /// Claims, publishes and marks one batch. Returns how many were published.
    pub async fn relay_once(&self) -> anyhow::Result<usize> {
        Ok(self.pass().await?.published)
    }

    async fn pass(&self) -> anyhow::Result<Pass> {
        let mut tx = self.pool.begin().await.context("beginning the relay transaction")?;
        let claimed = std::time::Instant::now();
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT event_id, event_type, body, trace_context, attempts, \
             EXTRACT(EPOCH FROM clock_timestamp() - created_at)::float8 AS age_seconds FROM outbox \
             WHERE published_at IS NULL AND next_attempt_at <= now() \
             ORDER BY next_attempt_at, created_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.settings.batch_size)
        .fetch_all(&mut *tx)
        .await
        .context("claiming outbox rows")?;
        let claimed_any = if rows.is_empty() { "none" } else { "some" };
        metrics::counter!("outbox_relay_passes_total", "area" => self.area, "claimed" => claimed_any).increment(1);
        if rows.is_empty() {
            return Ok(Pass::default());
        }
        let ages: Vec<f64> = rows.iter().map(|r| r.age_seconds).collect();
        let batch: Vec<OutboxMessage> = rows
            .into_iter()
            .map(|r| OutboxMessage {
                event_id: r.event_id,
                event_type: r.event_type,
                body: serde_json::to_vec(&r.body).unwrap_or_default(),
                trace_context: serde_json::from_value(r.trace_context).unwrap_or_default(),
                attempts: r.attempts,
            })
            .collect();
        let results = self.publisher.publish(&batch).await;
        let mut published = Vec::new();
        let mut delays = Vec::new();
        let (mut failed, mut first_error) = (0, None);
        for ((msg, result), age) in batch.iter().zip(results).zip(ages) {
            match result {
                Delivery::Done => {
                    published.push(msg.event_id);
                    delays.push(age);
                }
                Delivery::DeadLettered { reason } => {
                    tracing::error!(event_id = %msg.event_id, event_type = msg.event_type, reason,
                        "event dead-lettered; kept in the outbox");
                    sqlx::query("UPDATE outbox SET published_at = now(), last_error = $2 WHERE event_id = $1")
                        .bind(msg.event_id)
                        .bind(format!("{DEAD_LETTERED}: {reason}"))
                        .execute(&mut *tx)
                        .await
                        .context("marking a dead letter")?;
                }
                Delivery::Failed { error, retry_in } => {
                    let backoff = retry_in.unwrap_or_else(|| backoff(msg.attempts, self.settings.max_backoff));
                    // One line per event and attempt only at DEBUG: the
                    // watch logs the state change and a summary.
                    tracing::debug!(event_id = %msg.event_id, event_type = msg.event_type, attempts = msg.attempts + 1,
                        retry_in_ms = backoff.as_millis() as u64, error = format!("{error:#}"), "publish failed, will retry");
                    failed += 1;
                    first_error.get_or_insert_with(|| format!("{error:#}"));
                    metrics::counter!("outbox_publish_failures_total", "event_type" => msg.event_type.clone())
                        .increment(1);
                    sqlx::query(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = $2, \
                         next_attempt_at = now() + make_interval(secs => $3) WHERE event_id = $1",
                    )
                    .bind(msg.event_id)
                    .bind(format!("{error:#}"))
                    .bind(backoff.as_secs_f64())
                    .execute(&mut *tx)
                    .await
                    .context("scheduling a retry")?;
                }
            }
        }
        sqlx::query("UPDATE outbox SET published_at = now(), last_error = NULL WHERE event_id = ANY($1)")
            .bind(&published)
            .execute(&mut *tx)
            .await
            .context("marking rows published")?;
        tx.commit().await.context("committing the relay transaction")?;
        metrics::counter!("outbox_published_total", "area" => self.area).increment(published.len() as u64);
        // From the writing transaction to now, when the publication is
        // confirmed and recorded.
        let since_claim = claimed.elapsed().as_secs_f64();
        let delay = metrics::histogram!("outbox_relay_delay_seconds", "area" => self.area);
        for age in delays {
            delay.record(age + since_claim);
        }
        Ok(Pass { published: published.len(), failed, first_error })
    }

    /// Deletes rows published longer ago than the retention period.
    pub async fn cleanup(&self) -> anyhow::Result<u64> {
        let deleted = sqlx::query("DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)")
            .bind(self.settings.retention.as_secs_f64())
            .execute(&self.pool)
            .await
            .context("cleaning up the outbox")?
            .rows_affected();
        Ok(deleted)
    }

    /// Relays until shutdown: a batch whenever notified (but no sooner than
    /// `min_gap` after the last pass began), at least every `poll_interval`;
    /// cleanup every ten minutes. Errors (database or broker
    /// down) are logged and retried; nothing is lost, rows just wait.
    pub async fn run(self, shutdown: Shutdown) {
        let mut listener: Option<PgListener> = None;
        let mut last_cleanup = tokio::time::Instant::now();
        let mut failures = 0u32;
        let mut watch = watch::Watch::new(self.area);
        loop {
            if shutdown.is_shutting_down() {
                break;
            }
            if listener.is_none() {
                listener = self.listen().await;
            }
            let pass_started = tokio::time::Instant::now();
            match self.pass().await {
                Ok(pass) => {
                    let full = pass.published + pass.failed >= self.settings.batch_size as usize;
                    watch.after_pass(&self.pool, pass.published, pass.failed, pass.first_error).await;
                    failures = 0;
                    if full && pass.failed == 0 {
                        continue;
                    }
                }
                Err(err) => {
                    failures += 1;
                    tracing::debug!(error = format!("{err:#}"), "outbox relay pass failed");
                    watch.after_pass(&self.pool, 0, 0, Some(format!("{err:#}"))).await;
                }
            }
            if last_cleanup.elapsed() > Duration::from_secs(600) {
                last_cleanup = tokio::time::Instant::now();
                match self.cleanup().await {
                    Ok(n) if n > 0 => tracing::info!(deleted = n, "outbox cleaned up"),
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = format!("{err:#}"), "outbox cleanup failed"),
                }
            }
            let wait = if failures > 0 {
                backoff(failures as i32, self.settings.max_backoff)
            } else {
                self.settings.poll_interval
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
                notified = recv(&mut listener) => {
                    if notified {
                        // Let the commits of the next moment join this pass.
                        tokio::select! {
                            () = shutdown.cancelled() => break,
                            () = tokio::time::sleep_until(pass_started + self.settings.min_gap) => {}
                        }
                    }
                    if !notified || !drain(&mut listener).await {
                        listener = None;
                    }
                }
            }
        }
        // One last pass so events committed just before the signal go out now
        // rather than after the restart.
        if let Err(err) = self.relay_once().await {
            tracing::debug!(error = format!("{err:#}"), "final relay pass failed");
        }
        tracing::info!("outbox relay stopped");
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await.ok()?;
        listener.listen(&notify_channel(&self.target)).await.ok()?;
        Some(listener)
    }
}

/// `true` on a notification; `false` if the listener broke (or is absent,
/// in which case it never resolves and the poll interval rules).
async fn recv(listener: &mut Option<PgListener>) -> bool {
    match listener {
        Some(l) => l.recv().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// Takes the notifications that have already arrived, without waiting for
/// more: under load, commits notify faster than a pass takes, and one pass
/// claims the rows of them all. Without this every notification cost a pass
/// of its own in every replica's relay, most of them finding nothing.
/// `false` if the listener broke.
async fn drain(listener: &mut Option<PgListener>) -> bool {
    let Some(l) = listener else { return true };
    loop {
        // A zero timeout polls `recv` once: what is buffered or readable now.
        match tokio::time::timeout(Duration::ZERO, l.recv()).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return false,
            Err(_) => return true,
        }
    }
}

/// 100 ms × 2^attempts, capped.
fn backoff(attempts: i32, cap: Duration) -> Duration {
    let exp = attempts.clamp(0, 16) as u32;
    Duration::from_millis(100u64.saturating_mul(1 << exp)).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_100ms_and_is_capped() {
        let cap = Duration::from_secs(30);
        assert_eq!(backoff(0, cap), Duration::from_millis(100));
        assert_eq!(backoff(3, cap), Duration::from_millis(800));
        assert_eq!(backoff(40, cap), cap);
    }
}
