//! The Postgres adapter of [`OrderRepository`]: all of the order area's SQL.
//!
//! Every state change is a conditional `UPDATE … WHERE status = …`, so two
//! actors racing on one order (a request and the sweeper, two replicas)
//! cannot both move it: the second changes nothing and reads the result.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use twinshop_contracts::events::{Envelope, OrderCancelled, OrderConfirmed, OrderRejected};
use twinshop_platform::{
    db::DbTarget,
    idempotency::IdempotencyKey,
    inbox, outbox,
    pagination::{Page, PageRequest, Position},
};
use uuid::Uuid;

use crate::{
    app::{CancelError, CreateError, KeyRecord, OrderRepository, views},
    domain::{
        ChargeOutcome, Order, OrderLine, OrderStatus, Product, RefundStatus, RejectionReason, ShipTo, ShippingAddress,
    },
};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone)]
pub struct PgOrderRepository {
    pool: PgPool,
    target: DbTarget,
}

impl PgOrderRepository {
    pub fn new(pool: PgPool, target: DbTarget) -> Self {
        Self { pool, target }
    }
}

const ORDER_COLUMNS: &str = "id, user_id, status, items, total_cents, ship_name, ship_line1, ship_city, ship_postal_code, \
     ship_country, rejection_reason, refund_status, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    user_id: Uuid,
    status: String,
    items: Value,
    total_cents: i64,
    ship_name: String,
    ship_line1: String,
    ship_city: String,
    ship_postal_code: String,
    ship_country: String,
    rejection_reason: Option<String>,
    refund_status: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct LineJson {
    product_id: String,
    name: String,
    unit_price_cents: i64,
    quantity: i64,
}

fn lines_json(items: &[OrderLine]) -> Value {
    let lines: Vec<LineJson> = items
        .iter()
        .map(|l| LineJson {
            product_id: l.product_id.clone(),
            name: l.name.clone(),
            unit_price_cents: l.unit_price_cents,
            quantity: l.quantity,
        })
        .collect();
    serde_json::to_value(lines).unwrap_or(Value::Null)
}

impl TryFrom<OrderRow> for Order {
    type Error = anyhow::Error;

