//! The user use cases, one error enum each.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use time::OffsetDateTime;
use tracing::instrument;
use twinshop_contracts::events::{Envelope, UserRegistered};

use super::{
    passwords::PasswordHasher,
    ports::{InsertUserError, OrderFact, UserCache, UserRepository},
    throttle::LoginThrottle,
    tokens::TokenIssuer,
};
use crate::domain::{Address, Email, Password, Stats, User, UserId, UserName, UserSummary};

/// A registration request, already parsed.
#[derive(Debug)]
pub struct NewUser {
    pub email: Email,
    pub password: Password,
    pub name: UserName,
    pub address: Option<Address>,
}

/// A profile update: `None` leaves a field as it is; `address:
/// Some(None)` removes the address.
#[derive(Debug, Clone, Default)]
pub struct ProfileChanges {
    pub name: Option<UserName>,
    pub address: Option<Option<Address>>,
}

/// A successful log-in.
#[derive(Debug)]
pub struct Session {
    pub access_token: String,
    pub expires_in_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("email already registered")]
    EmailTaken,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong email or wrong password: deliberately one answer.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many failed attempts for this account: refused unchecked; the
    /// next attempt is counted after the duration.
    #[error("too many login attempts")]
    Throttled(Duration),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The token is valid but its user no longer exists.
    #[error("no such user")]
    NotFound,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("no such user")]
    NotFound,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Failed login attempts per account before the throttle refuses them.
pub const LOGIN_ATTEMPTS: u32 = 10;

/// Then, one more attempt per account every so long.
pub const LOGIN_REFILL: Duration = Duration::from_secs(60);

/// The user area's application service.
#[derive(Clone)]
pub struct UserService {
    repo: Arc<dyn UserRepository>,
    cache: Arc<dyn UserCache>,
    hasher: PasswordHasher,
    tokens: TokenIssuer,
    throttle: LoginThrottle,
}

impl std::fmt::Debug for UserService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserService").finish_non_exhaustive()
    }
}

/// Postgres keeps microseconds; so do we, so a user reads back equal.
fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000).unwrap_or(now)
}

impl UserService {
    pub fn new(
        repo: Arc<dyn UserRepository>,
        cache: Arc<dyn UserCache>,
        hasher: PasswordHasher,
        tokens: TokenIssuer,
    ) -> Self {
        let throttle = LoginThrottle::new(LOGIN_ATTEMPTS, LOGIN_REFILL);
        Self { repo, cache, hasher, tokens, throttle }
    }

    /// Login attempts per account other than the defaults
    /// ([`LOGIN_ATTEMPTS`], one more every [`LOGIN_REFILL`]).
    pub fn with_login_throttle(mut self, throttle: LoginThrottle) -> Self {
        self.throttle = throttle;
        self
    }

    /// Creates the account and announces it with `user.registered`.
    #[instrument(name = "user.register", skip_all, fields(user_id))]
    pub async fn register(&self, new: NewUser) -> Result<User, RegisterError> {
        let hash = self.hasher.hash(new.password).await?;
        let user = User {
            id: UserId::new(),
            email: new.email,
            name: new.name,
            address: new.address,
            created_at: now_micros(),
        };
        tracing::Span::current().record("user_id", tracing::field::display(user.id));
        let event = Envelope::new(UserRegistered { user_id: user.id.as_uuid(), name: user.name.as_str().to_owned() });
        match self.repo.insert(&user, &hash, &event).await {
            Ok(()) => {
                tracing::info!("user registered");
                Ok(user)
            }
            Err(InsertUserError::EmailTaken) => Err(RegisterError::EmailTaken),
            Err(InsertUserError::Unexpected(e)) => Err(RegisterError::Unexpected(e.context("storing the new user"))),
        }
    }

    /// Checks the credentials and issues a token. An unknown email costs the
    /// same hash as a wrong password and gets the same answer. Failed
    /// attempts per account are throttled ([`super::throttle`]): beyond
    /// them, `Throttled` without any check.
    #[instrument(name = "user.login", skip_all, fields(user_id))]
    pub async fn login(&self, email: Option<Email>, password: Password) -> Result<Session, LoginError> {
        let account = email.as_ref().map(Email::canonical);
        let attempt = self.throttle.attempt(account.as_deref(), Instant::now()).map_err(|throttled| {
            tracing::debug!(retry_after_ms = throttled.retry_after.as_millis() as u64, "login throttled");
            LoginError::Throttled(throttled.retry_after)
        })?;
        let found = match &email {
            Some(email) => self.repo.credentials(email).await.context("reading credentials")?,
            None => None,
        };
        let (user_id, hash) = match found {
            Some((id, hash)) => (Some(id), Some(hash)),
            None => (None, None),
        };
        let matches = self.hasher.verify(password, hash).await?;
        match user_id {
            Some(id) if matches => {
                self.throttle.succeeded(attempt);
                tracing::Span::current().record("user_id", tracing::field::display(id));
                let access_token = self.tokens.issue(id)?;
                Ok(Session { access_token, expires_in_secs: self.tokens.ttl().as_secs() })
            }
            _ => Err(LoginError::InvalidCredentials),
        }
    }

    /// The caller's own profile and stats.
    #[instrument(name = "user.me", skip_all, fields(user_id = %id))]
    pub async fn me(&self, id: UserId) -> Result<(User, Stats), ProfileError> {
        let user = self.repo.find(id).await.context("reading the user")?.ok_or(ProfileError::NotFound)?;
        let stats = self.repo.stats(id).await.context("reading stats")?;
        Ok((user, stats))
    }

    /// Updates the caller's profile; the cached lookup is dropped after the
    /// change commits (a failed drop is bounded by the cache TTL).
    #[instrument(name = "user.update_profile", skip_all, fields(user_id = %id))]
    pub async fn update_profile(&self, id: UserId, changes: ProfileChanges) -> Result<User, ProfileError> {
        let user = self
            .repo
            .update_profile(id, &changes)
            .await
            .context("updating the profile")?
            .ok_or(ProfileError::NotFound)?;
        if let Err(err) = self.cache.invalidate(id).await {
            tracing::warn!(error = format!("{err:#}"), "cache invalidation failed; the entry expires by TTL");
        }
        Ok(user)
    }

    /// What other areas need to ship to the user: cache-aside.
    #[instrument(name = "user.lookup", skip_all, fields(user_id = %id, cache))]
    pub async fn lookup(&self, id: UserId) -> Result<UserSummary, LookupError> {
        match self.cache.get(id).await {
            Ok(Some(hit)) => {
                tracing::Span::current().record("cache", "hit");
                return Ok(hit);
            }
            Ok(None) => {
                tracing::Span::current().record("cache", "miss");
            }
            Err(err) => {
                tracing::Span::current().record("cache", "unavailable");
                tracing::debug!(error = format!("{err:#}"), "cache unavailable, reading through");
            }
        }
        let user = self.repo.find(id).await.context("reading the user")?.ok_or(LookupError::NotFound)?;
        let summary = UserSummary::from(&user);
        if let Err(err) = self.cache.put(&summary).await {
            tracing::debug!(error = format!("{err:#}"), "cache fill failed");
        }
        Ok(summary)
    }

    /// The effect of `order.confirmed` / `order.cancelled` on the stats.
    #[instrument(name = "user.record_order_fact", skip_all, fields(user_id = %fact.user_id, order_id = %fact.order_id, kind = ?fact.kind))]
    pub async fn record_order_fact(&self, consumer: &str, event_id: uuid::Uuid, fact: OrderFact) -> anyhow::Result<()> {
        self.repo.record_order_fact(consumer, event_id, &fact).await
    }
}
