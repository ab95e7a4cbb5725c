//! The `order.cancelled` consumer through the real broker: events are
//! published with lapin to the test namespace's exchange, exactly as the
//! order service's relay would, and the spawned app consumes them.

mod support;

use std::time::Duration;

use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions},
    types::FieldTable,
};
use serde_json::{Value, json};
use support::{TestApp, new_user, spawn_app};
use twinshop_contracts::{
    events::{Envelope, Event, OrderCancelled},
    payment::v1::{ChargeOutcome, ChargeRequest},
};
use twinshop_testkit::eventually;
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(15);

async fn broker() -> Connection {
    Connection::connect(&twinshop_testkit::amqp_url(), ConnectionProperties::default())
        .await
        .expect("connect to RabbitMQ")
}

/// Closes a test connection, waiting at most a second: lapin's close can
/// wait forever for a close-ok that never comes.
async fn close(conn: Connection) {
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(200, "test done".into())).await;
}

/// Publishes `body` as an `order.cancelled` message (persistent, mandatory,
/// confirmed and routed) to the app's exchange.
async fn publish(app: &TestApp, body: &Value) {
    let conn = broker().await;
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default()).await.expect("confirm mode");
    let props = BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into());
    let confirm = ch
        .basic_publish(
            app.topology().exchange().into(),
            OrderCancelled::TYPE.into(),
            BasicPublishOptions { mandatory: true, ..Default::default() },
            &serde_json::to_vec(body).expect("json"),
            props,
        )
        .await
        .expect("publish");
    let confirmation = confirm.await.expect("confirm");
    assert!(confirmation.is_ack(), "acked by the broker");
    assert!(confirmation.take_message().is_none(), "routed to a queue, not returned");
    close(conn).await;
}

/// Messages ready in `queue` (not counting those delivered and unacked).
async fn depth(queue: &str) -> Option<u32> {
    let conn = broker().await;
    let ch = conn.create_channel().await.ok()?;
    let depth = ch.queue_declare(queue.into(), QueueDeclareOptions::default().passive(), FieldTable::default()).await;
    close(conn).await;
    depth.ok().map(|q| q.message_count())
}

fn cancelled(order_id: Uuid, user_id: Uuid, total_cents: i64) -> Value {
    Envelope::new(OrderCancelled { order_id, user_id, total_cents }).to_json().expect("json")
}

async fn charge(app: &TestApp, order: Uuid, user: Uuid, amount_cents: i64) -> (ChargeOutcome, i64) {
    let req = ChargeRequest { order_id: order.to_string(), user_id: user.to_string(), amount_cents };
    let res = app.grpc().await.charge(req).await.expect("charge").into_inner();
    (res.outcome(), res.balance_cents)
}

async fn count(app: &TestApp, sql: &str, order: Uuid) -> i64 {
    let mut conn = app.db.connect().await;
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(order).fetch_one(&mut conn).await.expect("count");
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_order_is_refunded_once_however_often_its_event_arrives() {
    let mut app = spawn_app().await;
    let ada = new_user();
    app.top_up(&ada.token, 1000).await;
    let order = Uuid::now_v7();
    assert_eq!(charge(&app, order, ada.id, 400).await, (ChargeOutcome::Charged, 600));

    let event = cancelled(order, ada.id, 400);
    publish(&app, &event).await;
    eventually("the cancelled order's charge is given back", PATIENCE, || async {
        let refunded = app.balance(&ada.token).await == 1000 && app.refunded_events(order).await.len() == 1;
        refunded.then_some(())
    })
    .await;
    let (envelope, _) = app.refunded_events(order).await.remove(0);
    assert_eq!(envelope["payload"], json!({"order_id": order, "user_id": ada.id, "amount_cents": 400}));

    // The same event again (same event_id), as after a relay crash.
    publish(&app, &event).await;
    let queue = app.topology().queue_of("payment").expect("the payment queue").name;
    eventually("the duplicate is delivered", PATIENCE, || async { depth(&queue).await.filter(|n| *n == 0) }).await;
    // Stopping drains deliveries in flight; a duplicate that was not handled
    // would be handed back to the queue.
    app.halt().await;
    assert_eq!(depth(&queue).await, Some(0), "the duplicate was handled and acked");
    assert_eq!(depth(&format!("{queue}.dlq")).await, Some(0), "and not dead-lettered");

    let refunds = "SELECT count(*) FROM ledger_entries WHERE kind = 'refund' AND order_id = $1";
    assert_eq!(count(&app, refunds, order).await, 1, "refunded once");
    let events = "SELECT count(*) FROM outbox WHERE event_type = 'payment.refunded' \
                  AND body->'payload'->>'order_id' = $1::text";
    assert_eq!(count(&app, events, order).await, 1, "one payment.refunded");
    let mut conn = app.db.connect().await;
    let (balance,): (i64,) = sqlx::query_as("SELECT balance_cents FROM wallets WHERE user_id = $1")
        .bind(ada.id)
        .fetch_one(&mut conn)
        .await
        .expect("wallet");
    assert_eq!(balance, 1000);
    drop(conn);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_that_arrives_before_the_charge_voids_the_charge() {
    let app = spawn_app().await;
    let ada = new_user();
    app.top_up(&ada.token, 1000).await;
    let order = Uuid::now_v7();
    publish(&app, &cancelled(order, ada.id, 300)).await;
    let tombstone = "SELECT count(*) FROM charges WHERE order_id = $1 AND outcome = 'voided'";
    eventually("the tombstone is written", PATIENCE, || async {
        (count(&app, tombstone, order).await == 1).then_some(())
    })
    .await;
    assert_eq!(charge(&app, order, ada.id, 300).await.0, ChargeOutcome::Voided);
    assert_eq!(app.balance(&ada.token).await, 1000, "nothing taken");
    assert!(app.refunded_events(order).await.is_empty(), "nothing was refunded");
    app.assert_ledger_adds_up(ada.id).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_cancelled_event_without_an_order_id_is_dead_lettered_and_changes_nothing() {
    let app = spawn_app().await;
    let ada = new_user();
    app.top_up(&ada.token, 1000).await;
    let order = Uuid::now_v7();
    charge(&app, order, ada.id, 400).await;
    let mut event = cancelled(order, ada.id, 400);
    event["payload"].as_object_mut().expect("payload").remove("order_id");
    publish(&app, &event).await;
    let dlq = app.topology().queue_of("payment").expect("the payment queue").dead_letter_queue();
    eventually("the event is dead-lettered", PATIENCE, || async { depth(&dlq).await.filter(|n| *n == 1) }).await;
    assert_eq!(app.balance(&ada.token).await, 600);
    assert!(app.refunded_events(order).await.is_empty());
    app.stop().await;
}
