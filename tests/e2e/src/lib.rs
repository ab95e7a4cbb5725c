//! A running microservices build for end-to-end tests: the `user-service`,
//! `payment-service` and `order-service` binaries started as real processes
//! (so they can be killed with SIGKILL and restarted), each with its own test
//! database, all sharing one private broker namespace.
//!
//! The binaries are the workspace's debug builds next to the test executable
//! (`cargo test --workspace` and `cargo nextest run --workspace` build them).

mod edge;
mod monolith;
pub mod openapi;

pub use edge::Edge;
pub use monolith::Monolith;

use std::{
    collections::HashMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};
use twinshop_testkit::{TestDb, dev_keys, eventually, unique_name};
use uuid::Uuid;

/// The three services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Svc {
    User,
    Payment,
    Order,
}

impl Svc {
    pub const ALL: [Svc; 3] = [Svc::User, Svc::Payment, Svc::Order];

    fn name(self) -> &'static str {
        match self {
            Svc::User => "user",
            Svc::Payment => "payment",
            Svc::Order => "order",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Svc::User => "USER_",
            Svc::Payment => "PAYMENT_",
            Svc::Order => "ORDER_",
        }
    }
}

/// How to run the stack.
#[derive(Debug, Clone)]
pub struct Options {
    /// `ORDER_CONSISTENCY_MODE`.
    pub mode: &'static str,
    /// `ORDER_PAYMENT_DEADLINE_MS`.
    pub payment_deadline_ms: u64,
    /// `ORDER_SWEEP_INTERVAL_MS`.
    pub sweep_interval_ms: u64,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` for every process.
    pub otlp_endpoint: Option<String>,
    /// Replaces `*_AMQP_URL` of every service (e.g. a proxy the test cuts).
    pub amqp_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self { mode: "strict", payment_deadline_ms: 1_000, sweep_interval_ms: 200, otlp_endpoint: None, amqp_url: None }
    }
}

pub(crate) fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test> → target/debug
    exe.parent().and_then(|p| p.parent()).map(PathBuf::from).expect("target dir")
}

pub(crate) use twinshop_testkit::free_port;

struct Ports {
    http: u16,
    internal: u16,
}

/// Dropping a stack that was not stopped (a test failed) kills its
/// processes, so none outlives the test; the logs stay for a post-mortem.
pub struct Stack {
    pub options: Options,
    pub namespace: String,
    pub dbs: HashMap<Svc, TestDb>,
    ports: HashMap<Svc, Ports>,
    children: HashMap<Svc, Child>,
    pub client: reqwest::Client,
    log_dir: PathBuf,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("namespace", &self.namespace)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for (_, mut child) in self.children.drain() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Stack {
    /// Creates the databases, migrates, starts all three and waits until ready.
    pub async fn start(options: Options) -> Self {
        twinshop_testkit::require_backing_services();
        let namespace = unique_name("e2e");
        let mut dbs = HashMap::new();
        let mut ports = HashMap::new();
        for svc in Svc::ALL {
            dbs.insert(svc, TestDb::create(svc.name()).await);
            ports.insert(svc, Ports { http: free_port(), internal: free_port() });
        }
        let log_dir = bin_dir().join("e2e-logs").join(&namespace);
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
        let mut stack = Self { options, namespace, dbs, ports, children: HashMap::new(), client, log_dir };
        for svc in Svc::ALL {
            let out = stack.command(svc).arg("migrate").output().expect("run migrate");
            assert!(out.status.success(), "{} migrate failed: {}", svc.name(), String::from_utf8_lossy(&out.stdout));
        }
        for svc in Svc::ALL {
            stack.spawn(svc).await;
        }
        stack
    }

    fn env(&self, svc: Svc) -> Vec<(String, String)> {
        let (private_key, public_key) = dev_keys();
        let amqp = self.options.amqp_url.clone().unwrap_or_else(twinshop_testkit::amqp_url);
        let p = svc.prefix();
        let port = &self.ports[&svc];
        let mut env = vec![
            (format!("{p}BIND_ADDRESS"), "127.0.0.1".to_owned()),
            (format!("{p}HTTP_PORT"), port.http.to_string()),
            (format!("{p}INTERNAL_PORT"), port.internal.to_string()),
            (format!("{p}DATABASE_URL"), self.dbs[&svc].url.clone()),
            (format!("{p}AMQP_URL"), amqp),
            (format!("{p}DB_MAX_CONNECTIONS"), "8".to_owned()),
            ("JWT_PUBLIC_KEY".to_owned(), public_key),
            ("EVENTS_NAMESPACE".to_owned(), self.namespace.clone()),
            ("SHUTDOWN_TIMEOUT".to_owned(), "5".to_owned()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ];
        match svc {
            Svc::User => {
                env.push(("USER_REDIS_URL".into(), twinshop_testkit::redis_url()));
                env.push(("JWT_PRIVATE_KEY".into(), private_key));
                env.push(("USER_HASH_CONCURRENCY".into(), "2".into()));
            }
            Svc::Order => {
                env.push((
                    "ORDER_USER_SERVICE_URL".into(),
                    format!("http://127.0.0.1:{}", self.ports[&Svc::User].internal),
                ));
                env.push((
                    "ORDER_PAYMENT_GRPC_URL".into(),
                    format!("http://127.0.0.1:{}", self.ports[&Svc::Payment].internal),
                ));
                env.push(("ORDER_CONSISTENCY_MODE".into(), self.options.mode.into()));
                env.push(("ORDER_PAYMENT_DEADLINE_MS".into(), self.options.payment_deadline_ms.to_string()));
                env.push(("ORDER_SWEEP_INTERVAL_MS".into(), self.options.sweep_interval_ms.to_string()));
            }
            Svc::Payment => {}
        }
        if let Some(otlp) = &self.options.otlp_endpoint {
            env.push(("OTEL_EXPORTER_OTLP_ENDPOINT".into(), otlp.clone()));
        }
        env
    }

    fn command(&self, svc: Svc) -> Command {
        let bin = bin_dir().join(format!("{}-service", svc.name()));
        assert!(
            bin.exists(),
            "{} is missing: build the binaries first (cargo build --workspace --bins)",
            bin.display()
        );
        let mut cmd = Command::new(bin);
        cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).envs(self.env(svc));
        cmd
    }

    /// Starts `svc` (again) and waits until its `/readyz` is 200.
    pub async fn spawn(&mut self, svc: Svc) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_dir.join(format!("{}.log", svc.name())))
            .expect("log file");
        let child = self
            .command(svc)
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn");
        self.children.insert(svc, child);
        let url = format!("http://127.0.0.1:{}/readyz", self.ports[&svc].internal);
        let client = self.client.clone();
        eventually(&format!("{} is ready", svc.name()), Duration::from_secs(30), || {
            let (client, url) = (client.clone(), url.clone());
            async move { client.get(url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
        })
        .await;
    }

    /// `kill -9`: no drain, no goodbye.
    pub fn kill(&mut self, svc: Svc) {
        if let Some(mut child) = self.children.remove(&svc) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait (a graceful stop).
    pub fn terminate(&mut self, svc: Svc) {
        if let Some(mut child) = self.children.remove(&svc) {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// `host:port` of a service's public API (an edge upstream).
    pub fn public_addr(&self, svc: Svc) -> String {
        format!("127.0.0.1:{}", self.ports[&svc].http)
    }

    /// The public base URL of a service.
    pub fn url(&self, svc: Svc) -> String {
        format!("http://127.0.0.1:{}", self.ports[&svc].http)
    }

    /// The internal base URL of a service.
    pub fn internal_url(&self, svc: Svc) -> String {
        format!("http://127.0.0.1:{}", self.ports[&svc].internal)
    }

    pub async fn db(&self, svc: Svc) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.dbs[&svc].url)
            .await
            .expect("connect to a test database")
    }

    /// Stops every process gracefully and removes the databases and queues.
    pub async fn stop(mut self) {
        for svc in Svc::ALL {
            self.terminate(svc);
        }
        let topology = twinshop_contracts::topology::Topology::new(&self.namespace);
        let queues: Vec<String> = topology.queues().into_iter().flat_map(|q| [q.dead_letter_queue(), q.name]).collect();
        twinshop_testkit::delete_namespace(
            &self.namespace,
            &queues,
            &[topology.exchange(), topology.dead_letter_exchange()],
        )
        .await;
        for (_, db) in self.dbs.drain() {
            db.drop_database().await;
        }
        let _ = std::fs::remove_dir_all(&self.log_dir);
    }

    // ---- API helpers ----

    /// Registers a user (with an address unless `address` is false) and
    /// logs in. Returns (token, user id).
    pub async fn user(&self, address: bool) -> (String, Uuid) {
        let email = format!("{}@example.com", unique_name("u"));
        let mut body = json!({"email": email, "password": "correct horse battery", "name": "Test Buyer"});
        if address {
            body["address"] =
                json!({"line1": "1 Test St", "city": "Testville", "postal_code": "12345", "country": "DE"});
        }
        let res =
            self.client.post(format!("{}/v1/users", self.url(Svc::User))).json(&body).send().await.expect("register");
        assert_eq!(res.status(), 201, "register");
        let user: Value = res.json().await.expect("json");
        let res = self
            .client
            .post(format!("{}/v1/sessions", self.url(Svc::User)))
            .json(&json!({"email": email, "password": "correct horse battery"}))
            .send()
            .await
            .expect("login");
        let session: Value = res.json().await.expect("json");
        let token = session["access_token"].as_str().expect("token").to_owned();
        (token, user["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()).expect("id"))
    }

    pub async fn top_up(&self, token: &str, cents: i64) -> Value {
        let res = self
            .client
            .post(format!("{}/v1/wallet/top-ups", self.url(Svc::Payment)))
            .bearer_auth(token)
            .json(&json!({"amount_cents": cents}))
            .send()
            .await
            .expect("top up");
        assert_eq!(res.status(), 201, "top up");
        res.json().await.expect("json")
    }

    pub async fn balance(&self, token: &str) -> i64 {
        let res = self
            .client
            .get(format!("{}/v1/wallet", self.url(Svc::Payment)))
            .bearer_auth(token)
            .send()
            .await
            .expect("wallet");
        let body: Value = res.json().await.expect("json");
        body["balance_cents"].as_i64().expect("balance")
    }

    /// `POST /v1/orders`; returns the raw response.
    pub async fn place(&self, token: &str, items: Value, key: Option<&str>) -> reqwest::Result<reqwest::Response> {
        let mut req = self
            .client
            .post(format!("{}/v1/orders", self.url(Svc::Order)))
            .bearer_auth(token)
            .json(&json!({"items": items}));
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        req.send().await
    }

    pub async fn order(&self, token: &str, id: &str) -> Value {
        let res = self
            .client
            .get(format!("{}/v1/orders/{id}", self.url(Svc::Order)))
            .bearer_auth(token)
            .send()
            .await
            .expect("order");
        assert_eq!(res.status(), 200, "get order");
        res.json().await.expect("json")
    }

    pub async fn me(&self, token: &str) -> Value {
        let res = self
            .client
            .get(format!("{}/v1/users/me", self.url(Svc::User)))
            .bearer_auth(token)
            .send()
            .await
            .expect("me");
        res.json().await.expect("json")
    }

    /// The money invariants of docs/design.md §6, checked across both databases
    /// once nothing is pending. Returns a list of violations (empty = ok).
    pub async fn money_violations(&self) -> Vec<String> {
        let orders = self.db(Svc::Order).await;
        let payments = self.db(Svc::Payment).await;
        let mut v = Vec::new();
        let per_user: Vec<(Uuid, i64, i64)> = sqlx::query_as(
            "SELECT w.user_id, w.balance_cents, COALESCE(SUM(CASE l.kind WHEN 'top_up' THEN l.amount_cents \
             WHEN 'charge' THEN -l.amount_cents ELSE l.amount_cents END), 0)::bigint \
             FROM wallets w LEFT JOIN ledger_entries l ON l.user_id = w.user_id GROUP BY w.user_id, w.balance_cents",
        )
        .fetch_all(&payments)
        .await
        .expect("ledger sums");
        for (user, balance, sum) in per_user {
            if balance != sum {
                v.push(format!("user {user}: balance {balance} != top-ups - charges + refunds {sum}"));
            }
            if balance < 0 {
                v.push(format!("user {user}: negative balance {balance}"));
            }
        }
        let order_rows: Vec<(Uuid, String, i64)> =
            sqlx::query_as("SELECT id, status, total_cents FROM orders").fetch_all(&orders).await.expect("orders");
        let charges: Vec<(Uuid, String, Option<i64>, bool)> =
            sqlx::query_as("SELECT order_id, outcome, amount_cents, refunded_at IS NOT NULL FROM charges")
                .fetch_all(&payments)
                .await
                .expect("charges");
        let charge_of: HashMap<Uuid, (String, Option<i64>, bool)> =
            charges.into_iter().map(|(id, outcome, amount, refunded)| (id, (outcome, amount, refunded))).collect();
        let ledger_charges: Vec<(Uuid, i64)> =
            sqlx::query_as("SELECT order_id, count(*) FROM ledger_entries WHERE kind = 'charge' GROUP BY order_id")
                .fetch_all(&payments)
                .await
                .expect("ledger charges");
        for (order, n) in &ledger_charges {
            if *n != 1 {
                v.push(format!("order {order}: {n} charges"));
            }
        }
        for (id, status, total) in order_rows {
            let charge = charge_of.get(&id);
            let holds_money = matches!(charge, Some((o, _, false)) if o == "charged");
            match status.as_str() {
                "pending" => v.push(format!("order {id}: still pending")),
                "confirmed" if !matches!(charge, Some((o, Some(a), false)) if o == "charged" && *a == total) => {
                    v.push(format!("order {id}: confirmed without its charge ({charge:?})"));
                }
                "rejected" | "failed" if holds_money => v.push(format!("order {id}: {status} but still charged")),
                _ => {}
            }
        }
        orders.close().await;
        payments.close().await;
        v
    }

    /// Waits until no order is pending and no void is owed, then checks the
    /// money invariants.
    pub async fn assert_settled_and_conserved(&self, within: Duration) {
        let orders = self.db(Svc::Order).await;
        eventually("no order pending and no void owed", within, || {
            let orders = orders.clone();
            async move {
                let (n,): (i64,) =
                    sqlx::query_as("SELECT count(*) FROM orders WHERE status = 'pending' OR void_status = 'owed'")
                        .fetch_one(&orders)
                        .await
                        .ok()?;
                (n == 0).then_some(())
            }
        })
        .await;
        orders.close().await;
        let violations = self.money_violations().await;
        assert!(violations.is_empty(), "money invariants broken:\n{}", violations.join("\n"));
    }
}
