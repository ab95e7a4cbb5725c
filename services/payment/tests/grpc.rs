//! The internal contract, `twinshop.payment.v1.Payments`, through the real
//! gRPC port of a spawned app: Charge and Refund idempotent by order id,
//! tombstones, argument checking, concurrency on one wallet, and the health
//! and reflection services next to it.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Outage, TestApp, assert_problem, new_user, spawn_app, spawn_app_with};
use tonic::{Code, Status, transport::Channel};
use twinshop_contracts::payment::v1::{
    ChargeOutcome, ChargeRequest, RefundOutcome, RefundRequest, payments_client::PaymentsClient,
};
use twinshop_testkit::eventually;
use uuid::Uuid;

type Client = PaymentsClient<Channel>;

async fn charge(client: &Client, order: Uuid, user: Uuid, amount_cents: i64) -> Result<(ChargeOutcome, i64), Status> {
    let req = ChargeRequest { order_id: order.to_string(), user_id: user.to_string(), amount_cents };
    let res = client.clone().charge(req).await?.into_inner();
    Ok((res.outcome(), res.balance_cents))
}

async fn refund(client: &Client, order: Uuid) -> Result<(RefundOutcome, i64), Status> {
    let res = client.clone().refund(RefundRequest { order_id: order.to_string() }).await?.into_inner();
    Ok((res.outcome(), res.amount_cents))
}

/// The ledger entries of `kind` for `order` (through HTTP).
async fn entries(app: &TestApp, token: &str, kind: &str, order: Uuid) -> Vec<Value> {
    let order = order.to_string();
    app.ledger(token).await.into_iter().filter(|e| e["kind"] == kind && e["order_id"] == order.as_str()).collect()
}

#[tokio::test]
async fn a_charge_with_enough_funds_takes_the_amount_once_and_a_retry_replays_it() {
    let app = spawn_app().await;
    let grpc = app.grpc().await;
    let ada = new_user();
    app.top_up(&ada.token, 1000).await;
    let order = Uuid::now_v7();

    assert_eq!(charge(&grpc, order, ada.id, 350).await.expect("charge"), (ChargeOutcome::Charged, 650));
    assert_eq!(app.balance(&ada.token).await, 650);
    let charged = entries(&app, &ada.token, "charge", order).await;
    assert_eq!(charged.len(), 1, "{charged:?}");
    assert_eq!(charged[0]["amount_cents"], 350);

    // Money moves in between; the retry still answers what the first call did.
    app.top_up(&ada.token, 50).await;
    for _ in 0..3 {
        assert_eq!(charge(&grpc, order, ada.id, 350).await.expect("retry"), (ChargeOutcome::Charged, 650));
    }
    assert_eq!(app.balance(&ada.token).await, 700, "the retries took nothing");
    assert_eq!(entries(&app, &ada.token, "charge", order).await.len(), 1);
    app.assert_ledger_adds_up(ada.id).await;
    app.stop().await;
}

#[tokio::test]
async fn insufficient_funds_is_an_outcome_not_an_error_and_stays_final_after_a_top_up() {
    let app = spawn_app().await;
    let grpc = app.grpc().await;
    let ada = new_user();
    app.top_up(&ada.token, 499).await;
    let order = Uuid::now_v7();
    assert_eq!(charge(&grpc, order, ada.id, 500).await.expect("charge"), (ChargeOutcome::InsufficientFunds, 499));
    assert_eq!(app.balance(&ada.token).await, 499, "nothing taken");

    app.top_up(&ada.token, 1000).await;
    assert_eq!(
        charge(&grpc, order, ada.id, 500).await.expect("retry"),
        (ChargeOutcome::InsufficientFunds, 499),
        "the first outcome is final, even though the wallet could pay now"
    );
    assert_eq!(app.balance(&ada.token).await, 1499);
    assert!(entries(&app, &ada.token, "charge", order).await.is_empty());

    // A wallet the service has never seen has nothing to charge.
    let nobody = Uuid::now_v7();
    let fresh = Uuid::now_v7();
    assert_eq!(charge(&grpc, fresh, nobody, 1).await.expect("charge"), (ChargeOutcome::InsufficientFunds, 0));
    app.stop().await;
}

