//! Reading the end state the checker judges: each area's tables (through
//! the databases the launcher created), the stats every shopper sees
//! through the API, the outboxes and the dead-letter queues.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use lapin::{Connection, ConnectionProperties, options::QueueDeclareOptions, types::FieldTable};
use sqlx::{Connection as _, PgConnection};
use twinshop_contracts::topology::Topology;
use twinshop_launcher::{Build, Service, System};
use uuid::Uuid;

use super::{
    checker::{LedgerRow, OrderRow, Snapshot},
    workload::Shopper,
};

/// `schema.` in the monolith's one database, nothing in a service's own.
fn prefix(build: Build, schema: &str) -> String {
    match build {
        Build::Monolith => format!("{schema}."),
        Build::Microservices => String::new(),
    }
}

async fn connect(system: &System, service: Service) -> Result<PgConnection> {
    let url = system.database_url(service).with_context(|| format!("no database for {}", service.name()))?;
    PgConnection::connect(&url).await.with_context(|| format!("connecting to {}'s database", service.name()))
}

/// Reads everything the checker needs.
pub async fn read(system: &System, shoppers: &[std::sync::Arc<Shopper>], amqp: Option<&str>) -> Result<Snapshot> {
    let build = system.build();
    let (orders_db, payments_db) = match build {
        Build::Monolith => (Service::Monolith, Service::Monolith),
        Build::Microservices => (Service::Order, Service::Payment),
    };
    let mut s = Snapshot::default();
    let mut conn = connect(system, orders_db).await?;
    let rows: Vec<(Uuid, Uuid, String, i64, Option<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, user_id, status, total_cents, refund_status FROM {}orders",
        prefix(build, "orders")
    )))
    .fetch_all(&mut conn)
    .await
    .context("reading the orders")?;
    s.orders = rows
        .into_iter()
        .map(|(id, user_id, status, total_cents, refund_status)| OrderRow {
            id,
            user_id,
            status,
            total_cents,
            refund_status,
        })
        .collect();
    let mut pay = connect(system, payments_db).await?;
    let p = prefix(build, "payments");
    let rows: Vec<(Uuid, Uuid, String, i64, Option<Uuid>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, user_id, kind, amount_cents, order_id FROM {p}ledger_entries"
    )))
    .fetch_all(&mut pay)
    .await
    .context("reading the ledger")?;
    s.ledger = rows
        .into_iter()
        .map(|(id, user_id, kind, amount_cents, order_id)| LedgerRow { id, user_id, kind, amount_cents, order_id })
        .collect();
    let rows: Vec<(Uuid, i64)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT user_id, balance_cents FROM {p}wallets")))
            .fetch_all(&mut pay)
            .await
            .context("reading the wallets")?;
    s.balances = rows.into_iter().collect();

    for shopper in shoppers {
        let me = shopper.client.me().await.context("reading a shopper's stats")?;
        s.stats.insert(shopper.id, (me.stats.orders_confirmed, me.stats.total_spent_cents));
    }

    let areas: Vec<(&str, Service, String)> = match build {
        Build::Monolith => ["users", "payments", "orders"]
            .into_iter()
            .map(|schema| (schema, Service::Monolith, format!("{schema}.")))
            .collect(),
        Build::Microservices => vec![
            ("user", Service::User, String::new()),
            ("payment", Service::Payment, String::new()),
            ("order", Service::Order, String::new()),
        ],
    };
    for (area, service, p) in areas {
        let mut conn = connect(system, service).await?;
        let (waiting, dead): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FILTER (WHERE published_at IS NULL), \
             count(*) FILTER (WHERE published_at IS NOT NULL AND last_error LIKE 'dead-lettered%') FROM {p}outbox"
        )))
        .fetch_one(&mut conn)
        .await
        .with_context(|| format!("reading the {area} outbox"))?;
        s.outbox_waiting.insert(area.to_owned(), waiting);
        s.dead_letters.insert(format!("{area} outbox"), dead);
    }
    if let Some(url) = amqp {
        s.dead_letters.extend(dead_letter_queues(url, system.events_namespace()).await?);
    }
    Ok(s)
}

/// Messages in each consumer's dead-letter queue.
async fn dead_letter_queues(url: &str, namespace: &str) -> Result<BTreeMap<String, i64>> {
    let conn = Connection::connect(url, ConnectionProperties::default()).await.context("connecting to RabbitMQ")?;
    let mut out = BTreeMap::new();
    for queue in Topology::new(namespace).queues().into_iter().filter(|q| q.max_length.is_none()) {
        let ch = conn.create_channel().await.context("a channel")?;
        let dlq = queue.dead_letter_queue();
        let declared = ch
            .queue_declare(
                dlq.clone().into(),
                QueueDeclareOptions { passive: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("reading {dlq}"))?;
        out.insert(dlq, i64::from(declared.message_count()));
        let _ = ch.close(200, "read".into()).await;
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(out)
}
