//! The user area, assembled: the one place that says how it is put
//! together, whichever process hosts it.
//!
//! It provides the user lookup to the other areas (cache-aside in Redis),
//! serves accounts and sessions, and keeps the stats read model from
//! `order.confirmed` and `order.cancelled`.

use std::{sync::Arc, time::Duration};

use serde::Deserialize;
use twinshop_contracts::{internal::UserLookup, topology};
use twinshop_platform::{
    config::{self, ConfigError, Secret, Variable},
    health::RedisProbe,
    host::{Area, AreaContext, AreaSpec, Env},
    links::Link,
};

use crate::{
    app::{
        LOGIN_ATTEMPTS, LOGIN_REFILL, UserService,
        passwords::PasswordHasher,
        throttle::LoginThrottle,
        tokens::{JwtIssuerConfig, TokenIssuer},
    },
    cache::{self, MAX_TTL, RedisUserCache},
    events::OrderEventsHandler,
    http,
    provider::LookupProvider,
    store::{MIGRATOR, PgUserRepository},
};

/// The user area's own settings, under the process's prefix (`USER_` in
/// the user service, `MONOLITH_` in the monolith), plus the token
/// issuer's `JWT_PRIVATE_KEY` and `JWT_TTL_SECS`.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `REDIS_URL` | required | the lookup cache (secret) |
/// | `CACHE_TTL_SECS` | `60` | lookup cache TTL, 1–60: bounds how stale a lookup can be |
/// | `HASH_CONCURRENCY` | `0` (= cores) | password hashes at once |
/// | `LOGIN_ATTEMPTS` | `10` | failed logins per account before `429 too_many_requests` |
/// | `LOGIN_REFILL_SECS` | `60` | then one more attempt per account every so many seconds |
#[derive(Debug, Clone, Deserialize)]
pub struct UserSettings {
    pub redis_url: Secret<String>,
    #[serde(default = "default_ttl")]
    pub cache_ttl_secs: u64,
    #[serde(default)]
    pub hash_concurrency: usize,
    #[serde(default = "default_login_attempts")]
    pub login_attempts: u32,
    #[serde(default = "default_login_refill")]
    pub login_refill_secs: u64,
}

fn default_ttl() -> u64 {
    60
}

fn default_login_attempts() -> u32 {
    LOGIN_ATTEMPTS
}

fn default_login_refill() -> u64 {
    LOGIN_REFILL.as_secs()
}

/// What the user area reads.
#[derive(Debug, Clone)]
pub struct Settings {
    pub user: UserSettings,
    pub jwt: JwtIssuerConfig,
}

fn settings(env: &Env) -> Result<Settings, ConfigError> {
    let user: UserSettings = env.read()?;
    for (name, value) in
        [("LOGIN_ATTEMPTS", u64::from(user.login_attempts)), ("LOGIN_REFILL_SECS", user.login_refill_secs)]
    {
        if value == 0 {
            return Err(ConfigError {
                variable: format!("{}{name}", env.prefix()),
                problem: "must be at least 1".into(),
            });
        }
    }
    if user.cache_ttl_secs == 0 || user.cache_ttl_secs > MAX_TTL.as_secs() {
        return Err(ConfigError {
            variable: format!("{}CACHE_TTL_SECS", env.prefix()),
            problem: format!("must be from 1 to {}", MAX_TTL.as_secs()),
        });
    }
    Ok(Settings { user, jwt: env.read_prefixed("JWT_")? })
}

fn variables(prefix: &str) -> Result<Vec<Variable>, String> {
    Ok(config::merge_variables([
        config::variables::<UserSettings>(prefix)?,
        config::variables::<JwtIssuerConfig>("JWT_")?,
    ]))
}

fn assemble(ctx: &mut AreaContext<'_>, s: Settings) -> anyhow::Result<Area> {
    let redis = cache::connect(s.user.redis_url.expose())?;
    let users = UserService::new(
        Arc::new(PgUserRepository::new(ctx.pool(), ctx.db_target())),
        Arc::new(RedisUserCache::new(redis.clone(), Duration::from_secs(s.user.cache_ttl_secs), "")),
        PasswordHasher::new(s.user.hash_concurrency)?,
        TokenIssuer::from_config(&s.jwt)?,
    )
    .with_login_throttle(LoginThrottle::new(s.user.login_attempts, Duration::from_secs(s.user.login_refill_secs)));
    ctx.provide::<dyn UserLookup>(Arc::new(LookupProvider(users.clone())));
    Ok(Area {
        public: http::public_routes(users.clone()),
        consumers: vec![(topology::USER_ORDER_EVENTS, Arc::new(OrderEventsHandler::new(users)))],
        // A cache: degradable (lookups read through to Postgres).
        probes: vec![Arc::new(RedisProbe(redis))],
        ..Area::default()
    })
}

/// The user area.
pub static AREA: AreaSpec<Settings> = AreaSpec {
    name: "user",
    schema: "users",
    migrator: &MIGRATOR,
    needs: &[],
    provides: &[<dyn UserLookup as Link>::SPEC],
    settings,
    variables,
    assemble,
};