#[tokio::test]
async fn the_same_order_id_with_another_user_or_amount_is_a_failed_precondition() {
    let app = spawn_app().await;
    let grpc = app.grpc().await;
    let (ada, bob) = (new_user(), new_user());
    app.top_up(&ada.token, 1000).await;
    app.top_up(&bob.token, 1000).await;
    let order = Uuid::now_v7();
    assert_eq!(charge(&grpc, order, ada.id, 300).await.expect("charge"), (ChargeOutcome::Charged, 700));

    let other_user = charge(&grpc, order, bob.id, 300).await.expect_err("another user");
    assert_eq!(other_user.code(), Code::FailedPrecondition, "{other_user:?}");
    let other_amount = charge(&grpc, order, ada.id, 301).await.expect_err("another amount");
    assert_eq!(other_amount.code(), Code::FailedPrecondition, "{other_amount:?}");
    assert_eq!((app.balance(&ada.token).await, app.balance(&bob.token).await), (700, 1000));

    // The same holds for a first outcome of insufficient funds.
    let poor = Uuid::now_v7();
    assert_eq!(charge(&grpc, poor, ada.id, 5000).await.expect("charge").0, ChargeOutcome::InsufficientFunds);
    let status = charge(&grpc, poor, ada.id, 10).await.expect_err("another amount");
    assert_eq!(status.code(), Code::FailedPrecondition);
    // And the original request still replays.
    assert_eq!(charge(&grpc, order, ada.id, 300).await.expect("replay"), (ChargeOutcome::Charged, 700));
    app.stop().await;
}

#[tokio::test]
async fn a_refund_gives_the_charge_back_once_and_records_a_payment_refunded_event() {
    let app = spawn_app().await;
    let grpc = app.grpc().await;
    let ada = new_user();
    app.top_up(&ada.token, 1000).await;
    let order = Uuid::now_v7();
    charge(&grpc, order, ada.id, 400).await.expect("charge");

    assert_eq!(refund(&grpc, order).await.expect("refund"), (RefundOutcome::Refunded, 400));
    assert_eq!(app.balance(&ada.token).await, 1000, "balance restored");
    let refunds = entries(&app, &ada.token, "refund", order).await;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0]["amount_cents"], 400);
    let events = app.refunded_events(order).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (event, _) = &events[0];
    assert_eq!(event["type"], "payment.refunded");
    assert_eq!(event["payload"]["user_id"], ada.id.to_string());
    assert_eq!(event["payload"]["amount_cents"], 400);
    assert!(event["event_id"].as_str().is_some_and(|id| Uuid::parse_str(id).is_ok()));
    eventually("the relay publishes the payment.refunded event", Duration::from_secs(10), || async {
        app.refunded_events(order).await.iter().all(|(_, published)| *published).then_some(())
    })
    .await;

    assert_eq!(refund(&grpc, order).await.expect("again"), (RefundOutcome::AlreadyRefunded, 400));
    assert_eq!(app.balance(&ada.token).await, 1000, "the second refund gives nothing");
    assert_eq!(entries(&app, &ada.token, "refund", order).await.len(), 1);
    assert_eq!(app.refunded_events(order).await.len(), 1, "one event");
    // A refunded order's charge still replays as it was.
    assert_eq!(charge(&grpc, order, ada.id, 400).await.expect("replay"), (ChargeOutcome::Charged, 600));
    assert_eq!(app.balance(&ada.token).await, 1000);

    // An order whose charge found no money was never charged.
    let poor = Uuid::now_v7();
    charge(&grpc, poor, ada.id, 5000).await.expect("charge");
    assert_eq!(refund(&grpc, poor).await.expect("refund"), (RefundOutcome::NotCharged, 0));
    assert!(app.refunded_events(poor).await.is_empty());
    assert_eq!(app.balance(&ada.token).await, 1000);
    assert_eq!(app.assert_ledger_adds_up(ada.id).await, 1000);
    app.stop().await;
}

