//! `Idempotency-Key`: what a client sends so a retried request has no
//! further effect (docs/api.md): 1–255 visible ASCII characters, scoped per
//! user and endpoint.
//!
//! One facility for every area: each area's schema has an `idempotency`
//! table (platform migration 0003). A key remembers the request it was
//! first used with (its parsed JSON), what that request created, a lease
//! held by the request working on it, and once decided the request's
//! *typed* outcome, an area's own serde value (never an HTTP rendering),
//! which the HTTP edge renders again on a replay with `Idempotent-Replayed`.
//! The functions below are the SQL; an area's store calls them inside the
//! transactions where the outcome is decided, and its use case decides
//! what a [`Found`] key means.

use std::{fmt, time::Duration};

use anyhow::Context as _;
use axum::http::HeaderMap;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use sqlx::PgConnection;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::problem::Problem;

pub const HEADER: &str = "idempotency-key";
/// The response header on a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() || raw.len() > 255 {
            return Err("must be 1 to 255 characters");
        }
        if !raw.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err("must be visible ASCII characters");
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads the optional header; a malformed one is `validation_failed`.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, Problem> {
        let Some(value) = headers.get(HEADER) else { return Ok(None) };
        let raw = value
            .to_str()
            .map_err(|_| Problem::invalid_field("Idempotency-Key", "must be visible ASCII characters"))?;
        Self::parse(raw).map(Some).map_err(|msg| Problem::invalid_field("Idempotency-Key", msg))
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({})", self.0)
    }
}

/// Whose key and for which operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    pub user_id: Uuid,
    /// e.g. `orders.place`, `wallet.top_up`.
    pub operation: &'static str,
}

/// A key as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Found<O> {
    /// The request body (parsed JSON) the key was first used with.
    pub fingerprint: Value,
    /// What the first request created, if anything yet.
    pub resource_id: Option<Uuid>,
    /// The first request's outcome, once decided.
    pub outcome: Option<O>,
    /// The request holding the key stopped renewing it (it died).
    pub lease_expired: bool,
    /// Bumped by every takeover.
    pub generation: i32,
}

/// What an earlier use of a key means for a request that repeats it.
#[derive(Debug, Clone, PartialEq)]
pub enum Repeat<O> {
    /// Decided before: answer the same again.
    Replay(O),
    /// Same key, another request body: `idempotency_key_reused`.
    Reused,
    /// Another request is working on it right now: `idempotency_key_in_use`.
    InUse,
    /// Its holder stopped (its lease ran out): whoever takes the key over
    /// resumes the resource the first request created.
    Abandoned { resource_id: Option<Uuid> },
}

impl<O> Found<O> {
    /// The rule, in one place: what repeating the key with `fingerprint`
    /// means. Request bodies compare as parsed JSON.
    pub fn repeat(self, fingerprint: &Value) -> Repeat<O> {
        if self.fingerprint != *fingerprint {
            return Repeat::Reused;
        }
        match self.outcome {
            Some(outcome) => Repeat::Replay(outcome),
            None if self.lease_expired => Repeat::Abandoned { resource_id: self.resource_id },
            None => Repeat::InUse,
        }
    }
}

/// A key held by the request working on it: its lease is renewed while the
/// request works, and every write the request makes on the key's behalf is
/// checked against `generation`, so a holder that was only paused and
/// lost its lease to a takeover (a new generation) writes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub key: IdempotencyKey,
    pub generation: i32,
}

/// Reads the key, if it was used before.
pub async fn find<O: DeserializeOwned>(
    conn: &mut PgConnection,
    scope: Scope,
    key: &IdempotencyKey,
) -> anyhow::Result<Option<Found<O>>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        request: String,
        resource_id: Option<Uuid>,
        outcome: Option<Value>,
        lease_expired: bool,
        generation: i32,
    }
    let row: Option<Row> = sqlx::query_as(
        "SELECT request, resource_id, outcome, lease_until < now() AS lease_expired, generation FROM idempotency \
         WHERE user_id = $1 AND operation = $2 AND key = $3",
    )
    .bind(scope.user_id)
    .bind(scope.operation)
    .bind(key.as_str())
    .fetch_optional(&mut *conn)
    .await
    .context("reading the idempotency key")?;
    row.map(|r| {
        Ok(Found {
            fingerprint: serde_json::from_str(&r.request).context("parsing the stored request fingerprint")?,
            resource_id: r.resource_id,
            outcome: r.outcome.map(serde_json::from_value).transpose().context("reading the stored outcome")?,
            lease_expired: r.lease_expired,
            generation: r.generation,
        })
    })
    .transpose()
}

