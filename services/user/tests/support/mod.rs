//! `spawn_app()`: the user service on random ports against its own test
//! database and broker namespace, plus the one API client (twinshop-client)
//! bound to its public port.

#![allow(dead_code)]

use std::{net::IpAddr, sync::Once, time::Duration};

use serde_json::{Value, json};
use twinshop_client::{Client, Response};
use twinshop_contracts::topology::Topology;
use twinshop_platform::{
    config::{PlatformConfig, Secret},
    http::auth::JwtVerifierConfig,
    shutdown::Shutdown,
    telemetry::{Telemetry, TelemetryConfig},
};
use twinshop_testkit::{TestDb, dead_port, dev_keys, unique_name};
use twinshop_user::{
    App,
    app::tokens::JwtIssuerConfig,
    config::{Config, UserConfig},
    migrate,
};

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
    pub config: Config,
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

pub fn config(db_url: &str, namespace: &str) -> Config {
    let (private_key, public_key) = dev_keys();
    Config {
        user: UserConfig {
            bind_address: IpAddr::from([127, 0, 0, 1]),
            http_port: 0,
            internal_port: 0,
            database_url: Secret::new(db_url.to_owned()),
            db_max_connections: 5,
            redis_url: Secret::new(twinshop_testkit::redis_url()),
            amqp_url: Secret::new(twinshop_testkit::amqp_url()),
            cache_ttl_secs: 60,
            hash_concurrency: 2,
            request_timeout_ms: 10_000,
            migrate_on_start: false,
        },
        jwt_issuer: JwtIssuerConfig { private_key: Secret::new(private_key), ttl_secs: 3600 },
        jwt_verifier: JwtVerifierConfig { public_key },
        platform: PlatformConfig { shutdown_timeout: 5, events_namespace: namespace.to_owned() },
        telemetry: TelemetryConfig::default(),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Outage::default()).await
}

pub async fn spawn_app_with(outage: Outage) -> TestApp {
    init_logs();
    let db = TestDb::create("user").await;
    let mut config = config(&db.url, &unique_name("t"));
    if !outage.unmigrated {
        migrate(&config).await.expect("migrations apply");
    }
    if outage.database {
        config.user.database_url = Secret::new(format!("postgres://postgres@127.0.0.1:{}/x", dead_port()));
    }
    if outage.redis {
        config.user.redis_url = Secret::new(format!("redis://127.0.0.1:{}", dead_port()));
    }
    if outage.rabbitmq {
        config.user.amqp_url = Secret::new(format!("amqp://guest:guest@127.0.0.1:{}/%2f", dead_port()));
    }
    let shutdown = Shutdown::new();
    let app = App::build(&config, shutdown.clone()).await.expect("app builds");
    let public = format!("http://{}", app.public_addr());
    let internal = format!("http://{}", app.internal_addr());
    let task = tokio::spawn(app.run());
    let client = Client::builder().timeout(Duration::from_secs(10)).build(&public).expect("client");
    TestApp { public, internal, client, db, config, shutdown, task }
}

impl TestApp {
    pub fn topology(&self) -> Topology {
        Topology::new(&self.config.platform.events_namespace)
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