#[tokio::test]
async fn a_refund_before_any_charge_leaves_a_tombstone_that_voids_a_late_charge() {
    let app = spawn_app().await;
    let grpc = app.grpc().await;
    let ada = new_user();
    app.top_up(&ada.token, 1000).await;
    let order = Uuid::now_v7();

    assert_eq!(refund(&grpc, order).await.expect("refund first"), (RefundOutcome::NotCharged, 0));
    let (outcome, _) = charge(&grpc, order, ada.id, 300).await.expect("late charge");
    assert_eq!(outcome, ChargeOutcome::Voided);
    assert_eq!(app.balance(&ada.token).await, 1000, "a voided charge takes nothing");
    assert!(entries(&app, &ada.token, "charge", order).await.is_empty());
    // Whoever retries, with whatever details, the order stays void.
    assert_eq!(charge(&grpc, order, ada.id, 300).await.expect("retry").0, ChargeOutcome::Voided);
    assert_eq!(charge(&grpc, order, Uuid::now_v7(), 7).await.expect("other details").0, ChargeOutcome::Voided);
    assert_eq!(refund(&grpc, order).await.expect("refund again"), (RefundOutcome::NotCharged, 0));
    assert!(app.refunded_events(order).await.is_empty());
    assert_eq!(app.assert_ledger_adds_up(ada.id).await, 1000);
    app.stop().await;
}