/// Records the key's first use, leased to this request for `lease`, in the
/// caller's transaction (the one that creates `resource_id`). `false`: a
/// concurrent request with the same key recorded it first.
pub async fn insert(
    conn: &mut PgConnection,
    scope: Scope,
    key: &IdempotencyKey,
    fingerprint: &Value,
    resource_id: Option<Uuid>,
    lease: Duration,
) -> anyhow::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency (user_id, operation, key, request, resource_id, lease_until) \
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) ON CONFLICT DO NOTHING",
    )
    .bind(scope.user_id)
    .bind(scope.operation)
    .bind(key.as_str())
    // As JSON text, not jsonb: jsonb refuses `\u0000` (see the migration).
    .bind(fingerprint.to_string())
    .bind(resource_id)
    .bind(lease.as_secs_f64())
    .execute(&mut *conn)
    .await
    .context("recording the idempotency key")?
    .rows_affected();
    Ok(inserted == 1)
}

/// Takes over a key whose lease ran out and that has no outcome: leases it
/// to this request and bumps its generation. `None`: another request took
/// it first (or it was answered meanwhile).
pub async fn take_over(
    conn: &mut PgConnection,
    scope: Scope,
    key: &IdempotencyKey,
    lease: Duration,
) -> anyhow::Result<Option<i32>> {
    let generation: Option<i32> = sqlx::query_scalar(
        "UPDATE idempotency SET lease_until = now() + make_interval(secs => $4), generation = generation + 1 \
         WHERE user_id = $1 AND operation = $2 AND key = $3 AND lease_until < now() AND outcome IS NULL \
         RETURNING generation",
    )
    .bind(scope.user_id)
    .bind(scope.operation)
    .bind(key.as_str())
    .bind(lease.as_secs_f64())
    .fetch_optional(&mut *conn)
    .await
    .context("taking over the idempotency key")?;
    Ok(generation)
}

/// Extends the lease of a key this request still holds (same generation,
/// no outcome yet). `false`: it was taken over or answered meanwhile.
pub async fn renew(conn: &mut PgConnection, scope: Scope, held: &Held, lease: Duration) -> anyhow::Result<bool> {
    let renewed = sqlx::query(
        "UPDATE idempotency SET lease_until = now() + make_interval(secs => $5) \
         WHERE user_id = $1 AND operation = $2 AND key = $3 AND generation = $4 AND outcome IS NULL",
    )
    .bind(scope.user_id)
    .bind(scope.operation)
    .bind(held.key.as_str())
    .bind(held.generation)
    .bind(lease.as_secs_f64())
    .execute(&mut *conn)
    .await
    .context("renewing the idempotency lease")?
    .rows_affected();
    Ok(renewed == 1)
}

/// Fences the caller's transaction: locks the key if this request still
/// holds it (same generation), so no takeover can slip in before the
/// transaction ends. `false`: another request took it over; write nothing.
pub async fn fence(conn: &mut PgConnection, scope: Scope, held: &Held) -> anyhow::Result<bool> {
    let holds: Option<i32> = sqlx::query_scalar(
        "SELECT generation FROM idempotency WHERE user_id = $1 AND operation = $2 AND key = $3 AND generation = $4 \
         FOR UPDATE",
    )
    .bind(scope.user_id)
    .bind(scope.operation)
    .bind(held.key.as_str())
    .bind(held.generation)
    .fetch_optional(&mut *conn)
    .instrument(crate::db::lock_span("idempotency"))
    .await
    .context("fencing on the idempotency key")?;
    Ok(holds.is_some())
}

/// Stores the key's outcome, unless one is stored already (the first
/// outcome is final), in the caller's transaction.
pub async fn complete<O: Serialize>(
    conn: &mut PgConnection,
    scope: Scope,
    key: &IdempotencyKey,
    outcome: &O,
) -> anyhow::Result<()> {
    let outcome = serde_json::to_value(outcome).context("serialising the outcome")?;
    sqlx::query(
        "UPDATE idempotency SET outcome = $4 WHERE user_id = $1 AND operation = $2 AND key = $3 AND outcome IS NULL",
    )
    .bind(scope.user_id)
    .bind(scope.operation)
    .bind(key.as_str())
    .bind(outcome)
    .execute(&mut *conn)
    .await
    .context("storing the idempotent outcome")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(fingerprint: Value, outcome: Option<&'static str>, lease_expired: bool) -> Found<&'static str> {
        Found { fingerprint, resource_id: None, outcome, lease_expired, generation: 1 }
    }

    #[test]
    fn a_repeated_key_replays_refuses_waits_or_resumes() {
        let body = serde_json::json!({"amount_cents": 5, "note": "x"});
        let same_parsed = serde_json::json!({"note": "x", "amount_cents": 5});
        assert_eq!(found(body.clone(), Some("first"), false).repeat(&same_parsed), Repeat::Replay("first"));
        assert_eq!(found(body.clone(), Some("first"), true).repeat(&serde_json::json!({})), Repeat::Reused);
        assert_eq!(found(body.clone(), None, false).repeat(&body), Repeat::InUse);
        assert_eq!(found(body.clone(), None, true).repeat(&body), Repeat::Abandoned { resource_id: None });
    }

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse("ünïcode").is_err());
    }
}
