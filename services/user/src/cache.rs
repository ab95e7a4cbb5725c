//! The Redis adapter of [`UserCache`]: JSON values under `user:v1:{id}`
//! with a TTL of at most 60 s.
//!
//! Every call is bounded by a short timeout: when Redis is slow or down the
//! lookup falls through to Postgres within milliseconds, and `/readyz`
//! reports the cache as degraded.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use redis::{AsyncCommands, aio::ConnectionManager};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    app::ports::UserCache,
    domain::{Address, UserId, UserName, UserSummary},
};

/// Upper bound of the TTL: it bounds how stale a lookup can be when an
/// invalidation is lost.
pub const MAX_TTL: Duration = Duration::from_secs(60);
const CALL_TIMEOUT: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub struct RedisUserCache {
    conn: ConnectionManager,
    ttl: Duration,
    prefix: String,
}

impl std::fmt::Debug for RedisUserCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisUserCache").field("ttl", &self.ttl).field("prefix", &self.prefix).finish()
    }
}

/// The cached shape; versioned in the key so a format change never reads
/// old entries.
#[derive(Serialize, Deserialize)]
struct Cached {
    id: Uuid,
    name: String,
    address: Option<[String; 4]>,
}

impl RedisUserCache {
    /// `prefix` namespaces keys (tests use their own); `ttl` is capped at [`MAX_TTL`].
    pub fn new(conn: ConnectionManager, ttl: Duration, prefix: impl Into<String>) -> Self {
        Self { conn, ttl: ttl.min(MAX_TTL), prefix: prefix.into() }
    }

    fn key(&self, id: UserId) -> String {
        format!("{}user:v1:{id}", self.prefix)
    }
}

async fn bounded<T>(fut: impl Future<Output = redis::RedisResult<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(CALL_TIMEOUT, fut)
        .await
        .map_err(|_| anyhow!("redis call timed out"))?
        .context("redis call failed")
}

#[async_trait::async_trait]
impl UserCache for RedisUserCache {
    async fn get(&self, id: UserId) -> anyhow::Result<Option<UserSummary>> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = bounded(conn.get(self.key(id))).await?;
        let Some(raw) = raw else { return Ok(None) };
        let cached: Cached = serde_json::from_str(&raw).context("cached entry is malformed")?;
        let address = cached
            .address
            .map(|[line1, city, postal, country]| Address::parse("address", &line1, &city, &postal, &country))
            .transpose()
            .map_err(|e| anyhow!("cached address is invalid: {e}"))?;
        Ok(Some(UserSummary { id: UserId::from_uuid(cached.id), name: UserName::parse(&cached.name)?, address }))
    }

    async fn put(&self, summary: &UserSummary) -> anyhow::Result<()> {
        let cached = Cached {
            id: summary.id.as_uuid(),
            name: summary.name.as_str().to_owned(),
            address: summary.address.as_ref().map(|a| {
                [a.line1().to_owned(), a.city().to_owned(), a.postal_code().to_owned(), a.country().as_str().to_owned()]
            }),
        };
        let mut conn = self.conn.clone();
        let () =
            bounded(conn.set_ex(self.key(summary.id), serde_json::to_string(&cached)?, self.ttl.as_secs())).await?;
        Ok(())
    }

    async fn invalidate(&self, id: UserId) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: usize = bounded(conn.del(self.key(id))).await?;
        Ok(())
    }
}

/// A connection manager that connects lazily and fails fast, so a process
/// starts (degraded) while Redis is down and heals when it is back.
pub fn connect(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url).context("REDIS URL is malformed")?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(CALL_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1));
    ConnectionManager::new_lazy_with_config(client, config).context("creating the redis connection manager")
}
