//! `proto/events/v1/`: one JSON Schema per event type, the language-neutral
//! description a port in another language publishes and consumes by
//! (docs/design.md §2). These tests hold the schemas to the code: every
//! event type the broker topology routes has exactly one schema, each is
//! valid JSON Schema 2020-12, the envelope the code builds for each type
//! validates against it, and the usual ways of getting an event wrong do
//! not. What the running builds really emit is checked end to end by
//! `tests/e2e/tests/events.rs`.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use jsonschema::Validator;
use serde_json::{Value, json};
use twinshop_contracts::{
    events::{Envelope, Event, OrderCancelled, OrderConfirmed, OrderRejected, PaymentRefunded, UserRegistered},
    topology::Topology,
};
use uuid::Uuid;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto/events/v1")
}

/// Every schema file, by the event type its name says (`<type>.json`).
fn schemas() -> BTreeMap<String, Value> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(schema_dir()).expect("proto/events/v1 exists") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("a UTF-8 file name").to_owned();
        let event_type = name.strip_suffix(".json").unwrap_or_else(|| panic!("{name}: not a .json schema"));
        let text = std::fs::read_to_string(&path).expect("readable");
        let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
        found.insert(event_type.to_owned(), schema);
    }
    found
}

/// A validator that also checks `format` (uuid, date-time), as a strict
/// consumer would.
fn validator(schema: &Value) -> Validator {
    jsonschema::options().should_validate_formats(true).build(schema).expect("the schema compiles")
}

fn errors(validator: &Validator, instance: &Value) -> Vec<String> {
    validator.iter_errors(instance).map(|e| format!("{e} at {}", e.instance_path())).collect()
}

#[test]
fn every_event_type_the_topology_routes_has_exactly_one_schema_and_no_schema_is_left_over() {
    let routed: BTreeSet<String> =
        Topology::new("twinshop").queues().iter().flat_map(|q| q.bindings.clone()).map(str::to_owned).collect();
    let schemas = schemas();
    let described: BTreeSet<String> = schemas.keys().cloned().collect();
    assert_eq!(described, routed, "schema files in proto/events/v1 vs event types bound in the topology");
    for (event_type, schema) in &schemas {
        if let Err(err) = jsonschema::meta::validate(schema) {
            panic!("{event_type}: not a valid JSON Schema: {err}");
        }
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema", "{event_type}");
        assert_eq!(schema["properties"]["type"]["const"], event_type.as_str(), "{event_type}: `type` const");
    }
}

/// One envelope of each type, built as the areas build them: `to_json` is
/// what a store writes to its outbox, `erase` the path of an event a use
/// case chose (the order area's).
fn built_by_the_code() -> Vec<Value> {
    let (order_id, user_id) = (Uuid::now_v7(), Uuid::now_v7());
    let erased = |e: Result<Envelope<Value>, serde_json::Error>| e.and_then(|e| e.to_json()).expect("serialises");
    vec![
        Envelope::new(UserRegistered { user_id, name: "Zoë Ångström-Ó'Brien".into() }).to_json().expect("json"),
        Envelope::new(UserRegistered { user_id, name: "n".repeat(100) }).to_json().expect("json"),
        erased(Envelope::new(OrderConfirmed { order_id, user_id, total_cents: 1 }).erase()),
        erased(
            Envelope::new(OrderRejected { order_id, user_id, total_cents: 4900, reason: "insufficient_funds".into() })
                .erase(),
        ),
        erased(Envelope::new(OrderCancelled { order_id, user_id, total_cents: i64::MAX }).erase()),
        Envelope::new(PaymentRefunded { order_id, user_id, amount_cents: 1890 }).to_json().expect("json"),
    ]
}

#[test]
fn every_event_the_code_builds_validates_against_its_schema() {
    let schemas = schemas();
    let mut covered = BTreeSet::new();
    for event in built_by_the_code() {
        let event_type = event["type"].as_str().expect("a type").to_owned();
        let schema = schemas.get(&event_type).unwrap_or_else(|| panic!("no schema for {event_type}"));
        let problems = errors(&validator(schema), &event);
        assert!(problems.is_empty(), "{event_type}: {event}\n{}", problems.join("\n"));
        covered.insert(event_type);
    }
    let all: BTreeSet<String> = schemas.keys().cloned().collect();
    assert_eq!(covered, all, "every schema is exercised by an event the code builds");
    // The Rust types carry the same names as the files.
    for ty in [UserRegistered::TYPE, OrderConfirmed::TYPE, OrderRejected::TYPE, OrderCancelled::TYPE] {
        assert!(all.contains(ty), "{ty}");
    }
    assert!(all.contains(PaymentRefunded::TYPE));
}

/// A way of getting an event wrong: what it is, and how to do it to one.
type Breakage = (&'static str, fn(&mut Value));

#[test]
fn the_schemas_refuse_what_a_consumer_could_not_read() {
    let schemas = schemas();
    let confirmed = validator(&schemas["order.confirmed"]);
    let good = Envelope::new(OrderConfirmed { order_id: Uuid::now_v7(), user_id: Uuid::now_v7(), total_cents: 450 })
        .to_json()
        .expect("json");
    assert!(errors(&confirmed, &good).is_empty(), "{good}");
    let broken: [Breakage; 10] = [
        ("a missing payload field", |e| {
            if let Some(payload) = e["payload"].as_object_mut() {
                payload.remove("total_cents");
            }
        }),
        ("an amount as a string", |e| e["payload"]["total_cents"] = json!("450")),
        ("a zero amount", |e| e["payload"]["total_cents"] = json!(0)),
        ("a fractional amount", |e| e["payload"]["total_cents"] = json!(4.5)),
        ("another type", |e| e["type"] = json!("order.cancelled")),
        ("an undocumented field", |e| e["payload"]["coupon"] = json!("FREE")),
        ("a time with an offset", |e| e["occurred_at"] = json!("2026-01-01T10:00:00+01:00")),
        ("a date only", |e| e["occurred_at"] = json!("2026-01-01")),
        ("a UUIDv4 event id", |e| e["event_id"] = json!("5f0c7a2e-9b1d-4c3e-8f6a-2b7d9e1c4a30")),
        ("an upper-case id", |e| e["payload"]["order_id"] = json!(Uuid::now_v7().to_string().to_uppercase())),
    ];
    for (what, break_it) in broken {
        let mut event = good.clone();
        break_it(&mut event);
        assert!(!errors(&confirmed, &event).is_empty(), "{what} was accepted: {event}");
    }
    let rejected = validator(&schemas["order.rejected"]);
    let mut event = Envelope::new(OrderRejected {
        order_id: Uuid::now_v7(),
        user_id: Uuid::now_v7(),
        total_cents: 450,
        reason: "payment_unavailable".into(),
    })
    .to_json()
    .expect("json");
    assert!(!errors(&rejected, &event).is_empty(), "a reason the API never gives was accepted: {event}");
    event["payload"]["reason"] = json!("insufficient_funds");
    assert!(errors(&rejected, &event).is_empty(), "{event}");
    let registered = validator(&schemas["user.registered"]);
    for name in [String::new(), "n".repeat(101), "tab\there".into()] {
        let event = Envelope::new(UserRegistered { user_id: Uuid::now_v7(), name }).to_json().expect("json");
        assert!(!errors(&registered, &event).is_empty(), "accepted: {event}");
    }
}
