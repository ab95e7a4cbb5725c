//! What the end-to-end tests share: a build started as real processes by
//! the one launcher ([`twinshop_launcher::System`]), a client of it
//! ([`twinshop_client`]), and the checks the failure tests end with (nothing
//! pending, not a cent made or lost), read from the services' own databases.
//!
//! Why it exists: every test starts either build the way `make run` and the
//! labs do (so a test's `kill -9` is a lab's), and talks to it the way any
//! client would; what is left here is only what several tests need.
//! [`openapi`] holds what the conformance runs saw to the OpenAPI document;
//! [`dashboard`] and [`prometheus`] are the dashboards test's: the committed
//! Grafana dashboard's queries, and Debian's Prometheus scraping a build.
//!
//! The binaries are the workspace's debug builds in `target/debug`; build
//! them first: `cargo build --bins -p twinshop-user -p twinshop-payment
//! -p twinshop-order -p twinshop-monolith`. Each process's log is in
//! `target/e2e-logs/<test>-<pid>/`, kept when a test fails.

pub mod dashboard;
pub mod openapi;
pub mod prometheus;

use std::{collections::HashMap, path::PathBuf, time::Duration};

use serde_json::Value;
use twinshop_client::{Address, Client, NewUser, Response, SendError, UserClient};
use twinshop_launcher::{Build, LogTarget, Plan, ProcessId, plan::workspace_root};
pub use twinshop_launcher::{Service, System};
use twinshop_testkit::{eventually, unique_name};
use uuid::Uuid;

/// The plan every test starts from: `build` from the debug binaries, fresh
/// databases and events namespace, free ports, the edge, logs in files, the
/// backing services `TEST_DATABASE_URL`, `TEST_REDIS_URL` and
/// `TEST_AMQP_URL` name (as every other test's), quick drains, the sweeper
/// every 200 ms, at most two password hashes at once and, in the
/// microservices, 8 connections per pool and a 1 s payment deadline.
/// Tests add their own settings with [`Plan::env`].
pub fn plan(build: Build, test: &str) -> Plan {
    let logs = workspace_root().join("target/e2e-logs").join(format!("{test}-{}", std::process::id()));
    let mut plan = Plan::new(build)
        .logs(LogTarget::Dir(logs))
        .drain(Duration::from_secs(10))
        .env_all("SHUTDOWN_TIMEOUT", "5")
        .env_all("RUST_LOG", "info");
    let admin = twinshop_testkit::admin_database_url();
    let (server, params) = admin.split_once('?').map_or((admin.as_str(), ""), |(s, p)| (s, p));
    plan.backing.postgres = server.rsplit_once('/').map_or(server, |(s, _)| s).to_owned();
    plan.backing.postgres_params = if params.is_empty() { String::new() } else { format!("?{params}") };
    plan.backing.redis = twinshop_testkit::redis_url();
    plan.backing.amqp = twinshop_testkit::amqp_url();
    match build {
        Build::Monolith => plan.env(Service::Monolith, "MONOLITH_HASH_CONCURRENCY", "2").env(
            Service::Monolith,
            "MONOLITH_SWEEP_INTERVAL_MS",
            "200",
        ),
        Build::Microservices => {
            for service in build.services() {
                plan = plan.env(*service, format!("{}DB_MAX_CONNECTIONS", service.env_prefix()), "8");
            }
            plan.env(Service::User, "USER_HASH_CONCURRENCY", "2")
                .env(Service::Order, "ORDER_PAYMENT_DEADLINE_MS", "1000")
                .env(Service::Order, "ORDER_SWEEP_INTERVAL_MS", "200")
        }
    }
}

/// A running build and a client of it. Dropping it without
/// [`Shop::stop`] (a test failed) kills every process and removes the
/// databases and queues; the logs stay.
#[derive(Debug)]
pub struct Shop {
    system: System,
    /// The edge, or the only process's public port in a plan without one.
    client: Client,
    logs: Option<PathBuf>,
}

impl Shop {
    /// Starts `plan` and waits until it is ready.
    pub async fn start(plan: Plan) -> Self {
        twinshop_testkit::require_backing_services();
        let logs = match &plan.logs {
            LogTarget::Dir(dir) => Some(dir.clone()),
            _ => None,
        };
        let system = System::start(plan).await.unwrap_or_else(|e| panic!("starting the build: {e:#}"));
        let base = match system.url() {
            Some(edge) => edge,
            None => system.processes().first().map(|p| p.public_url()).expect("a process"),
        };
        let client = Client::builder().timeout(Duration::from_secs(20)).build(&base).expect("a client of the build");
        Self { system, client, logs }
    }

