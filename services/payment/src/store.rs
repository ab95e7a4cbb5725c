//! The Postgres adapter of [`PaymentRepository`]: all of the payment area's
//! SQL.
//!
//! Concurrency: READ COMMITTED with explicit row locks. Every balance change
//! first locks the wallet row (`SELECT … FOR UPDATE`), so two charges on one
//! wallet run one after the other and the second sees the first's balance.
//! Races between *different* wallets on one order id (a mismatched Charge,
//! a Refund tombstone) end in a unique violation on `charges`; the
//! transaction is then retried and takes the replay path.

use std::time::Duration;

use anyhow::Context as _;
use sqlx::{Connection as _, PgConnection, PgPool};
use time::OffsetDateTime;
use tracing::Instrument as _;
use twinshop_contracts::events::{Envelope, PaymentRefunded};
use twinshop_platform::{
    db::{self, DbTarget},
    idempotency::{self, Scope},
    inbox, outbox,
    pagination::{Page, PageRequest, Position},
};
use uuid::Uuid;

use crate::{
    app::{ChargeResult, PaymentRepository, TopUp, TopUpRequest, TopUpWrite},
    domain::{
        Amount, ChargeDecision, ChargeOutcome, ChargeRecord, EntryKind, LedgerEntry, RefundOutcome, Wallet,
        charge::first_charge,
    },
};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The operation top-up keys are scoped to.
pub const TOP_UP: &str = "wallet.top_up";

/// Tries of a transaction that lost a race on a unique key.
const RACE_RETRIES: usize = 3;

#[derive(Debug, Clone)]
pub struct PgPaymentRepository {
    pool: PgPool,
    target: DbTarget,
}

impl PgPaymentRepository {
    pub fn new(pool: PgPool, target: DbTarget) -> Self {
        Self { pool, target }
    }
}

fn is_unique_violation(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|c| matches!(c.downcast_ref::<sqlx::Error>(), Some(sqlx::Error::Database(db)) if db.is_unique_violation()))
}

