//! `/livez` and `/readyz`: the health endpoints served on every process's
//! internal port (next to `/metrics`, see [`crate::metrics::router`]).
//!
//! Readiness checks only the process's *own* dependencies (docs/design.md §4):
//! a critical one (its database) down → 503; a degradable one (Redis,
//! RabbitMQ) down → still 200, reported `degraded`. A peer service is never
//! checked, so a payment outage cannot take the order pods out of rotation.
//! While shutting down, readiness answers 503 so traffic drains away first.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use serde::Serialize;
use sqlx::migrate::Migrator;

use crate::{metrics, shutdown::Shutdown};

/// How long one dependency check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One dependency a process can check.
#[async_trait::async_trait]
pub trait Probe: Send + Sync {
    /// Name in the `/readyz` body, e.g. `postgres`.
    fn name(&self) -> &'static str;
    /// `true`: the process cannot serve without it (down → 503).
    fn critical(&self) -> bool;
    /// `Ok` when reachable; an error says why not (logged, never served).
    async fn check(&self) -> anyhow::Result<()>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DependencyState {
    Up,
    Degraded,
    Down,
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    /// `ready`, `degraded` or `unavailable` (also while shutting down).
    pub status: &'static str,
    pub checks: BTreeMap<&'static str, DependencyState>,
}

/// The probes of one process plus its shutdown state.
#[derive(Clone)]
pub struct Health {
    probes: Arc<Vec<Arc<dyn Probe>>>,
    shutdown: Shutdown,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").field("probes", &self.probes.iter().map(|p| p.name()).collect::<Vec<_>>()).finish()
    }
}

impl Health {
    pub fn new(probes: Vec<Arc<dyn Probe>>, shutdown: Shutdown) -> Self {
        Self { probes: Arc::new(probes), shutdown }
    }

    /// Runs every probe concurrently, each bounded by a timeout.
    pub async fn readiness(&self) -> (bool, Readiness) {
        let results = futures_util::future::join_all(self.probes.iter().map(|p| async move {
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, p.check()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(format!("{err:#}")),
                Err(_) => Err("timed out".to_owned()),
            };
            (p.as_ref(), outcome)
        }))
        .await;
        let mut checks = BTreeMap::new();
        let (mut ready, mut degraded) = (!self.shutdown.is_shutting_down(), false);
        for (probe, outcome) in results {
            let state = match outcome {
                Ok(()) => DependencyState::Up,
                Err(reason) => {
                    tracing::warn!(dependency = probe.name(), reason, "dependency check failed");
                    if probe.critical() {
                        ready = false;
                        DependencyState::Down
                    } else {
                        degraded = true;
                        DependencyState::Degraded
                    }
                }
            };
            metrics::dependency_up(probe.name(), state == DependencyState::Up);
            checks.insert(probe.name(), state);
        }
        let status = match (ready, degraded) {
            (false, _) => "unavailable",
            (true, true) => "degraded",
            (true, false) => "ready",
        };
        (ready, Readiness { status, checks })
    }
}

/// The operational routes; merge them into the internal router.
pub fn router(health: Health) -> Router {
    Router::new()
        .route("/livez", get(|| async { Json(serde_json::json!({ "status": "alive" })) }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn readyz(State(health): State<Health>) -> impl IntoResponse {
    let (ready, body) = health.readiness().await;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}

/// Postgres: critical for every process that owns a database. Ready only
/// once the database is reachable *and* carries the area's latest migration:
/// on a first install the app may start before its migration Job has run
/// (Kubernetes has no ordering between them), and a pod that answered
/// before its tables exist would serve 5xx. Once the migration is seen it is
/// not queried again (migrations only move forward); only reachability is.
#[derive(Debug, Clone)]
pub struct PostgresProbe {
    name: &'static str,
    pool: sqlx::PgPool,
    latest: i64,
    migrated: Arc<AtomicBool>,
}

impl PostgresProbe {
    /// A probe of `pool` that also waits for `migrator`'s last migration
    /// (looked up in the pool's schema, through its `search_path`).
    pub fn new(name: &'static str, pool: sqlx::PgPool, migrator: &Migrator) -> Self {
        let latest = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        Self { name, pool, latest, migrated: Arc::new(AtomicBool::new(false)) }
    }
}

#[async_trait::async_trait]
impl Probe for PostgresProbe {
    fn name(&self) -> &'static str {
        self.name
    }
    fn critical(&self) -> bool {
        true
    }
    async fn check(&self) -> anyhow::Result<()> {
        if self.migrated.load(Ordering::Relaxed) {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            return Ok(());
        }
        let applied: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await
            .map_err(|err| match &err {
                sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => {
                    anyhow::anyhow!("the database is not migrated yet (run the `migrate` subcommand)")
                }
                _ => anyhow::Error::new(err),
            })?;
        let applied = applied.unwrap_or(0);
        anyhow::ensure!(
            applied >= self.latest,
            "the database is at migration {applied}, this build needs {} (run the `migrate` subcommand)",
            self.latest
        );
        self.migrated.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// Redis: a cache, so degradable.
#[derive(Clone)]
pub struct RedisProbe(pub redis::aio::ConnectionManager);

impl std::fmt::Debug for RedisProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisProbe")
    }
}

#[async_trait::async_trait]
impl Probe for RedisProbe {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn critical(&self) -> bool {
        false
    }
    async fn check(&self) -> anyhow::Result<()> {
        let mut conn = self.0.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

/// The `healthcheck` subcommand of every binary: asks the process's own
/// `/readyz` on the internal port and exits 0 only on 200. Images have no
/// curl; this is what Docker's HEALTHCHECK runs.
pub async fn probe_readyz(internal_port: u16) -> bool {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(3)).build() {
        Ok(c) => c,
        Err(_) => return false,
    };
    let url = format!("http://127.0.0.1:{internal_port}/readyz");
    matches!(client.get(url).send().await, Ok(res) if res.status().is_success())
}
