//! What the relay tells an operator: state changes and a summary, not a
//! line per event per attempt.
//!
//! Why: while the broker (or the database) is away, every event fails on
//! every pass; logging each failure made about a thousand lines a second
//! at 230 requests a second, growing with outage × traffic, and hid what an
//! operator needs to know: *that* events are waiting, how many, and since
//! when. So the relay logs one WARN when publishing starts failing, a
//! periodic summary (backlog and the oldest event's age) while it does, and
//! one INFO when it recovers; single failures go to DEBUG. The backlog is
//! also a metric (`outbox_backlog`, `outbox_oldest_age_seconds`, labelled
//! by area), refreshed every few seconds whatever the state.

use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgPool;
use tokio::time::Instant;

/// How often the backlog metric is refreshed.
const METRIC_EVERY: Duration = Duration::from_secs(5);
/// How often a summary is logged while publishing fails.
const SUMMARY_EVERY: Duration = Duration::from_secs(30);

/// The relay's view of its own health.
#[derive(Debug)]
pub(crate) struct Watch {
    area: &'static str,
    /// `Some(since)` while passes fail (or leave events unpublished).
    failing_since: Option<Instant>,
    last_summary: Instant,
    last_metric: Option<Instant>,
}

/// Unpublished events and the age of the oldest, in seconds.
pub(crate) async fn backlog(pool: &PgPool) -> anyhow::Result<(i64, f64)> {
    sqlx::query_as(
        "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0) \
         FROM outbox WHERE published_at IS NULL",
    )
    .fetch_one(pool)
    .await
    .context("measuring the outbox backlog")
}

impl Watch {
    pub(crate) fn new(area: &'static str) -> Self {
        Self { area, failing_since: None, last_summary: Instant::now(), last_metric: None }
    }

    /// After a pass: `failed` events could not be published (`error` the
    /// first reason), or the pass itself failed (`failed` 0, `error` set).
    pub(crate) async fn after_pass(&mut self, pool: &PgPool, published: usize, failed: usize, error: Option<String>) {
        let now = Instant::now();
        match (self.failing_since, error) {
            (None, Some(error)) => {
                self.failing_since = Some(now);
                self.last_summary = now;
                tracing::warn!(
                    area = self.area,
                    failed,
                    error,
                    "events cannot be published yet; they wait in the outbox"
                );
            }
            (Some(since), None) if published > 0 || failed == 0 => {
                self.failing_since = None;
                let (waiting, _) = backlog(pool).await.unwrap_or((-1, 0.0));
                tracing::info!(
                    area = self.area,
                    outage_ms = since.elapsed().as_millis() as u64,
                    published,
                    waiting,
                    "events are published again"
                );
            }
            (Some(since), Some(error)) if now.duration_since(self.last_summary) >= SUMMARY_EVERY => {
                self.last_summary = now;
                match backlog(pool).await {
                    Ok((waiting, oldest)) => tracing::warn!(
                        area = self.area,
                        waiting,
                        oldest_age_s = oldest,
                        failing_for_s = since.elapsed().as_secs(),
                        error,
                        "outbox backlog"
                    ),
                    Err(err) => tracing::warn!(
                        area = self.area,
                        failing_for_s = since.elapsed().as_secs(),
                        error,
                        backlog_error = format!("{err:#}"),
                        "outbox backlog unknown"
                    ),
                }
            }
            _ => {}
        }
        self.refresh_metric(pool).await;
    }

    /// Sets the backlog gauges, at most every [`METRIC_EVERY`].
    pub(crate) async fn refresh_metric(&mut self, pool: &PgPool) {
        if self.last_metric.is_some_and(|t| t.elapsed() < METRIC_EVERY) {
            return;
        }
        self.last_metric = Some(Instant::now());
        if let Ok((waiting, oldest)) = backlog(pool).await {
            metrics::gauge!("outbox_backlog", "area" => self.area).set(waiting as f64);
            metrics::gauge!("outbox_oldest_age_seconds", "area" => self.area).set(oldest);
        }
    }
}