/// Locks the user's wallet row (creating it at zero) and returns its balance.
async fn lock_wallet(tx: &mut PgConnection, user_id: Uuid) -> anyhow::Result<i64> {
    let locked: Option<(i64,)> = sqlx::query_as("SELECT balance_cents FROM wallets WHERE user_id = $1 FOR UPDATE")
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await
        .context("locking the wallet")?;
    if let Some((balance,)) = locked {
        return Ok(balance);
    }
    sqlx::query("INSERT INTO wallets (user_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .context("creating the wallet")?;
    let (balance,): (i64,) = sqlx::query_as("SELECT balance_cents FROM wallets WHERE user_id = $1 FOR UPDATE")
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await
        .context("locking the new wallet")?;
    Ok(balance)
}

async fn move_money(
    tx: &mut PgConnection,
    user_id: Uuid,
    kind: EntryKind,
    delta: i64,
    amount: i64,
    order_id: Option<Uuid>,
    entry_id: Uuid,
) -> anyhow::Result<i64> {
    let (balance,): (i64,) =
        sqlx::query_as("UPDATE wallets SET balance_cents = balance_cents + $2, updated_at = now() WHERE user_id = $1 RETURNING balance_cents")
            .bind(user_id)
            .bind(delta)
            .fetch_one(&mut *tx)
            .await
            .context("updating the balance")?;
    sqlx::query("INSERT INTO ledger_entries (id, user_id, kind, amount_cents, order_id) VALUES ($1, $2, $3, $4, $5)")
        .bind(entry_id)
        .bind(user_id)
        .bind(kind.as_str())
        .bind(amount)
        .bind(order_id)
        .execute(&mut *tx)
        .await
        .context("writing the ledger entry")?;
    Ok(balance)
}

#[derive(sqlx::FromRow)]
struct ChargeRow {
    order_id: Uuid,
    user_id: Option<Uuid>,
    amount_cents: Option<i64>,
    outcome: String,
    balance_after: i64,
    refunded: bool,
}

impl ChargeRow {
    fn into_record(self) -> anyhow::Result<ChargeRecord> {
        Ok(ChargeRecord {
            order_id: self.order_id,
            user_id: self.user_id,
            amount_cents: self.amount_cents,
            outcome: ChargeOutcome::parse(&self.outcome).context("unknown charge outcome in the database")?,
            balance_after: self.balance_after,
            refunded: self.refunded,
        })
    }
}

const CHARGE_COLUMNS: &str =
    "order_id, user_id, amount_cents, outcome, balance_after, refunded_at IS NOT NULL AS refunded";

impl PgPaymentRepository {
    async fn charge_once(&self, order_id: Uuid, user_id: Uuid, amount: Amount) -> anyhow::Result<ChargeResult> {
        let mut conn = db::acquire(&self.pool, "payment.charge").await.context("acquiring a connection")?;
        let mut tx = conn.begin().await.context("beginning the charge")?;
        let balance = lock_wallet(&mut tx, user_id).instrument(db::lock_span("wallets")).await?;
        let existing: Option<ChargeRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CHARGE_COLUMNS} FROM charges WHERE order_id = $1")))
                .bind(order_id)
                .fetch_optional(&mut *tx)
                .await
                .context("reading the charge")?;
        if let Some(row) = existing {
            tx.rollback().await.ok();
            return Ok(match row.into_record()?.decide_repeat(user_id, amount) {
                ChargeDecision::Replay(outcome, balance_cents) => ChargeResult::Decided { outcome, balance_cents },
                ChargeDecision::Mismatch => ChargeResult::Mismatch,
            });
        }
        let (outcome, balance_after) = first_charge(balance, amount);
        if outcome == ChargeOutcome::Charged {
            move_money(
                &mut tx,
                user_id,
                EntryKind::Charge,
                -amount.cents(),
                amount.cents(),
                Some(order_id),
                Uuid::now_v7(),
            )
            .await?;
        }
        sqlx::query(
            "INSERT INTO charges (order_id, user_id, amount_cents, outcome, balance_after) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(order_id)
        .bind(user_id)
        .bind(amount.cents())
        .bind(outcome.as_str())
        .bind(balance_after)
        .execute(&mut *tx)
        .await
        .context("recording the charge")?;
        tx.commit().await.context("committing the charge")?;
        Ok(ChargeResult::Decided { outcome, balance_cents: balance_after })
    }

    async fn refund_once(&self, order_id: Uuid, dedup: Option<(&str, Uuid)>) -> anyhow::Result<(RefundOutcome, i64)> {
        let mut tx = self.pool.begin().await.context("beginning the refund")?;
        if let Some((consumer, event_id)) = dedup
            && !inbox::claim(&mut tx, consumer, event_id).await.context("recording the event")?
        {
            tx.rollback().await.ok();
            tracing::debug!("event already processed");
            return Ok((RefundOutcome::AlreadyRefunded, 0));
        }
        let existing: Option<ChargeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CHARGE_COLUMNS} FROM charges WHERE order_id = $1 FOR UPDATE"
        )))
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await
        .context("locking the charge")?;
        let Some(row) = existing else {
            // No charge yet: leave the tombstone that voids a late one.
            sqlx::query("INSERT INTO charges (order_id, outcome, balance_after) VALUES ($1, 'voided', 0)")
                .bind(order_id)
                .execute(&mut *tx)
                .await
                .context("writing the tombstone")?;
            tx.commit().await.context("committing the tombstone")?;
            return Ok((RefundOutcome::NotCharged, 0));
        };
        let record = row.into_record()?;
        let outcome = record.refund_outcome();
        let amount = record.amount_cents.unwrap_or(0);
        if outcome == RefundOutcome::Refunded {
            let user_id = record.user_id.context("a charged order has a user")?;
            lock_wallet(&mut tx, user_id).await?;
            move_money(&mut tx, user_id, EntryKind::Refund, amount, amount, Some(order_id), Uuid::now_v7()).await?;
            sqlx::query("UPDATE charges SET refunded_at = now() WHERE order_id = $1")
                .bind(order_id)
                .execute(&mut *tx)
                .await
                .context("marking refunded")?;
            let event = Envelope::new(PaymentRefunded { order_id, user_id, amount_cents: amount });
            outbox::enqueue(&mut tx, &self.target, &event).await?;
        }
        tx.commit().await.context("committing the refund")?;
        Ok((outcome, if outcome == RefundOutcome::NotCharged { 0 } else { amount }))
    }

    async fn top_up_once(&self, request: &TopUpRequest) -> anyhow::Result<Option<TopUpWrite>> {
        let mut tx = self.pool.begin().await.context("beginning the top-up")?;
        let id = Uuid::now_v7();
        if let Some(key) = &request.key {
            let scope = Scope { user_id: request.user_id, operation: TOP_UP };
            // Recording the key first: a concurrent request with the same
            // key waits here until this transaction ends, then sees it.
            if !idempotency::insert(&mut tx, scope, key, &request.fingerprint, Some(id), Duration::ZERO).await? {
                let found = idempotency::find::<TopUp>(&mut tx, scope, key).await?;
                tx.rollback().await.ok();
                // Gone again (its transaction rolled back): try once more.
                return Ok(found.map(|f| TopUpWrite::Repeated(f.repeat(&request.fingerprint))));
            }
        }
        lock_wallet(&mut tx, request.user_id).await?;
        let amount = request.amount.cents();
        let balance = move_money(&mut tx, request.user_id, EntryKind::TopUp, amount, amount, None, id).await?;
        sqlx::query("INSERT INTO top_ups (id, user_id, amount_cents, balance_after) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(request.user_id)
            .bind(amount)
            .bind(balance)
            .execute(&mut *tx)
            .await
            .context("recording the top-up")?;
        let top_up = TopUp { id, amount_cents: amount, balance_cents: balance };
        if let Some(key) = &request.key {
            let scope = Scope { user_id: request.user_id, operation: TOP_UP };
            idempotency::complete(&mut tx, scope, key, &top_up).await?;
        }
        tx.commit().await.context("committing the top-up")?;
        Ok(Some(TopUpWrite::Applied(top_up)))
    }
}

