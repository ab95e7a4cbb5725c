//! Every event both builds emit, held to its JSON Schema in
//! `proto/events/v1/` (docs/design.md §2: the language-neutral description a
//! port in another language publishes and consumes by).
//!
//! A real flow makes each of the five event types happen (a registration, a
//! confirmed order, a rejected one, a cancellation and its refund). The
//! microservices' events are taken off the wire: a queue of the test's own,
//! bound to the events exchange with `#`, receives a copy of every message
//! the relays publish, properties and headers included. The monolith has no
//! broker, so its events are read from its three outboxes, the rows its
//! relay hands to the in-process consumers.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    time::Duration,
};

use jsonschema::Validator;
use lapin::{
    Channel, Connection, ConnectionProperties,
    options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};
use serde_json::{Value, json};
use twinshop_e2e::{Service, Shop, cancel, order, place, plan};
use twinshop_launcher::Build;
use twinshop_testkit::eventually;

/// The schemas, by event type (the file name without `.json`).
fn validators() -> BTreeMap<String, Validator> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto/events/v1");
    std::fs::read_dir(&dir)
        .expect("proto/events/v1")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let name = path.file_stem().and_then(|s| s.to_str()).expect("a name").to_owned();
            let schema: Value = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("JSON");
            let validator = jsonschema::options().should_validate_formats(true).build(&schema).expect("compiles");
            (name, validator)
        })
        .collect()
}

/// Checks one event body against the schema its `type` names; returns the type.
fn check(validators: &BTreeMap<String, Validator>, body: &Value) -> String {
    let event_type = body["type"].as_str().unwrap_or_else(|| panic!("an event without a type: {body}"));
    let validator = validators.get(event_type).unwrap_or_else(|| panic!("no schema for {event_type}: {body}"));
    let problems: Vec<String> = validator.iter_errors(body).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(problems.is_empty(), "{event_type} disagrees with its schema: {body}\n{}", problems.join("\n"));
    event_type.to_owned()
}

/// Registration, a top-up, a confirmed order, a rejected one and a
/// cancelled one whose refund arrives: every event type, at least once.
async fn every_kind_of_event(shop: &Shop) {
    let (buyer, _) = shop.user(true).await;
    buyer.top_up(5_000, None).await.expect("top up");
    let res = place(&buyer, json!([{"product_id": "sku-coffee", "quantity": 1}]), None).await.expect("place");
    assert_eq!(res.status(), 201, "{}", res.text());
    let confirmed: Value = res.json().expect("json");
    assert_eq!(confirmed["status"], "confirmed");
    let res = place(&buyer, json!([{"product_id": "sku-grinder", "quantity": 3}]), None).await.expect("place");
    let rejected: Value = res.json().expect("json");
    assert_eq!(rejected["status"], "rejected", "{rejected}");
    let id = confirmed["id"].as_str().expect("id");
    assert_eq!(cancel(&buyer, id).await.status(), 200);
    eventually("the refund arrives", Duration::from_secs(15), || async {
        (order(&buyer, id).await["refund_status"] == "refunded").then_some(())
    })
    .await;
}

/// A server-named, exclusive queue bound to every routing key of the
/// build's exchange: it goes when the connection closes.
async fn wiretap(shop: &Shop) -> (Connection, Channel, String) {
    let url = twinshop_testkit::amqp_url();
    let conn = Connection::connect(&url, ConnectionProperties::default()).await.expect("connect to RabbitMQ");
    let ch = conn.create_channel().await.expect("channel");
    let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
    let queue = ch.queue_declare("".into(), options, FieldTable::default()).await.expect("declare the tap");
    let name = queue.name().to_string();
    let exchange = format!("{}.events", shop.system().events_namespace());
    ch.queue_bind(name.clone().into(), exchange.into(), "#".into(), QueueBindOptions::default(), FieldTable::default())
        .await
        .expect("bind the tap");
    (conn, ch, name)
}

fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    parts.len() == 4 && parts[0] == "00" && hex(parts[1], 32) && hex(parts[2], 16) && hex(parts[3], 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_the_microservices_publish_validates_against_its_schema_on_the_wire() {
    let validators = validators();
    let shop = Shop::start(plan(Build::Microservices, "events-microservices")).await;
    let (conn, ch, tap) = wiretap(&shop).await;
    every_kind_of_event(&shop).await;

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let all: BTreeSet<String> = validators.keys().cloned().collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while seen.keys().cloned().collect::<BTreeSet<_>>() != all && tokio::time::Instant::now() < deadline {
        let Some(message) =
            ch.basic_get(tap.clone().into(), BasicGetOptions { no_ack: true }).await.expect("basic.get")
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let delivery = message.delivery;
        let body: Value = serde_json::from_slice(&delivery.data)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&delivery.data)));
        let event_type = check(&validators, &body);
        // What proto/events/README.md says travels beside the body.
        let props = &delivery.properties;
        assert_eq!(delivery.routing_key.as_str(), event_type, "routing key = type");
        assert_eq!(props.kind().as_ref().map(|t| t.as_str()), Some(event_type.as_str()), "the `type` property");
        assert_eq!(props.content_type().as_ref().map(|t| t.as_str()), Some("application/json"));
        assert_eq!(*props.delivery_mode(), Some(2), "{event_type}: persistent");
        assert_eq!(props.message_id().as_ref().map(|m| m.as_str()), body["event_id"].as_str(), "message id = event_id");
        let headers = props.headers().clone().unwrap_or_default();
        let traceparent = headers.inner().get("traceparent").and_then(AMQPValue::as_long_string).map(|s| s.to_string());
        assert!(
            traceparent.as_deref().is_some_and(is_traceparent),
            "{event_type}: W3C traceparent header, got {traceparent:?}"
        );
        *seen.entry(event_type).or_default() += 1;
    }
    eprintln!("events on the wire, by type: {seen:?}");
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), all, "every event type was published: {seen:?}");
    let _ = conn.close(200, "done".into()).await;
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_the_monolith_writes_to_its_outboxes_validates_against_its_schema() {
    let validators = validators();
    let shop = Shop::start(plan(Build::Monolith, "events-monolith")).await;
    every_kind_of_event(&shop).await;

    let db = shop.db(Service::Monolith).await;
    let all: BTreeSet<String> = validators.keys().cloned().collect();
    let bodies = eventually("every event type is in an outbox", Duration::from_secs(15), || {
        let (db, all) = (db.clone(), all.clone());
        async move {
            let bodies: Vec<(Value,)> = sqlx::query_as(
                "SELECT body FROM users.outbox UNION ALL SELECT body FROM payments.outbox \
                 UNION ALL SELECT body FROM orders.outbox",
            )
            .fetch_all(&db)
            .await
            .ok()?;
            let types: BTreeSet<String> =
                bodies.iter().filter_map(|(b,)| b["type"].as_str().map(str::to_owned)).collect();
            all.is_subset(&types).then_some(bodies)
        }
    })
    .await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (body,) in &bodies {
        *seen.entry(check(&validators, body)).or_default() += 1;
    }
    eprintln!("events in the monolith's outboxes, by type: {seen:?}");
    db.close().await;
    shop.stop().await;
}