    /// The running system (its processes, databases, edge).
    pub fn system(&self) -> &System {
        &self.system
    }

    /// A client of the build's one base URL: the edge (or the only process).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A client of `service`'s own public port, bypassing the edge (for a
    /// test about what a caller of that process sees when it dies).
    pub fn direct(&self, service: Service) -> Client {
        let process = self.system.process(ProcessId::new(service, 1)).expect("the service runs");
        self.client.at(&process.public_url()).expect("a client of the process")
    }

    /// `kill -9` of `service` (no drain, no goodbye); returns once it is gone.
    pub async fn kill(&self, service: Service) {
        let id = ProcessId::new(service, 1);
        self.system.kill(id).await.expect("SIGKILL");
        let mut status = self.system.supervisor(id).expect("supervisor").watch();
        tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.pid.is_none()))
            .await
            .expect("the killed process is gone within 10 s")
            .expect("its supervisor runs");
    }

    /// Starts `service` again after [`Shop::kill`] and waits until it is ready.
    pub async fn start_again(&self, service: Service) {
        self.system.start_process(ProcessId::new(service, 1)).await.expect("started again and ready");
    }

    /// Registers a user (with an address unless `address` is false) and
    /// logs in: a client acting as them, and their id.
    pub async fn user(&self, address: bool) -> (UserClient, Uuid) {
        let address = address.then(|| Address {
            line1: "1 Test St".into(),
            city: "Testville".into(),
            postal_code: "12345".into(),
            country: "DE".into(),
        });
        let new = NewUser {
            email: format!("{}@example.com", unique_name("u")),
            password: "correct horse battery".into(),
            name: "Test Buyer".into(),
            address,
        };
        let (user, client) = self.client.sign_up(&new).await.expect("register (201) and log in");
        (client, user.id)
    }

    /// A small pool on `service`'s database, for checks of what it holds.
    pub async fn db(&self, service: Service) -> sqlx::PgPool {
        let url = self.system.database_url(service).expect("the service has a database");
        sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&url).await.expect("connect to its database")
    }

    /// The money invariants of docs/design.md §6, checked across the
    /// order and payment databases once nothing is pending. Returns the
    /// violations (empty: all hold).
    pub async fn money_violations(&self) -> Vec<String> {
        let orders = self.db(Service::Order).await;
        let payments = self.db(Service::Payment).await;
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
        let orders = self.db(Service::Order).await;
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

    /// Drains every process and removes what the start created; the logs
    /// go too (a test that got here passed).
    pub async fn stop(self) {
        let report = self.system.stop().await.expect("stop");
        for problem in &report.problems {
            eprintln!("cleanup: {problem}");
        }
        if let Some(dir) = &self.logs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `POST /v1/orders` with `{"items": items}` (any JSON, valid or not) and
/// an optional `Idempotency-Key`: the raw answer.
pub async fn place(user: &UserClient, items: Value, key: Option<&str>) -> Result<Response, SendError> {
    user.post("/v1/orders").idempotency_key(key).json(&serde_json::json!({ "items": items })).send().await
}

/// `GET /v1/orders/{id}`, which must be 200: the order as JSON.
pub async fn order(user: &UserClient, id: &str) -> Value {
    let res = user.get(format!("/v1/orders/{id}")).send().await.expect("get the order");
    assert_eq!(res.status(), 200, "get order: {}", res.text());
    res.json().expect("json")
}

/// `POST /v1/orders/{id}/cancel`: the raw answer.
pub async fn cancel(user: &UserClient, id: &str) -> Response {
    user.post(format!("/v1/orders/{id}/cancel")).send().await.expect("cancel")
}

/// `GET /v1/users/me` as JSON.
pub async fn me(user: &UserClient) -> Value {
    user.get("/v1/users/me").send().await.expect("me").json().expect("json")
}

/// The wallet's balance, in cents.
pub async fn balance(user: &UserClient) -> i64 {
    user.wallet().await.expect("wallet").balance_cents
}

/// Asserts `res` is a problem+json with this status and `code`; returns its body.
pub fn assert_problem(res: &Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status(), status, "{}", res.text());
    let media_type = res.header("content-type").unwrap_or_default();
    assert!(media_type.starts_with("application/problem+json"), "{media_type}");
    let body: Value = res.json().expect("json");
    assert_eq!(body["code"], code, "{body}");
    body
}
