//! Postgres: pools and migrations.
//!
//! Each area keeps its SQL and migrations in its own crate; the platform's
//! own tables (outbox, processed events) are migrated by [`migrate`] with a
//! separate history table, so areas and platform never share version numbers.
//! A `schema` puts everything under one Postgres schema via `search_path`:
//! the monolith gives each area its own; tests give each test its own.

use std::{str::FromStr, time::Duration};

use anyhow::Context as _;
use sqlx::{
    Connection, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

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

    /// The outbox's NOTIFY channel: one per schema, so relays of different
    /// areas (or tests) sharing a database do not wake each other.
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
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .idle_timeout(Duration::from_secs(300))
        .connect_lazy_with(options))
}

/// Applies the platform's migrations, then `area`'s, each with its own
/// history table. Runs on one dedicated connection that is closed after:
/// sqlx holds a session advisory lock while migrating, so concurrent
/// `migrate` runs (several replicas, a Job and a dev flag) serialise.
pub async fn migrate(target: &DbTarget, area: &Migrator) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect_with(&target.options("twinshop-migrate")?)
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

/// Maps a unique violation on `constraint` to `Some(())`, for adapters that
/// turn it into a domain error ("email taken").
pub fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    match err {
        sqlx::Error::Database(db) => db.is_unique_violation() && db.constraint() == Some(constraint),
        _ => false,
    }
}
