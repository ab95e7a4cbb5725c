//! The host runs any set of areas over either transport: the monolith's
//! three areas in-process (no broker: events flow from the outboxes to the
//! handlers directly), and the same three areas in one process over the
//! network (HTTP lookup, gRPC Charge, RabbitMQ), each with a whole journey
//! through the public API.

use std::time::Duration;

use twinshop_client::{Address, Client, NewUser, OrderItem, OrderStatus, RefundStatus};
use twinshop_platform::{
    host::{self, Env, Host, Process, Transport},
    shutdown::Shutdown,
};
use twinshop_testkit::{TestDb, dev_keys, eventually, free_port, unique_name};

const PATIENCE: Duration = Duration::from_secs(10);

/// All three areas in one process, over the network.
static TRIO: Process = Process {
    binary: "trio",
    service: "trio",
    about: "three areas, one process, network transport",
    prefix: "TRIO_",
    http_port: 0,
    internal_port: 0,
    db_max_connections: 4,
    transport: Transport::Network,
    areas: &[&twinshop_user::AREA, &twinshop_payment::AREA, &twinshop_order::AREA],
};

fn vars(prefix: &str, db_url: &str, extra: &[(String, String)]) -> Vec<(String, String)> {
    let (private_key, public_key) = dev_keys();
    let mut vars: Vec<(String, String)> = [
        ("BIND_ADDRESS", "127.0.0.1".to_owned()),
        ("HTTP_PORT", "0".to_owned()),
        ("INTERNAL_PORT", "0".to_owned()),
        ("DATABASE_URL", db_url.to_owned()),
        ("DB_MAX_CONNECTIONS", "4".to_owned()),
        ("REDIS_URL", twinshop_testkit::redis_url()),
        ("HASH_CONCURRENCY", "2".to_owned()),
        ("SWEEP_INTERVAL_MS", "200".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{prefix}{k}"), v))
    .collect();
    vars.extend([
        ("JWT_PRIVATE_KEY".to_owned(), private_key),
        ("JWT_PUBLIC_KEY".to_owned(), public_key),
        ("SHUTDOWN_TIMEOUT".to_owned(), "5".to_owned()),
    ]);
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push((k.clone(), v.clone()));
    }
    vars
}

/// Registers, tops up, orders, and cancels through `base`, waiting for
/// the stats and the refund that events bring.
async fn journey(base: &str) {
    let shop = Client::new(base).expect("base URL");
    let new = NewUser {
        email: format!("{}@example.com", unique_name("host")),
        password: "correct horse battery staple".into(),
        name: "Ada".into(),
        address: Some(Address {
            line1: "1 Main St".into(),
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: "DE".into(),
        }),
    };
    let (_, ada) = shop.sign_up(&new).await.expect("sign up");
    ada.top_up(5_000, Some("t1")).await.expect("top up");
    let order = ada.place_order(&[OrderItem::new("sku-tea", 2)], Some("o1")).await.expect("order").into_inner();
    assert_eq!(order.status, OrderStatus::Confirmed);
    eventually("the stats count the order (order.confirmed reached the user area)", PATIENCE, || async {
        let me = ada.me().await.ok()?;
        (me.stats.orders_confirmed == 1 && me.stats.total_spent_cents == 1300).then_some(())
    })
    .await;
    ada.cancel(order.id).await.expect("cancel");
    eventually("the refund is done (order.cancelled → payment → payment.refunded → order)", PATIENCE, || async {
        let o = ada.order(order.id).await.ok()?;
        (o.refund_status == Some(RefundStatus::Refunded)).then_some(())
    })
    .await;
    assert_eq!(ada.wallet().await.expect("wallet").balance_cents, 5_000, "all money back");
}

#[tokio::test]
async fn the_monolith_hosts_the_three_areas_in_process_and_events_need_no_broker() {
    let db = TestDb::create("host_mono").await;
    // No broker address at all: the in-process transport reads none.
    let vars = vars("MONOLITH_", &db.url, &[]);
    host::migrate(&twinshop_monolith::MONOLITH, &Env::load(&twinshop_monolith::MONOLITH, vars.clone()).expect("env"))
        .await
        .expect("migrate");
    let shutdown = Shutdown::new();
    let host = Host::start(&twinshop_monolith::MONOLITH, vars, shutdown.clone()).await.expect("build");
    let (public, internal) = (host.public_addr(), host.internal_addr());
    let task = tokio::spawn(host.run());

    let ready = Client::new(&format!("http://{internal}")).expect("url").get("/readyz").send().await.expect("readyz");
    let checks: serde_json::Value = ready.json().expect("json");
    let names: Vec<&str> = checks["checks"].as_object().expect("checks").keys().map(String::as_str).collect();
    assert_eq!(names, ["postgres-orders", "postgres-payments", "postgres-users", "redis"], "one schema per area");
    journey(&format!("http://{public}")).await;

    shutdown.trigger();
    task.await.expect("join").expect("clean drain");
    db.drop_database().await;
}

#[tokio::test]
async fn one_process_can_host_the_three_areas_over_the_network_transport() {
    let db = TestDb::create("host_trio").await;
    let namespace = unique_name("trio");
    // The links point at the process's own internal port.
    let internal = free_port();
    let extra = [
        ("TRIO_INTERNAL_PORT".to_owned(), internal.to_string()),
        ("TRIO_AMQP_URL".to_owned(), twinshop_testkit::amqp_url()),
        ("TRIO_USER_SERVICE_URL".to_owned(), format!("http://127.0.0.1:{internal}")),
        ("TRIO_PAYMENT_GRPC_URL".to_owned(), format!("http://127.0.0.1:{internal}")),
        ("EVENTS_NAMESPACE".to_owned(), namespace.clone()),
    ];
    let vars = vars("TRIO_", &db.url, &extra);
    host::migrate(&TRIO, &Env::load(&TRIO, vars.clone()).expect("env")).await.expect("migrate and declare");
    let shutdown = Shutdown::new();
    let host = Host::start(&TRIO, vars, shutdown.clone()).await.expect("build");
    let public = host.public_addr();
    let task = tokio::spawn(host.run());

    let lookup = Client::new(&format!("http://127.0.0.1:{internal}")).expect("url");
    let unknown = lookup.get(format!("/internal/v1/users/{}", uuid::Uuid::now_v7())).send().await.expect("lookup");
    assert_eq!(unknown.status(), 404, "the user lookup is served on the internal port");
    journey(&format!("http://{public}")).await;

    shutdown.trigger();
    task.await.expect("join").expect("clean drain");
    let topology = twinshop_contracts::topology::Topology::new(&namespace);
    let queues: Vec<String> = topology.queues().into_iter().flat_map(|q| [q.dead_letter_queue(), q.name]).collect();
    twinshop_testkit::delete_namespace(&namespace, &queues, &[topology.exchange(), topology.dead_letter_exchange()])
        .await;
    db.drop_database().await;
}

#[test]
fn the_monolith_reads_no_broker_and_no_peer_address() {
    let names: Vec<String> =
        host::variables(&twinshop_monolith::MONOLITH).expect("variables").into_iter().map(|v| v.name).collect();
    assert!(
        names.iter().all(|n| !n.contains("AMQP") && !n.ends_with("SERVICE_URL") && !n.ends_with("GRPC_URL")),
        "{names:?}"
    );
    let order: Vec<String> =
        host::variables(&twinshop_order::SERVICE).expect("variables").into_iter().map(|v| v.name).collect();
    for needed in ["ORDER_AMQP_URL", "ORDER_USER_SERVICE_URL", "ORDER_PAYMENT_GRPC_URL", "ORDER_CONSISTENCY_MODE"] {
        assert!(order.iter().any(|n| n == needed), "{needed} missing from {order:?}");
    }
}

#[tokio::test]
async fn fault_flags_exist_only_when_enabled_and_only_on_the_internal_port() {
    let db = TestDb::create("host_faults").await;
    let mut enabled = vars("MONOLITH_", &db.url, &[("MONOLITH_FAULTS_ENABLED".into(), "true".into())]);
    host::migrate(
        &twinshop_monolith::MONOLITH,
        &Env::load(&twinshop_monolith::MONOLITH, enabled.clone()).expect("env"),
    )
    .await
    .expect("migrate");
    let shutdown = Shutdown::new();
    let host = Host::start(&twinshop_monolith::MONOLITH, enabled.clone(), shutdown.clone()).await.expect("build");
    let (public, internal) = (host.public_addr(), host.internal_addr());
    let task = tokio::spawn(host.run());
    let inside = Client::new(&format!("http://{internal}")).expect("url");
    let outside = Client::new(&format!("http://{public}")).expect("url");

    assert_eq!(outside.get("/faults").send().await.expect("answer").status(), 404, "never on the public port");
    let set = inside
        .request(twinshop_client::Method::PUT, "/faults/order")
        .json(&serde_json::json!({"latency_ms": 300, "leak_kib": 256}))
        .send()
        .await
        .expect("answer");
    assert_eq!(set.status(), 200, "{:?}", set.text());
    let started = std::time::Instant::now();
    assert_eq!(outside.get("/v1/products").send().await.expect("answer").status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300), "the order area's latency flag applied");
    let started = std::time::Instant::now();
    outside
        .post("/v1/sessions")
        .json(&serde_json::json!({"email": "x@example.com", "password": "nope nope nope"}))
        .send()
        .await
        .expect("answer");
    assert!(started.elapsed() < Duration::from_millis(300), "the user area is untouched");
    let view: serde_json::Value = inside.get("/faults/order").send().await.expect("answer").json().expect("json");
    assert_eq!(view["leaked_bytes"], 256 * 1024, "one request, one leak: {view}");
    inside
        .request(twinshop_client::Method::PUT, "/faults/payment")
        .json(&serde_json::json!({"panic": true}))
        .send()
        .await
        .expect("answer");
    let token = "Bearer x";
    let panicked = outside.get("/v1/wallet").header("authorization", token).send().await.expect("answer");
    assert_eq!(panicked.status(), 500, "a panic in the payment area is caught: a 500");
    shutdown.trigger();
    task.await.expect("join").expect("clean drain");

    // Without the variable: no flags at all.
    enabled.retain(|(k, _)| k != "MONOLITH_FAULTS_ENABLED");
    let shutdown = Shutdown::new();
    let host = Host::start(&twinshop_monolith::MONOLITH, enabled, shutdown.clone()).await.expect("build");
    let internal = host.internal_addr();
    let task = tokio::spawn(host.run());
    let inside = Client::new(&format!("http://{internal}")).expect("url");
    assert_eq!(inside.get("/faults").send().await.expect("answer").status(), 404, "off by default");
    shutdown.trigger();
    task.await.expect("join").expect("clean drain");
    db.drop_database().await;
}
