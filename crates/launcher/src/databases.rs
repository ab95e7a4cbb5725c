//! Each service's database: created (fresh with a unique suffix, or named
//! and created only if missing), migrated by running the binary's own
//! `migrate` subcommand (the one-off admin process of factor 12, exactly as
//! compose and Kubernetes run it), and dropped at the end when fresh.
//!
//! Fresh names carry the launcher's pid (`twinshop_order_l4242_1a2b3c4d`),
//! so a later start drops the databases of a run whose launcher died
//! without cleaning up.

use std::{path::Path, process::Stdio};

use anyhow::{Context as _, Result, bail, ensure};
use sqlx::{Connection as _, Executor as _, PgConnection};

use crate::plan::Backing;

/// `{server}/{database}{params}`.
pub fn database_url(backing: &Backing, database: &str) -> String {
    format!("{}/{database}{}", backing.postgres.trim_end_matches('/'), backing.postgres_params)
}

/// A fresh database name for `area` (`user`, `order`, ...).
pub fn fresh_name(area: &str) -> String {
    format!("twinshop_{area}_l{}_{:08x}", std::process::id(), rand::random::<u32>())
}

/// `twinshop_<area><suffix>`, refusing suffixes that are not `[a-z0-9_]*`.
pub fn named(area: &str, suffix: &str) -> Result<String> {
    ensure!(
        suffix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "a database suffix may hold only a-z, 0-9 and _ (got {suffix:?})"
    );
    Ok(format!("twinshop_{area}{suffix}"))
}

async fn admin(backing: &Backing) -> Result<PgConnection> {
    let url = database_url(backing, "postgres");
    PgConnection::connect(&url).await.with_context(|| format!("connecting to Postgres at {}", backing.postgres))
}

async fn exists_on(conn: &mut PgConnection, name: &str) -> Result<bool> {
    let found: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(conn)
        .await
        .context("looking up the database")?;
    Ok(found.is_some())
}

/// Whether database `name` exists.
pub async fn exists(backing: &Backing, name: &str) -> Result<bool> {
    let mut conn = admin(backing).await?;
    let found = exists_on(&mut conn, name).await;
    let _ = conn.close().await;
    found
}

/// Creates `name` unless it exists; returns whether it was created.
pub async fn create_if_missing(backing: &Backing, name: &str) -> Result<bool> {
    let mut conn = admin(backing).await?;
    if exists_on(&mut conn, name).await? {
        return Ok(false);
    }
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .with_context(|| format!("creating the database {name}"))?;
    let _ = conn.close().await;
    Ok(true)
}

/// Drops `name`, closing its sessions first.
pub async fn drop_database(backing: &Backing, name: &str) -> Result<()> {
    let mut conn = admin(backing).await?;
    conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
        .await
        .with_context(|| format!("dropping the database {name}"))?;
    let _ = conn.close().await;
    Ok(())
}

/// The pid in a fresh database's name, if `name` is one.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("twinshop_")?;
    let (_, tail) = rest.split_once("_l")?;
    let (pid, hex) = tail.split_once('_')?;
    (hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(())?;
    pid.parse().ok()
}

/// Drops fresh databases whose launcher is gone; returns their names.
pub async fn drop_leftovers(backing: &Backing) -> Result<Vec<String>> {
    let mut conn = admin(backing).await?;
    let names: Vec<(String,)> =
        sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'twinshop\\_%\\_l%'")
            .fetch_all(&mut conn)
            .await
            .context("listing databases")?;
    let _ = conn.close().await;
    let mut dropped = Vec::new();
    for (name,) in names {
        if owner_pid(&name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            drop_database(backing, &name).await?;
            dropped.push(name);
        }
    }
    Ok(dropped)
}

/// Runs `<binary> migrate` with `env` (and nothing else of ours), logging
/// its output under `name`.
pub async fn migrate(binary: &Path, env: &[(String, String)], logs: &crate::LogTarget, name: &str) -> Result<()> {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.arg("migrate").env_clear().envs(crate::processes::base_env()).envs(env.iter().cloned());
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().with_context(|| format!("running {} migrate", binary.display()))?;
    let pumps: Vec<_> =
        [child.stdout.take().map(|o| logs.pump(name, o)), child.stderr.take().map(|e| logs.pump(name, e))]
            .into_iter()
            .flatten()
            .collect();
    let status = tokio::time::timeout(std::time::Duration::from_secs(120), child.wait())
        .await
        .with_context(|| format!("{} migrate took over 2 minutes", binary.display()))??;
    for pump in pumps {
        let _ = pump.await;
    }
    if !status.success() {
        bail!("{} migrate failed ({status}); its output is in the logs as [{name}]", binary.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fresh_names_have_an_owner() {
        assert_eq!(owner_pid("twinshop_order_l4242_1a2b3c4d"), Some(4242));
        assert_eq!(owner_pid(&fresh_name("user")), Some(std::process::id()));
        assert_eq!(owner_pid("twinshop_user"), None);
        assert_eq!(owner_pid("twinshop_user_lone_run"), None);
        assert!(named("user", "_run3").is_ok_and(|n| n == "twinshop_user_run3"));
        assert!(named("user", "x; DROP").is_err());
    }
}
