//! The client against real servers on loopback: a small axum app that
//! plays the parts of API.md these tests need (and echoes raw requests
//! back), and tonic-health's own gRPC health server.
//!
//! What is checked is what a fake cannot get wrong: the bytes the client
//! puts on the wire, what it makes of status codes, problems, replays,
//! cursors, timeouts and closed ports, and that the recorder sees every
//! exchange. The shop itself is exercised through this client by the
//! conformance suite, the services' tests and the load generator's tests.

use std::{net::SocketAddr, time::Duration};

use axum::{
    Json, Router,
    extract::{Query, Request},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{any, get, post},
};
use serde_json::{Value, json};
use twinshop_client::{
    Address, ApiError, Client, EntryKind, ExchangeLog, Method, NewUser, Payments, TransportError,
    internal::HealthStatus,
};

const USER_ID: &str = "0192e4a0-0000-7000-8000-00000000000a";

fn problem(status: StatusCode, code: &str) -> Response {
    let body = json!({"type": format!("/problems/{code}"), "title": "t", "status": status.as_u16(), "code": code});
    (status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
}

/// Echoes what arrived: method, path, query, every header (values as
/// bytes), the body.
async fn echo(request: Request) -> Json<Value> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let headers: serde_json::Map<String, Value> =
        parts.headers.iter().map(|(n, v)| (n.as_str().to_owned(), json!(v.as_bytes()))).collect();
    Json(json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
}

async fn register(Json(body): Json<Value>) -> Response {
    if body["email"] == "taken@example.com" {
        return problem(StatusCode::CONFLICT, "email_taken");
    }
    let user = json!({"id": USER_ID, "email": body["email"], "name": body["name"], "address": body["address"],
        "created_at": "2026-11-20T10:00:00Z"});
    (StatusCode::CREATED, Json(user)).into_response()
}

async fn top_up(headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some("Bearer t0ken") {
        return problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let top_up = json!({"id": USER_ID, "amount_cents": body["amount_cents"], "balance_cents": body["amount_cents"]});
    let replayed = headers.get("idempotency-key").is_some_and(|k| k == "seen-before");
    let mut response = (StatusCode::CREATED, Json(top_up)).into_response();
    if replayed {
        response.headers_mut().insert("idempotent-replayed", header::HeaderValue::from_static("true"));
    }
    response
}

fn entry(amount: i64) -> Value {
    json!({"id": USER_ID, "kind": "top_up", "amount_cents": amount, "order_id": null,
        "created_at": "2026-11-20T10:00:00Z"})
}

/// Two pages; the cursor holds characters a query must encode.
async fn payments(Query(query): Query<Vec<(String, String)>>) -> Json<Value> {
    let cursor = query.iter().find(|(k, _)| k == "cursor").map(|(_, v)| v.as_str());
    Json(match cursor {
        None => json!({"items": [entry(2)], "next_cursor": "page 2/+="}),
        Some("page 2/+=") => json!({"items": [entry(1)], "next_cursor": null}),
        Some(other) => json!({"items": [], "next_cursor": null, "unexpected": other}),
    })
}

async fn server() -> SocketAddr {
    let app = Router::new()
        .route("/echo/{*rest}", any(echo))
        .route("/v1/users", post(register))
        .route(
            "/v1/sessions",
            post(|| async { Json(json!({"access_token": "t0ken", "token_type": "Bearer", "expires_in": 3600})) }),
        )
        .route("/v1/wallet/top-ups", post(top_up))
        .route("/v1/payments", get(payments))
        .route("/v1/orders", get(|| async { Json(json!({"items": [], "next_cursor": "again"})) }))
        .route("/v1/wallet", get(|| async { Json(json!({"balance_cents": "ten", "currency": "EUR"})) }))
        .route("/slow", get(|| async { tokio::time::sleep(Duration::from_secs(5)).await }))
        .route(
            "/internal/v1/users/{id}",
            get(|| async { Json(json!({"id": USER_ID, "name": "Ada", "address": null})) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

fn new_ada() -> NewUser {
    let address = Address { line1: "1 A".into(), city: "B".into(), postal_code: "1".into(), country: "DE".into() };
    NewUser {
        email: "ada@example.com".into(),
        password: "long enough pw".into(),
        name: "Ada".into(),
        address: Some(address),
    }
}

#[tokio::test]
async fn raw_requests_put_on_the_wire_exactly_what_was_built() {
    let client = Client::new(&format!("http://{}", server().await)).expect("client");
    let answer = client
        .request(Method::PUT, "/echo/a b?x=1&y=é")
        .token("t0ken")
        .idempotency_key(Some("key-1"))
        .header_bytes("x-raw", b"caf\xe9 \ttab")
        .body(None, "not json")
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), StatusCode::OK);
    let echo: Value = answer.json().expect("json");
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["path"], "/echo/a%20b");
    assert_eq!(echo["query"], "x=1&y=%C3%A9");
    assert_eq!(echo["headers"]["authorization"], json!(b"Bearer t0ken"));
    assert_eq!(echo["headers"]["idempotency-key"], json!(b"key-1"));
    assert_eq!(echo["headers"]["x-raw"], json!(b"caf\xe9 \ttab"), "non-UTF-8 bytes and a tab arrive as sent");
    assert!(echo["headers"].get("content-type").is_none(), "no content type unless asked for");
    assert_eq!(echo["body"], "not json");

    let echo: Value =
        client.post("/echo/json").json(&json!({"a": 1})).send().await.expect("an answer").json().expect("json");
    assert_eq!(echo["headers"]["content-type"], json!(b"application/json"));
    assert_eq!(echo["body"], r#"{"a":1}"#);
    let echo: Value = client
        .post("/echo/charset")
        .body(Some("application/json; charset=utf-8"), "{}")
        .send()
        .await
        .expect("an answer")
        .json()
        .expect("json");
    assert_eq!(echo["headers"]["content-type"], json!(b"application/json; charset=utf-8"));
}

#[tokio::test]
async fn typed_calls_decode_bodies_and_keep_problems_raw_bodies_and_replays() {
    let client = Client::new(&format!("http://{}", server().await)).expect("client");
    let (user, ada) = client.sign_up(&new_ada()).await.expect("signed up");
    assert_eq!(user.id.to_string(), USER_ID);
    assert_eq!(user.address.map(|a| a.country), Some("DE".to_owned()));
    assert_eq!(ada.bearer().token(), "t0ken");

    let first = ada.top_up(700, Some("new-key")).await.expect("a top-up");
    assert_eq!((first.amount_cents, first.replayed), (700, false));
    let again = ada.top_up(700, Some("seen-before")).await.expect("a replay");
    assert!(again.replayed, "Idempotent-Replayed: true is reported");

    let mut taken = new_ada();
    taken.email = "taken@example.com".into();
    let err = client.register(&taken).await.expect_err("taken");
    assert!(err.is_code("email_taken"), "{err}");
    assert_eq!(err.status(), Some(StatusCode::CONFLICT));
    assert!(err.body().is_some_and(|b| b.starts_with(b"{")), "the raw body is kept");
    assert_eq!(err.to_string(), "POST /v1/users: expected 201, got 409 email_taken");

    let stranger = client.as_user("someone else");
    let err = stranger.top_up(1, None).await.expect_err("unauthorized");
    assert!(err.is_code("unauthorized") && err.transport().is_none(), "{err}");
}

#[tokio::test]
async fn lists_are_followed_with_encoded_cursors_and_a_looping_cursor_is_refused() {
    let client = Client::new(&format!("http://{}", server().await)).expect("client");
    let ada = client.as_user("t0ken");
    let ledger = ada.all_payments().await.expect("the whole ledger");
    assert_eq!(
        ledger.iter().map(|e| (e.kind, e.amount_cents)).collect::<Vec<_>>(),
        [(EntryKind::TopUp, 2), (EntryKind::TopUp, 1)]
    );
    let page = ada.payments(Some(1), Some("page 2/+=")).await.expect("a page");
    assert_eq!((page.items.len(), page.next_cursor), (1, None));

    let err = ada.all_orders().await.expect_err("the cursor loops");
    assert!(matches!(err, ApiError::Contract(_)), "{err}");
    assert!(err.to_string().contains("the pages loop"), "{err}");
    let err = ada.wallet().await.expect_err("balance_cents is a string");
    assert!(matches!(&err, ApiError::Contract(c) if c.reason.starts_with("not the body API.md describes")), "{err}");
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout_and_a_closed_port_is_an_io_error() {
    let addr = server().await;
    let client =
        Client::builder().timeout(Duration::from_millis(200)).build(&format!("http://{addr}")).expect("client");
    let started = std::time::Instant::now();
    let err = client.get("/slow").send().await.expect_err("too slow");
    assert_eq!(err.kind, TransportError::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2), "gave up at the timeout");

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let err =
        client.at(&format!("http://127.0.0.1:{port}")).expect("client").get("/").send().await.expect_err("closed");
    assert_eq!(err.kind, TransportError::Io);
    assert!(err.to_string().starts_with("GET /: no answer ("), "{err}");
}

#[tokio::test]
async fn the_recorder_sees_every_exchange_with_its_path_without_the_query() {
    let addr = server().await;
    let log = ExchangeLog::new();
    let client = Client::builder().recorder(log.recorder()).build(&format!("http://{addr}")).expect("client");
    client.get("/echo/x?secret=1").send().await.expect("an answer");
    let _ = client.register(&NewUser { email: "taken@example.com".into(), ..new_ada() }).await;
    let exchanges = log.exchanges();
    assert_eq!(exchanges.len(), 2);
    assert_eq!(
        (exchanges[0].method.as_str(), exchanges[0].path.as_str(), exchanges[0].status),
        ("GET", "/echo/x", 200)
    );
    assert_eq!(exchanges[0].media_type, "application/json");
    assert_eq!(exchanges[1].path, "/v1/users");
    assert_eq!(exchanges[1].media_type, "application/problem+json");
    assert_eq!(exchanges[1].body.as_ref().map(|b| b["code"].clone()), Some(json!("email_taken")));
}

#[tokio::test]
async fn the_internal_lookup_reads_a_user_and_calls_it_by_uuid() {
    let addr = server().await;
    let directory = twinshop_client::UserDirectory::new(&format!("http://{addr}")).expect("directory");
    let found = directory.user(uuid::Uuid::now_v7()).await.expect("a lookup").expect("found");
    assert_eq!((found.name.as_str(), found.address), ("Ada", None));
}

#[tokio::test]
async fn the_grpc_health_check_reads_the_servers_status() {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_service_status("twinshop.payment.v1.Payments", tonic_health::ServingStatus::NotServing).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming));
    let payments = Payments::new(&format!("http://{addr}")).expect("client");
    assert_eq!(payments.health("").await.expect("the server's status"), HealthStatus::Serving);
    assert_eq!(payments.health("twinshop.payment.v1.Payments").await.expect("a status"), HealthStatus::NotServing);
    let err = payments.health("nothing.Here").await.expect_err("unknown service");
    assert_eq!(err.code(), Some(tonic::Code::NotFound), "{err:?}");
}