    fn try_from(r: OrderRow) -> anyhow::Result<Self> {
        let lines: Vec<LineJson> = serde_json::from_value(r.items).context("stored order lines are malformed")?;
        Ok(Order {
            id: r.id,
            user_id: r.user_id,
            status: OrderStatus::parse(&r.status).context("unknown order status")?,
            items: lines
                .into_iter()
                .map(|l| OrderLine {
                    product_id: l.product_id,
                    name: l.name,
                    unit_price_cents: l.unit_price_cents,
                    quantity: l.quantity,
                })
                .collect(),
            total_cents: r.total_cents,
            ship_to: ShipTo {
                name: r.ship_name,
                address: ShippingAddress {
                    line1: r.ship_line1,
                    city: r.ship_city,
                    postal_code: r.ship_postal_code,
                    country: r.ship_country,
                },
            },
            rejection_reason: r
                .rejection_reason
                .as_deref()
                .map(|s| RejectionReason::parse(s).context("unknown rejection reason"))
                .transpose()?,
            refund_status: r
                .refund_status
                .as_deref()
                .map(|s| RefundStatus::parse(s).context("unknown refund status"))
                .transpose()?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

async fn load(conn: &mut PgConnection, order_id: Uuid) -> anyhow::Result<Order> {
    let row: OrderRow =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1")))
            .bind(order_id)
            .fetch_one(&mut *conn)
            .await
            .context("reading the order")?;
    row.try_into()
}

/// Stores the first answer for the key, unless one is stored already.
async fn answer_key(conn: &mut PgConnection, order: &Order, key: &IdempotencyKey, status: u16) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET response_status = $3, response_body = $4 \
         WHERE user_id = $1 AND key = $2 AND response_status IS NULL",
    )
    .bind(order.user_id)
    .bind(key.as_str())
    .bind(i32::from(status))
    .bind(views::order_json(order))
    .execute(&mut *conn)
    .await
    .context("storing the idempotent answer")?;
    Ok(())
}

#[async_trait::async_trait]
impl OrderRepository for PgOrderRepository {
    async fn catalog(&self) -> anyhow::Result<Vec<Product>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as("SELECT id, name, price_cents FROM products ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .context("reading the catalog")?;
        Ok(rows.into_iter().map(|(id, name, price_cents)| Product { id, name, price_cents }).collect())
    }

    async fn find_key(&self, user_id: Uuid, key: &IdempotencyKey) -> anyhow::Result<Option<KeyRecord>> {
        let row: Option<(String, Uuid, Option<i32>, Option<Value>, bool)> = sqlx::query_as(
            "SELECT request, order_id, response_status, response_body, lease_until < now() \
             FROM idempotency_keys WHERE user_id = $1 AND key = $2",
        )
        .bind(user_id)
        .bind(key.as_str())
        .fetch_optional(&self.pool)
        .await
        .context("reading the idempotency key")?;
        row.map(|(stored, order_id, status, body, lease_expired)| {
            Ok(KeyRecord {
                fingerprint: serde_json::from_str(&stored).context("parsing the stored request fingerprint")?,
                order_id,
                response: status.zip(body).map(|(s, b)| (u16::try_from(s).unwrap_or(500), b)),
                lease_expired,
            })
        })
        .transpose()
    }

    async fn take_over_key(&self, user_id: Uuid, key: &IdempotencyKey, lease: Duration) -> anyhow::Result<bool> {
        let taken = sqlx::query(
            "UPDATE idempotency_keys SET lease_until = now() + make_interval(secs => $3) \
             WHERE user_id = $1 AND key = $2 AND lease_until < now() AND response_status IS NULL",
        )
        .bind(user_id)
        .bind(key.as_str())
        .bind(lease.as_secs_f64())
        .execute(&self.pool)
        .await
        .context("taking over the idempotency key")?
        .rows_affected();
        Ok(taken == 1)
    }

    async fn create_pending(
        &self,
        order: &Order,
        key: Option<(&IdempotencyKey, &Value)>,
        lease: Duration,
    ) -> Result<(), CreateError> {
        let mut tx = self.pool.begin().await.context("beginning the placement")?;
        if let Some((key, fingerprint)) = key {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (user_id, key, request, order_id, lease_until) \
                 VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) ON CONFLICT DO NOTHING",
            )
            .bind(order.user_id)
            .bind(key.as_str())
            .bind(fingerprint.to_string())
            .bind(order.id)
            .bind(lease.as_secs_f64())
            .execute(&mut *tx)
            .await
            .context("recording the idempotency key")?
            .rows_affected();
            if inserted == 0 {
                return Err(CreateError::KeyTaken);
            }
        }
        let a = &order.ship_to.address;
        sqlx::query(
            "INSERT INTO orders (id, user_id, status, items, total_cents, ship_name, ship_line1, ship_city, \
             ship_postal_code, ship_country, created_at, updated_at) \
             VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(order.id)
        .bind(order.user_id)
        .bind(lines_json(&order.items))
        .bind(order.total_cents)
        .bind(&order.ship_to.name)
        .bind(&a.line1)
        .bind(&a.city)
        .bind(&a.postal_code)
        .bind(&a.country)
        .bind(order.created_at)
        .execute(&mut *tx)
        .await
        .context("recording the pending order")?;
        tx.commit().await.context("committing the placement")?;
        Ok(())
    }

    async fn settle(
        &self,
        order_id: Uuid,
        outcome: ChargeOutcome,
        key: Option<&IdempotencyKey>,
    ) -> anyhow::Result<Order> {
        let (status, reason) = Order::settled_by(outcome);
        let mut tx = self.pool.begin().await.context("beginning the settlement")?;
        let moved = sqlx::query(
            "UPDATE orders SET status = $2, rejection_reason = $3, updated_at = now(), \
             void_status = CASE WHEN $2 = 'failed' THEN 'owed' ELSE void_status END \
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(order_id)
        .bind(status.as_str())
        .bind(reason.map(|r| r.as_str()))
        .execute(&mut *tx)
        .await
        .context("settling the order")?
        .rows_affected()
            == 1;
        let order = load(&mut tx, order_id).await?;
        if moved {
            match order.status {
                OrderStatus::Confirmed => {
                    let event = Envelope::new(OrderConfirmed {
                        order_id,
                        user_id: order.user_id,
                        total_cents: order.total_cents,
                    });
                    outbox::enqueue(&mut tx, &self.target, &event).await?;
                }
                OrderStatus::Rejected => {
                    let event = Envelope::new(OrderRejected {
                        order_id,
                        user_id: order.user_id,
                        total_cents: order.total_cents,
                        reason: reason.map_or("", |r| r.as_str()).to_owned(),
                    });
                    outbox::enqueue(&mut tx, &self.target, &event).await?;
                }
                _ => {}
            }
        }
        if let Some(key) = key {
            answer_key(&mut tx, &order, key, 201).await?;
        }
        tx.commit().await.context("committing the settlement")?;
        Ok(order)
    }

    async fn fail(&self, order_id: Uuid, key: Option<&IdempotencyKey>) -> anyhow::Result<Order> {
        let mut tx = self.pool.begin().await.context("beginning the failure")?;
        sqlx::query(
            "UPDATE orders SET status = 'failed', rejection_reason = 'payment_unavailable', void_status = 'owed', \
             updated_at = now() WHERE id = $1 AND status = 'pending'",
        )
        .bind(order_id)
        .execute(&mut *tx)
        .await
        .context("failing the order")?;
        let order = load(&mut tx, order_id).await?;
        if let Some(key) = key {
            let status = if order.status == OrderStatus::Failed { 503 } else { 201 };
            answer_key(&mut tx, &order, key, status).await?;
        }
        tx.commit().await.context("committing the failure")?;
        Ok(order)
    }

    async fn complete_key(&self, order: &Order, key: &IdempotencyKey) -> anyhow::Result<()> {
        let mut conn = self.pool.acquire().await.context("acquiring a connection")?;
        answer_key(&mut conn, order, key, 201).await
    }

    async fn find(&self, user_id: Uuid, order_id: Uuid) -> anyhow::Result<Option<Order>> {
        let row: Option<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 AND user_id = $2"
        )))
        .bind(order_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .context("reading the order")?;
        row.map(Order::try_from).transpose()
    }

