//! The Postgres adapter of [`OrderRepository`]: all of the order area's SQL.
//!
//! It persists what the use cases decide and decides nothing itself: a
//! transition is one conditional `UPDATE … WHERE status = <from>`, so two
//! actors racing on one order (a request and the sweeper, two replicas)
//! cannot both move it; the loser writes nothing and reads the result. The
//! event and the key's answer go into the same transaction. Idempotency
//! keys are the platform's facility (`twinshop_platform::idempotency`).

use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;
use sqlx::{Connection as _, PgConnection, PgPool};
use time::OffsetDateTime;
use twinshop_platform::{
    db::{self, DbTarget},
    idempotency::{self, Found, Held, IdempotencyKey, Scope},
    inbox, outbox,
    pagination::{Page, PageRequest, Position},
};
use uuid::Uuid;

use crate::{
    app::{CreateError, OrderRepository, Placement, Transition, Written},
    domain::{
        Order, OrderLine, OrderStatus, Product, RefundStatus, RejectionReason, ShipTo, ShippingAddress, VoidStatus,
    },
};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The operation order placement keys are scoped to.
pub const PLACE: &str = "orders.place";

fn scope(user_id: Uuid) -> Scope {
    Scope { user_id, operation: PLACE }
}

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
     ship_country, rejection_reason, refund_status, void_status, created_at, updated_at";

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
    void_status: Option<String>,
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
            void_status: r
                .void_status
                .as_deref()
                .map(|s| VoidStatus::parse(s).context("unknown void status"))
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

#[async_trait::async_trait]
impl OrderRepository for PgOrderRepository {
    async fn catalog(&self) -> anyhow::Result<Vec<Product>> {
        let mut conn = db::acquire(&self.pool, "order.catalog").await.context("acquiring a connection")?;
        let rows: Vec<(String, String, i64)> = sqlx::query_as("SELECT id, name, price_cents FROM products ORDER BY id")
            .fetch_all(&mut *conn)
            .await
            .context("reading the catalog")?;
        Ok(rows.into_iter().map(|(id, name, price_cents)| Product { id, name, price_cents }).collect())
    }

    async fn find_key(&self, user_id: Uuid, key: &IdempotencyKey) -> anyhow::Result<Option<Found<Placement>>> {
        let mut conn = db::acquire(&self.pool, "order.find_key").await.context("acquiring a connection")?;
        idempotency::find(&mut conn, scope(user_id), key).await
    }

    async fn take_over_key(
        &self,
        user_id: Uuid,
        key: &IdempotencyKey,
        lease: Duration,
    ) -> anyhow::Result<Option<Held>> {
        let mut conn = self.pool.acquire().await.context("acquiring a connection")?;
        let generation = idempotency::take_over(&mut conn, scope(user_id), key, lease).await?;
        Ok(generation.map(|generation| Held { key: key.clone(), generation }))
    }

    async fn renew_key(&self, user_id: Uuid, held: &Held, lease: Duration) -> anyhow::Result<bool> {
        let mut conn = self.pool.acquire().await.context("acquiring a connection")?;
        idempotency::renew(&mut conn, scope(user_id), held, lease).await
    }

    async fn create(
        &self,
        order: &Order,
        key: Option<(&IdempotencyKey, &Value)>,
        lease: Duration,
    ) -> Result<(), CreateError> {
        let mut conn = db::acquire(&self.pool, "order.create").await.context("acquiring a connection")?;
        let mut tx = conn.begin().await.context("beginning the placement")?;
        if let Some((key, fingerprint)) = key
            && !idempotency::insert(&mut tx, scope(order.user_id), key, fingerprint, Some(order.id), lease).await?
        {
            return Err(CreateError::KeyTaken);
        }
        let a = &order.ship_to.address;
        sqlx::query(
            "INSERT INTO orders (id, user_id, status, items, total_cents, ship_name, ship_line1, ship_city, \
             ship_postal_code, ship_country, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(order.id)
        .bind(order.user_id)
        .bind(order.status.as_str())
        .bind(lines_json(&order.items))
        .bind(order.total_cents)
        .bind(&order.ship_to.name)
        .bind(&a.line1)
        .bind(&a.city)
        .bind(&a.postal_code)
        .bind(&a.country)
        .bind(order.created_at)
        .bind(order.updated_at)
        .execute(&mut *tx)
        .await
        .context("recording the order")?;
        tx.commit().await.context("committing the placement")?;
        Ok(())
    }

    async fn transition(&self, t: Transition<'_>) -> anyhow::Result<Written> {
        let next = t.next;
        let mut conn = db::acquire(&self.pool, "order.transition").await.context("acquiring a connection")?;
        let mut tx = conn.begin().await.context("beginning the transition")?;
        if let Some((held, _)) = t.answer
            && !idempotency::fence(&mut tx, scope(next.user_id), held).await?
        {
            tx.rollback().await.ok();
            return Ok(Written::Fenced);
        }
        let moved = sqlx::query(
            "UPDATE orders SET status = $3, rejection_reason = $4, refund_status = $5, void_status = $6, \
             updated_at = $7 WHERE id = $1 AND status = $2",
        )
        .bind(next.id)
        .bind(t.from.as_str())
        .bind(next.status.as_str())
        .bind(next.rejection_reason.map(RejectionReason::as_str))
        .bind(next.refund_status.map(RefundStatus::as_str))
        .bind(next.void_status.map(VoidStatus::as_str))
        .bind(next.updated_at)
        .execute(&mut *tx)
        .await
        .context("moving the order")?
        .rows_affected()
            == 1;
        if !moved {
            let current = load(&mut tx, next.id).await?;
            tx.rollback().await.ok();
            return Ok(Written::Lost(Box::new(current)));
        }
        if let Some(event) = &t.event {
            outbox::enqueue(&mut tx, &self.target, event).await?;
        }
        if let Some((held, answer)) = t.answer {
            idempotency::complete(&mut tx, scope(next.user_id), &held.key, answer).await?;
        }
        tx.commit().await.context("committing the transition")?;
        Ok(Written::Applied)
    }

    async fn answer_key(&self, user_id: Uuid, held: &Held, answer: &Placement) -> anyhow::Result<bool> {
        let mut tx = self.pool.begin().await.context("beginning the answer")?;
        if !idempotency::fence(&mut tx, scope(user_id), held).await? {
            return Ok(false);
        }
        idempotency::complete(&mut tx, scope(user_id), &held.key, answer).await?;
        tx.commit().await.context("committing the answer")?;
        Ok(true)
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
