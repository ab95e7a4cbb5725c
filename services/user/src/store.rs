//! The Postgres adapter of [`UserRepository`].
//!
//! All SQL of the user area lives here. The unique index on `lower(email)`
//! is what makes registration race-free: its violation maps to
//! `EmailTaken`, whatever the interleaving.

use anyhow::Context as _;
use sqlx::{Connection as _, PgPool};
use time::OffsetDateTime;
use twinshop_contracts::events::{Envelope, UserRegistered};
use twinshop_platform::{
    db::{self, DbTarget},
    inbox, outbox,
};
use uuid::Uuid;

use crate::{
    app::{
        ProfileChanges,
        ports::{InsertUserError, OrderFact, OrderFactKind, UserRepository},
    },
    domain::{Address, Email, Stats, User, UserId, UserName},
};

/// The user area's migrations (its own tables; the platform's come first).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

const EMAIL_KEY: &str = "users_email_lower_key";

#[derive(Debug, Clone)]
pub struct PgUserRepository {
    pool: PgPool,
    target: DbTarget,
}

impl PgUserRepository {
    pub fn new(pool: PgPool, target: DbTarget) -> Self {
        Self { pool, target }
    }
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    name: String,
    address_line1: Option<String>,
    address_city: Option<String>,
    address_postal_code: Option<String>,
    address_country: Option<String>,
    created_at: OffsetDateTime,
}

const USER_COLUMNS: &str =
    "id, email, name, address_line1, address_city, address_postal_code, address_country, created_at";

impl TryFrom<UserRow> for User {
    type Error = anyhow::Error;

    /// Rows were valid when written; a row that no longer parses is a bug
    /// or a manual edit, reported as such.
    fn try_from(row: UserRow) -> anyhow::Result<Self> {
        let address = match (row.address_line1, row.address_city, row.address_postal_code, row.address_country) {
            (Some(line1), Some(city), Some(postal), Some(country)) => Some(
                Address::parse("address", &line1, &city, &postal, &country)
                    .map_err(|e| anyhow::anyhow!("stored address is invalid: {e}"))?,
            ),
            _ => None,
        };
        Ok(User {
            id: UserId::from_uuid(row.id),
            email: Email::parse(&row.email).context("stored email is invalid")?,
            name: UserName::parse(&row.name).context("stored name is invalid")?,
            address,
            created_at: row.created_at,
        })
    }
}

#[async_trait::async_trait]
impl UserRepository for PgUserRepository {
    async fn insert(
        &self,
        user: &User,
        password_hash: &str,
        event: &Envelope<UserRegistered>,
    ) -> Result<(), InsertUserError> {
        let mut tx = self.pool.begin().await.context("beginning a transaction")?;
        let a = user.address.as_ref();
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, address_line1, address_city, address_postal_code, \
             address_country, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(user.id.as_uuid())
        .bind(user.email.as_str())
        .bind(user.name.as_str())
        .bind(password_hash)
        .bind(a.map(Address::line1))
        .bind(a.map(Address::city))
        .bind(a.map(Address::postal_code))
        .bind(a.map(|a| a.country().as_str().to_owned()))
        .bind(user.created_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(err) if db::is_unique_violation(&err, EMAIL_KEY) => return Err(InsertUserError::EmailTaken),
            other => other.context("inserting the user")?,
        };
        outbox::enqueue(&mut tx, &self.target, event).await?;
        tx.commit().await.context("committing the registration")?;
        Ok(())
    }

    async fn credentials(&self, email: &Email) -> anyhow::Result<Option<(UserId, String)>> {
        let row: Option<(Uuid, String)> = sqlx::query_as("SELECT id, password_hash FROM users WHERE lower(email) = $1")
            .bind(email.canonical())
            .fetch_optional(&self.pool)
            .await
            .context("reading credentials")?;
        Ok(row.map(|(id, hash)| (UserId::from_uuid(id), hash)))
    }

    async fn find(&self, id: UserId) -> anyhow::Result<Option<User>> {
        let row: Option<UserRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")))
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .context("reading the user")?;
        row.map(User::try_from).transpose()
    }

    async fn update_profile(&self, id: UserId, changes: &ProfileChanges) -> anyhow::Result<Option<User>> {
        // COALESCE keeps the name when none is given; the address columns
        // change together, only when `set_address` is true.
        let address = changes.address.as_ref().and_then(Option::as_ref);
        let row: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE users SET name = COALESCE($2, name), \
             address_line1 = CASE WHEN $3 THEN $4 ELSE address_line1 END, \
             address_city = CASE WHEN $3 THEN $5 ELSE address_city END, \
             address_postal_code = CASE WHEN $3 THEN $6 ELSE address_postal_code END, \
             address_country = CASE WHEN $3 THEN $7 ELSE address_country END, \
             updated_at = now() WHERE id = $1 RETURNING {USER_COLUMNS}"
        )))
        .bind(id.as_uuid())
        .bind(changes.name.as_ref().map(UserName::as_str))
        .bind(changes.address.is_some())
        .bind(address.map(Address::line1))
        .bind(address.map(Address::city))
        .bind(address.map(Address::postal_code))
        .bind(address.map(|a| a.country().as_str().to_owned()))
        .fetch_optional(&self.pool)
        .await
        .context("updating the profile")?;
        row.map(User::try_from).transpose()
    }

    async fn stats(&self, id: UserId) -> anyhow::Result<Stats> {
        let (orders_confirmed, total_spent_cents): (i64, i64) = sqlx::query_as(
            "SELECT count(*), COALESCE(sum(total_cents), 0)::bigint FROM user_order_facts \
             WHERE user_id = $1 AND confirmed AND NOT cancelled",
        )
        .bind(id.as_uuid())
        .fetch_one(&self.pool)
        .await
        .context("reading stats")?;
        Ok(Stats { orders_confirmed, total_spent_cents })
    }

    async fn record_order_fact(&self, consumer: &str, event_id: Uuid, fact: &OrderFact) -> anyhow::Result<()> {
        let mut conn = db::acquire(&self.pool, "user.record_order_fact").await.context("acquiring a connection")?;
        let mut tx = conn.begin().await.context("beginning the fact")?;
        if inbox::claim(&mut tx, consumer, event_id).await.context("recording the event")? {
            let (confirmed, cancelled) = match fact.kind {
                OrderFactKind::Confirmed => (true, false),
                OrderFactKind::Cancelled => (false, true),
            };
            // Either event may come first; each only ever sets its own flag.
            sqlx::query(
                "INSERT INTO user_order_facts (order_id, user_id, total_cents, confirmed, cancelled) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id) DO UPDATE SET \
                 confirmed = user_order_facts.confirmed OR EXCLUDED.confirmed, \
                 cancelled = user_order_facts.cancelled OR EXCLUDED.cancelled",
            )
            .bind(fact.order_id)
            .bind(fact.user_id.as_uuid())
            .bind(fact.total_cents)
            .bind(confirmed)
            .bind(cancelled)
            .execute(&mut *tx)
            .await
            .context("recording the order fact")?;
        }
        tx.commit().await.context("committing the fact")?;
        Ok(())
    }
}