#[tokio::test]
async fn malformed_ids_and_out_of_range_amounts_are_invalid_arguments() {
    let app = spawn_app().await;
    let grpc = app.grpc().await;
    let ada = new_user();
    app.top_up(&ada.token, 1000).await;
    let (order, user) = (Uuid::now_v7().to_string(), ada.id.to_string());
    let cases = [
        ("not-a-uuid", user.as_str(), 100),
        ("", user.as_str(), 100),
        (order.as_str(), "not-a-uuid", 100),
        (order.as_str(), "", 100),
        (order.as_str(), user.as_str(), 0),
        (order.as_str(), user.as_str(), -1),
        (order.as_str(), user.as_str(), i64::MIN),
        (order.as_str(), user.as_str(), 1_000_000_001),
        (order.as_str(), user.as_str(), i64::MAX),
    ];
    for (order_id, user_id, amount_cents) in cases {
        let req = ChargeRequest { order_id: order_id.into(), user_id: user_id.into(), amount_cents };
        let status = grpc.clone().charge(req).await.expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument, "{order_id:?} {user_id:?} {amount_cents}: {status:?}");
    }
    for order_id in ["", "123", "g0000000-0000-0000-0000-000000000000"] {
        let status = grpc.clone().refund(RefundRequest { order_id: order_id.into() }).await.expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument, "{order_id:?}");
    }
    assert_eq!(app.balance(&ada.token).await, 1000);
    // Nothing was recorded for the order: a valid charge of it goes through.
    let order = Uuid::parse_str(&order).expect("uuid");
    assert_eq!(charge(&grpc, order, ada.id, 1_000).await.expect("valid").0, ChargeOutcome::Charged);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_charges_on_one_wallet_never_overdraw_it_and_the_ledger_adds_up() {
    let app = spawn_app().await;
    let grpc = app.grpc().await;
    let ada = new_user();
    app.top_up(&ada.token, 1000).await;
    let user = ada.id;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (grpc, order) = (grpc.clone(), Uuid::now_v7());
            tokio::spawn(async move { (order, charge(&grpc, order, user, 100).await) })
        })
        .collect();
    let mut charged = Vec::new();
    let mut balances = Vec::new();
    for task in tasks {
        let (order, result) = task.await.expect("task");
        let (outcome, balance) = result.expect("every charge is answered");
        assert!(balance >= 0);
        match outcome {
            ChargeOutcome::Charged => {
                charged.push(order);
                balances.push(balance);
            }
            ChargeOutcome::InsufficientFunds => assert_eq!(balance, 0, "refused only once the wallet is empty"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(charged.len(), 10);
    balances.sort_unstable();
    assert_eq!(balances, (0..10).map(|i| i * 100).collect::<Vec<_>>(), "each charge saw the one before it");
    assert_eq!(app.balance(&ada.token).await, 0);
    assert_eq!(app.assert_ledger_adds_up(ada.id).await, 0);

    // Refund every charged order twice at once: each gives back exactly once.
    let refunds = charged.iter().chain(&charged).map(|&order| refund(&grpc, order));
    let results = futures_util::future::join_all(refunds).await;
    let count = |o: RefundOutcome| results.iter().filter(|r| matches!(r, Ok((x, 100)) if *x == o)).count();
    assert_eq!((count(RefundOutcome::Refunded), count(RefundOutcome::AlreadyRefunded)), (10, 10), "{results:?}");
    assert_eq!(app.balance(&ada.token).await, 1000);
    assert_eq!(app.assert_ledger_adds_up(ada.id).await, 1000);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_of_one_charge_take_the_money_once() {
    let app = spawn_app().await;
    let grpc = app.grpc().await;
    let ada = new_user();
    app.top_up(&ada.token, 1000).await;
    let order = Uuid::now_v7();
    let results = futures_util::future::join_all((0..10).map(|_| charge(&grpc, order, ada.id, 250))).await;
    for r in &results {
        assert_eq!(r.as_ref().expect("answered"), &(ChargeOutcome::Charged, 750));
    }
    assert_eq!(app.balance(&ada.token).await, 750);
    assert_eq!(entries(&app, &ada.token, "charge", order).await.len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_racing_its_refund_ends_with_the_money_where_it_started() {
    let app = spawn_app().await;
    let grpc = app.grpc().await;
    let ada = new_user();
    app.top_up(&ada.token, 2000).await;
    for _ in 0..20 {
        let order = Uuid::now_v7();
        let (charged, refunded) = tokio::join!(charge(&grpc, order, ada.id, 100), refund(&grpc, order));
        let (charged, refunded) = (charged.expect("charge").0, refunded.expect("refund"));
        match (charged, refunded) {
            (ChargeOutcome::Charged, (RefundOutcome::Refunded, 100))
            | (ChargeOutcome::Voided, (RefundOutcome::NotCharged, 0)) => {}
            other => panic!("charge and refund disagree: {other:?}"),
        }
    }
    assert_eq!(app.balance(&ada.token).await, 2000);
    assert_eq!(app.assert_ledger_adds_up(ada.id).await, 2000);
    app.stop().await;
}

#[tokio::test]
async fn grpc_health_reports_the_payments_service_serving_and_reflection_lists_it() {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };

    let app = spawn_app().await;
    let channel = app.grpc_channel().await;
    let mut health = HealthClient::new(channel.clone());
    for service in ["twinshop.payment.v1.Payments", ""] {
        let res = health.check(HealthCheckRequest { service: service.into() }).await.expect("health check");
        assert_eq!(res.into_inner().status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health.check(HealthCheckRequest { service: "no.such.Service".into() }).await;
    assert_eq!(unknown.expect_err("unknown service").code(), Code::NotFound);

    let mut reflection = ServerReflectionClient::new(channel.clone());
    let ask = |request| ServerReflectionRequest { host: String::new(), message_request: Some(request) };
    let requests = vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol("twinshop.payment.v1.Payments".into())),
    ];
    let mut answers =
        reflection.server_reflection_info(futures_util::stream::iter(requests)).await.expect("reflection").into_inner();
    let listed = answers.message().await.expect("answer").expect("one answer per request");
    let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
        panic!("not a service list: {listed:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"twinshop.payment.v1.Payments"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    let file = answers.message().await.expect("answer").expect("one answer per request");
    let Some(MessageResponse::FileDescriptorResponse(files)) = file.message_response else {
        panic!("no descriptor for Payments: {file:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());

    // v1alpha too: all that grpcurl before 1.8.8, evans and Postman speak.
    let payments = twinshop_client::Payments::new(&app.internal).expect("client");
    for version in [twinshop_client::ReflectionVersion::V1, twinshop_client::ReflectionVersion::V1Alpha] {
        let reflected = payments.reflect(version, "twinshop.payment.v1.Payments").await.expect("reflection");
        assert!(reflected.services.iter().any(|s| s == "twinshop.payment.v1.Payments"), "{version:?}: {reflected:?}");
        let methods: Vec<String> = reflected.methods.unwrap_or_default().into_iter().map(|m| m.name).collect();
        assert_eq!(methods, ["Charge", "Refund"], "{version:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_payments_api_is_served_on_the_internal_port_only() {
    let app = spawn_app().await;
    let ada = new_user();
    app.top_up(&ada.token, 1000).await;
    let mut public = PaymentsClient::connect(app.public.clone()).await.expect("connect to the public port");
    let req = ChargeRequest { order_id: Uuid::now_v7().to_string(), user_id: ada.id.to_string(), amount_cents: 100 };
    let status = public.charge(req).await.expect_err("no gRPC on the public port");
    assert_ne!(status.code(), Code::Ok);
    assert_eq!(app.balance(&ada.token).await, 1000);
    assert_eq!(app.internal_get("/livez").await.status(), 200);
    let res = app.client.get("/livez").send().await.expect("request");
    assert_problem(res, 404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn with_the_database_down_calls_are_unavailable_and_nothing_internal_leaks() {
    let app = spawn_app_with(Outage { database: true, ..Outage::default() }).await;
    let grpc = app.grpc().await;
    let ada = new_user();
    let status = charge(&grpc, Uuid::now_v7(), ada.id, 100).await.expect_err("no database");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(!status.message().to_lowercase().contains("postgres"), "{status:?}");
    let status = refund(&grpc, Uuid::now_v7()).await.expect_err("no database");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    let body = assert_problem(app.get("/v1/wallet", &ada.token).await, 503, "dependency_unavailable");
    assert!(!body.to_string().to_lowercase().contains("postgres"), "{body}");
    let res = app.top_up_with(&ada.token, &serde_json::json!({"amount_cents": 100}), Some("k")).await;
    assert_problem(res, 503, "dependency_unavailable");

    let res = app.internal_get("/readyz").await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().expect("json");
    assert_eq!(body["checks"]["postgres"], "down", "{body}");
    assert_eq!(app.internal_get("/livez").await.status(), 200, "liveness does not depend on the database");
    app.stop().await;
}

#[tokio::test]
async fn with_rabbitmq_down_money_still_moves_and_the_refund_event_waits_in_the_outbox() {
    let app = spawn_app_with(Outage { rabbitmq: true, ..Outage::default() }).await;
    let grpc = app.grpc().await;
    let ada = new_user();
    app.top_up(&ada.token, 1000).await;
    let order = Uuid::now_v7();
    assert_eq!(charge(&grpc, order, ada.id, 400).await.expect("charge"), (ChargeOutcome::Charged, 600));
    assert_eq!(refund(&grpc, order).await.expect("refund"), (RefundOutcome::Refunded, 400));
    assert_eq!(app.balance(&ada.token).await, 1000);

    let body: Value = app.internal_get("/readyz").await.json().expect("json");
    assert_eq!((body["status"].as_str(), body["checks"]["rabbitmq"].as_str()), (Some("degraded"), Some("degraded")));
    eventually("a failed publish attempt", Duration::from_secs(10), || async {
        let mut conn = app.db.connect().await;
        let (attempts, published): (i32, bool) = sqlx::query_as(
            "SELECT attempts, published_at IS NOT NULL FROM outbox WHERE event_type = 'payment.refunded'",
        )
        .fetch_one(&mut conn)
        .await
        .ok()?;
        assert!(!published, "nothing can be published without a broker");
        (attempts > 0).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn the_black_box_client_charges_refunds_and_checks_health_over_grpc() {
    use twinshop_client::{
        EntryKind, Payments,
        internal::{ChargeOutcome as Charge, HealthStatus, RefundOutcome as Refund},
    };
    let app = spawn_app().await;
    let ada = new_user();
    app.top_up(&ada.token, 1000).await;
    let payments = Payments::new(&app.internal).expect("a gRPC client");
    assert_eq!(payments.health("").await.expect("health"), HealthStatus::Serving);
    let order = Uuid::now_v7();
    let charged = payments.charge(order, ada.id, 400).await.expect("charged");
    assert_eq!((charged.outcome, charged.balance_cents), (Charge::Charged, 600));
    assert_eq!(payments.charge(order, ada.id, 400).await.expect("replayed"), charged, "the first outcome is final");
    let err = payments.charge(order, ada.id, 500).await.expect_err("another amount");
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");
    let refunded = payments.refund(order).await.expect("refunded");
    assert_eq!((refunded.outcome, refunded.amount_cents), (Refund::Refunded, 400));

    let typed = app.client.as_user(ada.token.as_str());
    assert_eq!(typed.wallet().await.expect("the wallet").balance_cents, 1000);
    let kinds: Vec<EntryKind> = typed.all_payments().await.expect("the ledger").iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EntryKind::Refund, EntryKind::Charge, EntryKind::TopUp], "newest first");
    app.stop().await;
}
