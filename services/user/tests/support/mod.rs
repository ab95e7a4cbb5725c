//! `spawn_app()`: the user service on random ports against its own test
//! database and broker namespace, plus the one API client (twinshop-client)
//! bound to its public port.

#![allow(dead_code)]

use std::{sync::Once, time::Duration};

use serde_json::{Value, json};
use twinshop_client::{Client, Response};
use twinshop_contracts::topology::Topology;
use twinshop_platform::{
    host::{self, Env, Host},
    shutdown::Shutdown,
    telemetry::{Telemetry, TelemetryConfig},
};
use twinshop_testkit::{TestDb, dead_port, dev_keys, unique_name};
use twinshop_user::SERVICE;

/// Which backing service to make unreachable for this app.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outage {
    pub database: bool,
    pub redis: bool,
    pub rabbitmq: bool,
    /// The database is up but `migrate` has not run yet.
    pub unmigrated: bool,
}

pub struct TestApp {
    pub public: String,
    pub internal: String,
    /// The public API through twinshop-client (raw requests and typed calls).
    pub client: Client,
    pub db: TestDb,
    /// The environment the app was started with.
    pub vars: Vec<(String, String)>,
    pub namespace: String,
    pub shutdown: Shutdown,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn init_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = Telemetry::init_with_writer(
            "user-test",
            &TelemetryConfig::default(),
            tracing_subscriber::fmt::TestWriter::new(),
        );
    });
}

/// The user service's variables for a test: both ports on loopback, picked
/// by the OS; its own database and broker namespace.
pub fn vars(db_url: &str, namespace: &str) -> Vec<(String, String)> {
    let (private_key, public_key) = dev_keys();
    [
        ("USER_BIND_ADDRESS", "127.0.0.1".to_owned()),
        ("USER_HTTP_PORT", "0".to_owned()),
        ("USER_INTERNAL_PORT", "0".to_owned()),
        ("USER_DATABASE_URL", db_url.to_owned()),
        ("USER_DB_MAX_CONNECTIONS", "5".to_owned()),
        ("USER_REDIS_URL", twinshop_testkit::redis_url()),
        ("USER_AMQP_URL", twinshop_testkit::amqp_url()),
        ("USER_HASH_CONCURRENCY", "2".to_owned()),
        ("JWT_PRIVATE_KEY", private_key),
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

/// Runs the `migrate` admin step with these variables.
pub async fn migrate(vars: &[(String, String)]) -> anyhow::Result<()> {
    host::migrate(&SERVICE, &Env::load(&SERVICE, vars.to_vec())?).await
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Outage::default()).await
}

pub async fn spawn_app_with(outage: Outage) -> TestApp {
    spawn_app_with_vars(outage, &[]).await
}

/// [`spawn_app_with`], with `extra` variables added (or replaced).
pub async fn spawn_app_with_vars(outage: Outage, extra: &[(&str, &str)]) -> TestApp {
    init_logs();
    let db = TestDb::create("user").await;
    let namespace = unique_name("t");
    let mut vars = vars(&db.url, &namespace);
    for (name, value) in extra {
        vars.retain(|(k, _)| k != name);
        vars.push(((*name).to_owned(), (*value).to_owned()));
    }
    if !outage.unmigrated {
        migrate(&vars).await.expect("migrations apply");
    }
    if outage.database {
        set(&mut vars, "USER_DATABASE_URL", format!("postgres://postgres@127.0.0.1:{}/x", dead_port()));
    }
    if outage.redis {
        set(&mut vars, "USER_REDIS_URL", format!("redis://127.0.0.1:{}", dead_port()));
    }
    if outage.rabbitmq {
        set(&mut vars, "USER_AMQP_URL", format!("amqp://guest:guest@127.0.0.1:{}/%2f", dead_port()));
    }
    let shutdown = Shutdown::new();
    let app = Host::start(&SERVICE, vars.clone(), shutdown.clone()).await.expect("app builds");
    let public = format!("http://{}", app.public_addr());
    let internal = format!("http://{}", app.internal_addr());
    let task = tokio::spawn(app.run());
    let client = Client::builder().timeout(Duration::from_secs(10)).build(&public).expect("client");
    TestApp { public, internal, client, db, vars, namespace, shutdown, task }
}

impl TestApp {
    pub fn topology(&self) -> Topology {
        Topology::new(&self.namespace)
    }

    /// The same client, bound to the internal port.
    pub fn internal_client(&self) -> Client {
        self.client.at(&self.internal).expect("the internal base URL")
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.client.post(path).json(body).send().await.expect("request")
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Response {
        self.client.post(path).body(Some(content_type), body).send().await.expect("request")
    }

    pub async fn get_authed(&self, path: &str, token: &str) -> Response {
        self.client.get(path).token(token).send().await.expect("request")
    }

    pub async fn patch_me(&self, token: &str, body: &Value) -> Response {
        self.client.patch("/v1/users/me").token(token).json(body).send().await.expect("request")
    }

    pub async fn internal_get(&self, path: &str) -> Response {
        self.internal_client().get(path).send().await.expect("request")
    }

    /// Registers a user with an address; returns the created user JSON.
    pub async fn register(&self, email: &str) -> Value {
        let res = self
            .post(
                "/v1/users",
                &json!({"email": email, "password": "correct horse battery", "name": "Ada Lovelace",
                        "address": {"line1": "1 Analytical St", "city": "London", "postal_code": "N1 7AA", "country": "GB"}}),
            )
            .await;
        assert_eq!(res.status(), 201, "registration of {email}");
        res.json().expect("json")
    }

    /// Logs in and returns the bearer token.
    pub async fn login(&self, email: &str) -> String {
        let res = self.post("/v1/sessions", &json!({"email": email, "password": "correct horse battery"})).await;
        assert_eq!(res.status(), 200, "login of {email}");
        let body: Value = res.json().expect("json");
        body["access_token"].as_str().expect("token").to_owned()
    }

    /// Stops the app (graceful drain) and removes its database and queues.
    pub async fn stop(self) {
        let topology = self.topology();
        self.shutdown.trigger();
        let _ = self.task.await;
        let mut queues = Vec::new();
        for q in topology.queues() {
            queues.push(q.dead_letter_queue());
            queues.push(q.name);
        }
        twinshop_testkit::delete_namespace(
            &topology.namespace,
            &queues,
            &[topology.exchange(), topology.dead_letter_exchange()],
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
