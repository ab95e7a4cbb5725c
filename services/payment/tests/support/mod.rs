//! `spawn_app()`: the payment service on random ports against its own test
//! database and broker namespace, plus what a test needs to talk to it: a
//! bearer token for a fresh user (the payment service only verifies tokens,
//! so tests sign them with the dev key, as the user service would), the one
//! API client (twinshop-client) bound to the public port, and a gRPC client
//! for the internal port.

#![allow(dead_code)]

use std::{sync::Once, time::Duration};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tonic::transport::Channel;
use twinshop_client::{Client, Response};
use twinshop_contracts::{payment::v1::payments_client::PaymentsClient, topology::Topology};
use twinshop_payment::SERVICE;
use twinshop_platform::{
    host::{self, Env, Host},
    http::auth::{Claims, ISSUER},
    shutdown::Shutdown,
    telemetry::{Telemetry, TelemetryConfig},
};
use twinshop_testkit::{TestDb, dead_port, dev_keys, unique_name};
use uuid::Uuid;

/// How much longer than its drain deadline stopping may take (closing the
/// broker connection and the pool, then cleaning up).
const STOP_MARGIN: Duration = Duration::from_secs(10);

pub struct TestApp {
    /// `http://host:port` of the public API.
    pub public: String,
    /// `http://host:port` of the internal port (gRPC and operations).
    pub internal: String,
    /// The public API through twinshop-client (raw requests and typed calls).
    pub client: Client,
    pub db: TestDb,
    /// The environment the app was started with.
    pub vars: Vec<(String, String)>,
    pub namespace: String,
    pub shutdown: Shutdown,
    /// `None` once [`TestApp::halt`] has awaited it.
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A user the payment service has never seen, with a valid token.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub token: String,
}

fn init_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = Telemetry::init_with_writer(
            "payment-test",
            &TelemetryConfig::default(),
            tracing_subscriber::fmt::TestWriter::new(),
        );
    });
}