    async fn list(&self, user_id: Uuid, page: PageRequest) -> anyhow::Result<Page<Order>> {
        let rows: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 \
             AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        )))
        .bind(user_id)
        .bind(page.after.map(|p| p.created_at))
        .bind(page.after.map(|p| p.id))
        .bind(page.limit + 1)
        .fetch_all(&self.pool)
        .await
        .context("listing orders")?;
        let orders = rows.into_iter().map(Order::try_from).collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(orders, page.limit, |o| Position { created_at: o.created_at, id: o.id }))
    }

    async fn cancel(&self, user_id: Uuid, order_id: Uuid) -> Result<Order, CancelError> {
        let mut tx = self.pool.begin().await.context("beginning the cancellation")?;
        let row: Option<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 AND user_id = $2 FOR UPDATE"
        )))
        .bind(order_id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await
        .context("locking the order")?;
        let order = Order::try_from(row.ok_or(CancelError::NotFound)?)?;
        if !order.can_cancel()? {
            return Ok(order);
        }
        sqlx::query(
            "UPDATE orders SET status = 'cancelled', refund_status = 'pending', updated_at = now() WHERE id = $1",
        )
        .bind(order_id)
        .execute(&mut *tx)
        .await
        .context("cancelling the order")?;
        let event = Envelope::new(OrderCancelled { order_id, user_id, total_cents: order.total_cents });
        outbox::enqueue(&mut tx, &self.target, &event).await?;
        let order = load(&mut tx, order_id).await?;
        tx.commit().await.context("committing the cancellation")?;
        Ok(order)
    }

    async fn mark_refunded(&self, consumer: &str, event_id: Uuid, order_id: Uuid) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await.context("beginning the refund update")?;
        if inbox::claim(&mut tx, consumer, event_id).await.context("recording the event")? {
            sqlx::query(
                "UPDATE orders SET refund_status = 'refunded', updated_at = now() WHERE id = $1 AND status = 'cancelled'",
            )
            .bind(order_id)
            .execute(&mut *tx)
            .await
            .context("marking the refund")?;
        }
        tx.commit().await.context("committing the refund update")?;
        Ok(())
    }

    async fn claim_stale_pending(&self, older_than: Duration, limit: i64) -> anyhow::Result<Vec<Order>> {
        let rows: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE orders SET updated_at = now() WHERE id IN ( \
                 SELECT id FROM orders WHERE status = 'pending' AND updated_at < now() - make_interval(secs => $1) \
                 ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
             RETURNING {ORDER_COLUMNS}"
        )))
        .bind(older_than.as_secs_f64())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context("claiming stale pending orders")?;
        rows.into_iter().map(Order::try_from).collect()
    }

    async fn claim_owed_voids(&self, older_than: Duration, limit: i64) -> anyhow::Result<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> = sqlx::query_as(
            "UPDATE orders SET updated_at = now() WHERE id IN ( \
                 SELECT id FROM orders WHERE void_status = 'owed' AND updated_at < now() - make_interval(secs => $1) \
                 ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
             RETURNING id",
        )
        .bind(older_than.as_secs_f64())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context("claiming owed voids")?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn void_done(&self, order_id: Uuid) -> anyhow::Result<()> {
        sqlx::query("UPDATE orders SET void_status = 'done' WHERE id = $1")
            .bind(order_id)
            .execute(&self.pool)
            .await
            .context("marking the void done")?;
        Ok(())
    }
}
