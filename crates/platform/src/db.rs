//! Postgres: pools, connections in spans ([`acquire`]) and migrations.
//!
//! Each area keeps its SQL and migrations in its own crate; the platform's
//! own tables (outbox, processed events) are migrated by [`migrate`] with a
//! separate history table, so areas and platform never share version numbers.
//! A `schema` puts everything under one Postgres schema via `search_path`:
//! the monolith gives each area its own; tests give each test its own.

use std::{str::FromStr, time::Duration};

use anyhow::Context as _;
use sqlx::{
    Connection, PgConnection, PgPool, Postgres,
    migrate::Migrator,
    pool::PoolConnection,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tracing::Instrument as _;

use crate::config::Secret;

/// Where a store's tables live.
#[derive(Debug, Clone)]
pub struct DbTarget {
    pub url: Secret<String>,
    /// `None`: the database's default `search_path` (normally `public`).
    pub schema: Option<String>,
}

impl DbTarget {
    pub fn new(url: Secret<String>, schema: Option<String>) -> Self {
        Self { url, schema }
    }

    fn options(&self, application: &str) -> anyhow::Result<PgConnectOptions> {
        let mut options = PgConnectOptions::from_str(self.url.expose())
            .context("database URL is malformed")?
            .application_name(application);
        if let Some(schema) = &self.schema {
            options = options.options([("search_path", schema.as_str())]);
        }
        Ok(options)
    }

    /// The stem of the outbox's NOTIFY channels: one per schema, so relays
    /// of different areas (or tests) sharing a database do not wake each
    /// other; each process adds its own suffix
    /// ([`crate::outbox::notify_channel`]).
    pub fn notify_channel(&self) -> String {
        format!("outbox_{}", self.schema.as_deref().unwrap_or("public"))
    }
}

/// A pool that connects lazily: the process starts (and reports not-ready)
/// even when the database is down, instead of crash-looping. Every call is
/// bounded: waiting for a connection by 3 s, a statement by 5 s (a request
/// must never hang on a stuck database).
pub fn pool(target: &DbTarget, application: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options = target.options(application)?.options([("statement_timeout", "5s")]);
    Ok(pool_options(max_connections).connect_lazy_with(options))
}

/// A connection idle in the pool for longer than this is pinged before it
/// is handed out; one used more recently is handed out as it is.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The options of [`pool`].
///
/// sqlx's default pings every connection before handing it out: one more
/// round trip to Postgres (and a wake-up of the backend) on every acquire,
/// four to five per placed order in the order service alone. Under load a
/// connection goes back to the pool and out again within milliseconds and
/// the ping only ever answers "alive". Here only a connection idle for
/// [`PING_IF_IDLE_FOR`] is pinged (sqlx's documented pattern): one that
/// died while the pool sat idle (a database restart) is still replaced
/// before use; one that dies in the second between two uses fails its
/// statement, as one that dies in use always did. The A/B:
/// `cargo run --release -p twinshop-platform --example pool_ping_ab`.
pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .idle_timeout(Duration::from_secs(300))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Applies the platform's migrations, then `area`'s, each with its own
/// history table. Runs on one dedicated connection that is closed after:
/// sqlx holds a session advisory lock while migrating, so concurrent
/// `migrate` runs (several replicas, a Job and a dev flag) serialise.
pub async fn migrate(target: &DbTarget, area: &Migrator) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect_with(&target.options("twinshop-migrate")?)
        .await
        .context("cannot connect to the database to migrate")?;
    if let Some(schema) = &target.schema {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS \"{}\"", schema.replace('"', ""))))
            .execute(&mut conn)
            .await
            .context("cannot create the schema")?;
    }
    // The platform's own migrations (outbox, processed events).
    let mut platform: Migrator = sqlx::migrate!("./migrations");
    platform.dangerous_set_table_name("_platform_migrations");
    platform.run(&mut conn).await.context("platform migrations failed")?;
    area.run(&mut conn).await.context("area migrations failed")?;
    conn.close().await.ok();
    Ok(())
}

/// A pooled connection taken for one unit of work, in a `db.tx` span that
/// lasts until it goes back to the pool; how long the pool made it wait is
/// the span's child `db.acquire`.
///
/// Why it exists: a request's time in the database splits into *waiting
/// for a connection* (queueing, when the pool is exhausted) and *using it*
/// (the round trips of its statements, row-lock waits included); the trace
/// map of `loadtest compare` reads the two apart from these spans, in both
/// builds alike. Use it where a store would call `pool.acquire()` or
/// `pool.begin()`: `db::acquire(&pool, "order.create")`, then
/// `conn.begin()` for a transaction (sqlx's, on the borrowed connection).
#[derive(Debug)]
pub struct Conn {
    conn: PoolConnection<Postgres>,
    /// Held, never entered: the span ends when the connection is dropped.
    _span: tracing::Span,
}

/// Takes a connection from `pool` for the unit of work `what` (the span's
/// `db.unit` field, e.g. `order.create`).
pub async fn acquire(pool: &PgPool, what: &'static str) -> Result<Conn, sqlx::Error> {
    let span = tracing::info_span!("db.tx", otel.name = what, db.system = "postgresql", db.unit = what);
    let waiting = tracing::info_span!(parent: &span, "db.acquire", otel.name = "pool acquire", db.unit = what);
    let conn = pool.acquire().instrument(waiting).await?;
    Ok(Conn { conn, _span: span })
}

/// A span for a statement that may wait on a row lock (`SELECT … FOR
/// UPDATE` on `table`): instrument the statement with it, and a lock wait
/// shows in its duration.
pub fn lock_span(table: &'static str) -> tracing::Span {
    tracing::info_span!("db.lock", otel.name = "row lock", db.table = table)
}

impl std::ops::Deref for Conn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

/// Maps a unique violation on `constraint` to `Some(())`, for adapters that
/// turn it into a domain error ("email taken").
pub fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    match err {
        sqlx::Error::Database(db) => db.is_unique_violation() && db.constraint() == Some(constraint),
        _ => false,
    }
}