/// The payment service's variables for a test: both ports on loopback,
/// picked by the OS; its own database and broker namespace.
pub fn vars(db_url: &str, namespace: &str) -> Vec<(String, String)> {
    let (_, public_key) = dev_keys();
    [
        ("PAYMENT_BIND_ADDRESS", "127.0.0.1".to_owned()),
        ("PAYMENT_HTTP_PORT", "0".to_owned()),
        ("PAYMENT_INTERNAL_PORT", "0".to_owned()),
        ("PAYMENT_DATABASE_URL", db_url.to_owned()),
        ("PAYMENT_AMQP_URL", twinshop_testkit::amqp_url()),
        ("JWT_PUBLIC_KEY", public_key),
        ("SHUTDOWN_TIMEOUT", "5".to_owned()),
        ("EVENTS_NAMESPACE", namespace.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Replaces one variable.
fn set(vars: &mut [(String, String)], name: &str, value: String) {
    if let Some(var) = vars.iter_mut().find(|(k, _)| k == name) {
        var.1 = value;
    }
}

/// Which backing service to make unreachable for this app (after
/// migrating, so the schema and the topology exist).
#[derive(Debug, Default, Clone, Copy)]
pub struct Outage {
    pub database: bool,
    pub rabbitmq: bool,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Outage::default()).await
}

pub async fn spawn_app_with(outage: Outage) -> TestApp {
    init_logs();
    let db = TestDb::create("payment").await;
    let namespace = unique_name("t");
    let mut vars = vars(&db.url, &namespace);
    let env = Env::load(&SERVICE, vars.clone()).expect("valid variables");
    host::migrate(&SERVICE, &env).await.expect("migrations apply and the topology is declared");
    if outage.database {
        set(&mut vars, "PAYMENT_DATABASE_URL", format!("postgres://postgres@127.0.0.1:{}/x", dead_port()));
    }
    if outage.rabbitmq {
        set(&mut vars, "PAYMENT_AMQP_URL", format!("amqp://guest:guest@127.0.0.1:{}/%2f", dead_port()));
    }
    let shutdown = Shutdown::new();
    let app = Host::start(&SERVICE, vars.clone(), shutdown.clone()).await.expect("app builds");
    let public = format!("http://{}", app.public_addr());
    let internal = format!("http://{}", app.internal_addr());
    let task = Some(tokio::spawn(app.run()));
    let client = Client::builder().timeout(Duration::from_secs(10)).build(&public).expect("client");
    TestApp { public, internal, client, db, vars, namespace, shutdown, task }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// Signs `claims` with the development private key (EdDSA).
pub fn sign(claims: &Claims) -> String {
    let (private_key, _) = dev_keys();
    let key = EncodingKey::from_ed_pem(private_key.as_bytes()).expect("the dev key is Ed25519 PKCS#8 PEM");
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &key).expect("sign")
}

/// A token for `user`, valid for ten minutes.
pub fn token_for(user: Uuid) -> String {
    sign(&Claims { sub: user, iat: now(), exp: now() + 600, iss: ISSUER.to_owned() })
}

/// A fresh user id and a valid token for it.
pub fn new_user() -> TestUser {
    let id = Uuid::now_v7();
    TestUser { id, token: token_for(id) }
}

impl TestApp {
    pub fn topology(&self) -> Topology {
        Topology::new(&self.namespace)
    }

    /// A gRPC client of `twinshop.payment.v1.Payments` on the internal port.
    pub async fn grpc(&self) -> PaymentsClient<Channel> {
        PaymentsClient::connect(self.internal.clone()).await.expect("connect to the internal gRPC port")
    }

    /// A channel to the internal port, for the health and reflection clients.
    pub async fn grpc_channel(&self) -> Channel {
        Channel::from_shared(self.internal.clone()).expect("uri").connect().await.expect("connect")
    }

    /// The same client, bound to the internal port.
    pub fn internal_client(&self) -> Client {
        self.client.at(&self.internal).expect("the internal base URL")
    }

    pub async fn internal_get(&self, path: &str) -> Response {
        self.internal_client().get(path).send().await.expect("request")
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.client.get(path).token(token).send().await.expect("request")
    }

    /// `POST /v1/wallet/top-ups` with a JSON body and an optional key.
    pub async fn top_up_with(&self, token: &str, body: &Value, key: Option<&str>) -> Response {
        let req = self.client.post("/v1/wallet/top-ups").token(token).idempotency_key(key);
        req.json(body).send().await.expect("request")
    }

    /// `POST /v1/wallet/top-ups` with a raw body and content type.
    pub async fn top_up_raw(&self, token: &str, content_type: &str, body: &str) -> Response {
        let req = self.client.post("/v1/wallet/top-ups").token(token);
        req.body(Some(content_type), body.to_owned()).send().await.expect("request")
    }

    /// Tops up `amount` cents (no key); asserts 201 and returns the body.
    pub async fn top_up(&self, token: &str, amount: i64) -> Value {
        let res = self.top_up_with(token, &json!({"amount_cents": amount}), None).await;
        assert_eq!(res.status(), 201, "top-up of {amount}");
        res.json().expect("json")
    }

    /// The wallet's balance through `GET /v1/wallet`.
    pub async fn balance(&self, token: &str) -> i64 {
        let res = self.get("/v1/wallet", token).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().expect("json");
        assert_eq!(body["currency"], "EUR");
        body["balance_cents"].as_i64().expect("balance_cents is an integer")
    }

    /// Every ledger entry of the user, newest first (following cursors).
    pub async fn ledger(&self, token: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut path = "/v1/payments?limit=100".to_owned();
        loop {
            let res = self.get(&path, token).await;
            assert_eq!(res.status(), 200);
            let page: Value = res.json().expect("json");
            items.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(cursor) => path = format!("/v1/payments?limit=100&cursor={cursor}"),
                None => return items,
            }
        }
    }

    /// The `payment.refunded` outbox rows for `order_id`: the envelope and
    /// whether the relay has published it yet.
    pub async fn refunded_events(&self, order_id: Uuid) -> Vec<(Value, bool)> {
        let mut conn = self.db.connect().await;
        sqlx::query_as(
            "SELECT body, published_at IS NOT NULL FROM outbox WHERE event_type = 'payment.refunded' \
             AND body->'payload'->>'order_id' = $1",
        )
        .bind(order_id.to_string())
        .fetch_all(&mut conn)
        .await
        .expect("outbox query")
    }

    /// Checks the ledger invariant for `user` in SQL and returns the
    /// balance: `balance = top-ups - charges + refunds`, never negative.
    pub async fn assert_ledger_adds_up(&self, user: Uuid) -> i64 {
        let mut conn = self.db.connect().await;
        let (balance, top_ups, charges, refunds): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT COALESCE((SELECT balance_cents FROM wallets WHERE user_id = $1), 0), \
             COALESCE(SUM(amount_cents) FILTER (WHERE kind = 'top_up'), 0)::bigint, \
             COALESCE(SUM(amount_cents) FILTER (WHERE kind = 'charge'), 0)::bigint, \
             COALESCE(SUM(amount_cents) FILTER (WHERE kind = 'refund'), 0)::bigint \
             FROM ledger_entries WHERE user_id = $1",
        )
        .bind(user)
        .fetch_one(&mut conn)
        .await
        .expect("ledger sums");
        assert!(balance >= 0, "balance {balance} is negative");
        assert_eq!(balance, top_ups - charges + refunds, "top-ups {top_ups}, charges {charges}, refunds {refunds}");
        let (negative,): (i64,) = sqlx::query_as("SELECT count(*) FROM wallets WHERE balance_cents < 0")
            .fetch_one(&mut conn)
            .await
            .expect("negative wallets");
        assert_eq!(negative, 0, "no wallet is negative");
        balance
    }

    /// Stops the app (graceful drain) but keeps its database and queues,
    /// so a test can look at what the drained app left behind. An app that
    /// does not stop within its drain deadline plus a margin fails the test.
    pub async fn halt(&mut self) {
        self.shutdown.trigger();
        if let Some(task) = self.task.take() {
            let limit = Duration::from_secs(5) + STOP_MARGIN;
            let stopped = tokio::time::timeout(limit, task).await;
            assert!(stopped.is_ok(), "the app did not stop within {limit:?}");
        }
    }

    /// Stops the app and removes its database and queues.
    pub async fn stop(mut self) {
        self.halt().await;
        let topology = self.topology();
        let mut queues = Vec::new();
        for q in topology.queues() {
            queues.push(q.dead_letter_queue());
            queues.push(q.name);
        }
        // Best effort, and bounded: lapin's close can wait forever for a
        // close-ok the broker never sends, and a leftover namespace is
        // harmless next to a hung test run.
        let _ = tokio::time::timeout(
            STOP_MARGIN,
            twinshop_testkit::delete_namespace(
                &topology.namespace,
                &queues,
                &[topology.exchange(), topology.dead_letter_exchange()],
            ),
        )
        .await;
        self.db.drop_database().await;
    }
}

/// Asserts a problem+json answer with `status` and `code`; returns the body.
pub fn assert_problem(res: Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status(), status, "status");
    let ct = res.header("content-type").unwrap_or("").to_owned();
    assert!(ct.starts_with("application/problem+json"), "content type was {ct:?}");
    let body: Value = res.json().expect("problem body is JSON");
    assert_eq!(body["code"], code, "body: {body}");
    assert_eq!(body["status"], status);
    body
}

/// The fields listed in a validation problem, sorted.
pub fn error_fields(body: &Value) -> Vec<String> {
    let mut fields: Vec<String> = body["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["field"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    fields.sort();
    fields
}