#[async_trait::async_trait]
impl PaymentRepository for PgPaymentRepository {
    async fn wallet(&self, user_id: Uuid) -> anyhow::Result<Wallet> {
        let balance: Option<(i64,)> = sqlx::query_as("SELECT balance_cents FROM wallets WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .context("reading the wallet")?;
        Ok(Wallet { user_id, balance_cents: balance.map_or(0, |(b,)| b) })
    }

    async fn ledger(&self, user_id: Uuid, page: PageRequest) -> anyhow::Result<Page<LedgerEntry>> {
        let rows: Vec<(Uuid, String, i64, Option<Uuid>, OffsetDateTime)> = sqlx::query_as(
            "SELECT id, kind, amount_cents, order_id, created_at FROM ledger_entries \
             WHERE user_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
             ORDER BY created_at DESC, id DESC LIMIT $4",
        )
        .bind(user_id)
        .bind(page.after.map(|p| p.created_at))
        .bind(page.after.map(|p| p.id))
        .bind(page.limit + 1)
        .fetch_all(&self.pool)
        .await
        .context("reading the ledger")?;
        let entries = rows
            .into_iter()
            .map(|(id, kind, amount_cents, order_id, created_at)| {
                Ok(LedgerEntry {
                    id,
                    kind: EntryKind::parse(&kind).context("unknown ledger kind")?,
                    amount_cents,
                    order_id,
                    created_at,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(entries, page.limit, |e| Position { created_at: e.created_at, id: e.id }))
    }

    async fn top_up(&self, request: &TopUpRequest) -> anyhow::Result<TopUpWrite> {
        for _ in 0..RACE_RETRIES {
            if let Some(write) = self.top_up_once(request).await? {
                return Ok(write);
            }
        }
        anyhow::bail!("the top-up's key kept changing under it")
    }

    async fn charge(&self, order_id: Uuid, user_id: Uuid, amount: Amount) -> anyhow::Result<ChargeResult> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.charge_once(order_id, user_id, amount).await {
                Err(err) if attempt < RACE_RETRIES && is_unique_violation(&err) => continue,
                other => return other,
            }
        }
    }

    async fn refund(&self, order_id: Uuid, dedup: Option<(&str, Uuid)>) -> anyhow::Result<(RefundOutcome, i64)> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.refund_once(order_id, dedup).await {
                Err(err) if attempt < RACE_RETRIES && is_unique_violation(&err) => continue,
                other => return other,
            }
        }
    }
}
