//! The microservices build under failure (docs/design.md §6): processes killed
//! with SIGKILL mid-traffic, a dependency down, the broker unreachable. Each
//! test ends by checking that every order settled and not a cent was made
//! or lost. Requests go through the edge, except the placements under a
//! killed process: those go to the order process itself, as its callers'
//! connections are what such a test is about.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};
use twinshop_client::{Response, SendError, UserClient};
use twinshop_e2e::{Service, Shop, assert_problem, balance, cancel, me, order, place, plan};
use twinshop_launcher::{Build, Plan};
use twinshop_testkit::{TcpProxy, eventually};
use uuid::Uuid;

const TEA: i64 = 650;
const COFFEE: i64 = 1890;
/// Client tasks placing orders at once.
const CLIENTS: usize = 6;
/// A bound on the orders one client places, whatever happens.
const MAX_ORDERS_PER_CLIENT: usize = 60;
/// How long settling may take after a restart (the sweeper's grace is the
/// payment deadline plus 3 s).
const SETTLE: Duration = Duration::from_secs(30);
const PHASE: Duration = Duration::from_secs(20);

fn tea() -> Value {
    json!([{"product_id": "sku-tea", "quantity": 1}])
}

/// The microservices with order in `mode` (`strict` or `available`) and
/// this payment deadline.
fn microservices(test: &str, mode: &str, payment_deadline_ms: u64) -> Plan {
    plan(Build::Microservices, test).env(Service::Order, "ORDER_CONSISTENCY_MODE", mode).env(
        Service::Order,
        "ORDER_PAYMENT_DEADLINE_MS",
        payment_deadline_ms.to_string(),
    )
}

/// A 201 body's `status`, or the problem `code` of any other answer.
fn outcome(res: &Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().unwrap_or(Value::Null);
    let what = if status == 201 { &body["status"] } else { &body["code"] };
    (status, what.as_str().unwrap_or("?").to_owned())
}

/// What the clients saw, as a traffic generator sees it.
#[derive(Default)]
struct Tally {
    /// Set by the test: the fault is in effect from now on.
    faulted: AtomicBool,
    /// Set by the test: the killed process is back.
    restored: AtomicBool,
    confirmed_before_fault: AtomicUsize,
    confirmed_after_restore: AtomicUsize,
    /// 503 `payment_unavailable` (strict) or 201 `pending` (available).
    affected: AtomicUsize,
    /// Requests that got no answer at all (the server process died).
    connection_errors: AtomicUsize,
    /// Every answer by (status, order status or problem code).
    answers: Mutex<HashMap<(u16, String), usize>>,
}

impl Tally {
    fn count(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }

    fn record(&self, status: u16, what: &str) {
        *self.answers.lock().expect("tally").entry((status, what.to_owned())).or_default() += 1;
        let is = |s: u16, w: &str| status == s && what == w;
        if is(201, "confirmed") {
            if !self.faulted.load(Ordering::SeqCst) {
                self.confirmed_before_fault.fetch_add(1, Ordering::SeqCst);
            }
            if self.restored.load(Ordering::SeqCst) {
                self.confirmed_after_restore.fetch_add(1, Ordering::SeqCst);
            }
        }
        if is(503, "payment_unavailable") || is(201, "pending") {
            self.affected.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn answers(&self) -> HashMap<(u16, String), usize> {
        self.answers.lock().expect("tally").clone()
    }
}

/// `POST /v1/orders` of one tea, from a client task (which cannot borrow
/// the shop: the test kills and restarts its processes meanwhile).
async fn place_tea(buyer: &UserClient, key: &str) -> Result<Response, SendError> {
    place(buyer, tea(), Some(key)).await
}

/// `CLIENTS` tasks, each with its own funded user, placing one tea after
/// another (each with its own Idempotency-Key) at the order process itself
/// until `stop` is set. The last user can afford only two, so some orders
/// are rejected too. A request without an answer (its server was killed)
/// makes the client wait until the test says the process is back.
async fn traffic(shop: &Shop, tally: &Arc<Tally>, stop: &Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<()>> {
    let orders = shop.direct(Service::Order);
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (user, _) = shop.user(true).await;
        let funds = if client == CLIENTS - 1 { 2 * TEA } else { MAX_ORDERS_PER_CLIENT as i64 * TEA };
        user.top_up(funds, None).await.expect("top up");
        let (buyer, tally, stop) = (orders.as_user(user.bearer()), tally.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            for n in 0..MAX_ORDERS_PER_CLIENT {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                match place_tea(&buyer, &format!("client{client}-order{n}")).await {
                    Ok(res) => {
                        let (status, what) = outcome(&res);
                        tally.record(status, &what);
                    }
                    Err(_) => {
                        tally.connection_errors.fetch_add(1, Ordering::SeqCst);
                        let back = || async { tally.restored.load(Ordering::SeqCst).then_some(()) };
                        eventually("the killed process is back", PHASE * 2, back).await;
                    }
                }
            }
        }));
    }
    clients
}

async fn wait_for(what: &str, counter: impl Fn() -> usize, at_least: usize) {
    eventually(what, PHASE, || async { (counter() >= at_least).then_some(()) }).await;
}

/// Runs the traffic, kills `victim` once some orders are confirmed, restarts
/// it once the outage showed, lets a few more orders through, and checks
/// that everything settled with every cent accounted for and that every
/// answer was one of `allowed`. Returns the answers, counted.
async fn kill_mid_placements(
    test: &str,
    mode: &str,
    victim: Service,
    allowed: &[(u16, &str)],
) -> HashMap<(u16, String), usize> {
    let shop = Shop::start(microservices(test, mode, 500)).await;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clients = traffic(&shop, &tally, &stop).await;

    wait_for("some orders are confirmed", || Tally::count(&tally.confirmed_before_fault), 60).await;
    tally.faulted.store(true, Ordering::SeqCst);
    shop.kill(victim).await;
    match victim {
        Service::Payment => wait_for("placements feel the outage", || Tally::count(&tally.affected), 3).await,
        // Every client is stuck on a dead connection (or a refused one).
        _ => wait_for("every client lost its connection", || Tally::count(&tally.connection_errors), CLIENTS).await,
    }
    shop.start_again(victim).await;
    tally.restored.store(true, Ordering::SeqCst);
    wait_for("orders confirm again", || Tally::count(&tally.confirmed_after_restore), 40).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.expect("a client task panicked");
    }

    shop.assert_settled_and_conserved(SETTLE).await;
    let answers = tally.answers();
    assert_only(&answers, allowed);
    shop.stop().await;
    answers
}

/// Every answer is one of `allowed` (status, order status or problem code).
fn assert_only(answers: &HashMap<(u16, String), usize>, allowed: &[(u16, &str)]) {
    for (status, what) in answers.keys() {
        assert!(allowed.contains(&(*status, what.as_str())), "unexpected answer {status} {what}: {answers:?}");
    }
}

fn seen(answers: &HashMap<(u16, String), usize>, status: u16, what: &str) -> usize {
    answers.get(&(status, what.to_owned())).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payment_process_killed_mid_placements_loses_no_money_in_strict_mode() {
    let answers = kill_mid_placements(
        "payment-killed-strict",
        "strict",
        Service::Payment,
        &[(201, "confirmed"), (201, "rejected"), (503, "payment_unavailable")],
    )
    .await;
    assert!(seen(&answers, 503, "payment_unavailable") > 0, "the outage was answered 503: {answers:?}");
    assert!(seen(&answers, 201, "rejected") > 0, "the poorest client ran out of funds: {answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payment_process_killed_mid_placements_loses_no_money_in_available_mode() {
    let answers = kill_mid_placements(
        "payment-killed-available",
        "available",
        Service::Payment,
        &[(201, "confirmed"), (201, "rejected"), (201, "pending")],
    )
    .await;
    assert!(seen(&answers, 201, "pending") > 0, "the outage was answered 201 pending: {answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_process_killed_mid_placements_loses_no_money_in_strict_mode() {
    // A charge slower than the short deadline on a loaded machine is a
    // legitimate strict-mode answer (503); what must hold is the money.
    kill_mid_placements(
        "order-killed-strict",
        "strict",
        Service::Order,
        &[(201, "confirmed"), (201, "rejected"), (503, "payment_unavailable")],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_process_killed_mid_placements_loses_no_money_in_available_mode() {
    // As above: a slow charge is answered 201 pending in available mode.
    kill_mid_placements(
        "order-killed-available",
        "available",
        Service::Order,
        &[(201, "confirmed"), (201, "rejected"), (201, "pending")],
    )
    .await;
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await.expect(sql);
    n
}

/// Ledger entries of one kind for one order.
async fn ledger_entries(shop: &Shop, kind: &str, order_id: &str) -> i64 {
    let payments = shop.db(Service::Payment).await;
    let order_id = Uuid::parse_str(order_id).expect("order id");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM ledger_entries WHERE kind = $1 AND order_id = $2")
        .bind(kind)
        .bind(order_id)
        .fetch_one(&payments)
        .await
        .expect("ledger");
    payments.close().await;
    n
}

async fn eventually_status(buyer: &UserClient, id: &str, status: &str) -> Value {
    eventually(&format!("order {id} is {status}"), SETTLE, || async {
        let order = order(buyer, id).await;
        (order["status"] == status).then_some(order)
    })
    .await
}

/// The process that died is payment's, under the placement's Charge: killing
/// the order process just after it recorded a request cannot be timed from
/// outside, but the client's view is the same (an order it cannot see
/// settled yet), and its retry must name that order, never place a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_a_placement_whose_process_died_resumes_the_same_order() {
    let shop = Shop::start(microservices("retry-resumes", "available", 500)).await;
    let (buyer, _) = shop.user(true).await;
    buyer.top_up(10_000, None).await.expect("top up");
    let items = json!([{"product_id": "sku-coffee", "quantity": 2}]);

    shop.kill(Service::Payment).await;
    let first = place(&buyer, items.clone(), Some("K")).await.expect("place");
    assert_eq!(first.status(), 201);
    let first: Value = first.json().expect("json");
    assert_eq!(first["status"], "pending", "accepted while payment is down");

    shop.start_again(Service::Payment).await;
    let again = place(&buyer, items, Some("K")).await.expect("place");
    assert_eq!(again.status(), 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let again: Value = again.json().expect("json");
    assert_eq!(again["id"], first["id"], "the same order, not a second one");

    let id = first["id"].as_str().expect("id");
    eventually_status(&buyer, id, "confirmed").await;
    assert_eq!(ledger_entries(&shop, "charge", id).await, 1);
    assert_eq!(balance(&buyer).await, 10_000 - 2 * COFFEE);
    let orders = shop.db(Service::Order).await;
    assert_eq!(count(&orders, "SELECT count(*) FROM orders").await, 1);
    orders.close().await;
    shop.assert_settled_and_conserved(SETTLE).await;
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_user_service_down_placement_is_503_dependency_unavailable_and_nothing_is_recorded() {
    let shop = Shop::start(plan(Build::Microservices, "user-down")).await;
    let (buyer, _) = shop.user(true).await;
    buyer.top_up(10_000, None).await.expect("top up");

    shop.kill(Service::User).await;
    let res = place(&buyer, tea(), Some("while-users-are-down")).await.expect("place");
    assert_problem(&res, 503, "dependency_unavailable");
    let orders = shop.db(Service::Order).await;
    assert_eq!(count(&orders, "SELECT count(*) FROM orders").await, 0);
    assert_eq!(count(&orders, "SELECT count(*) FROM idempotency").await, 0);
    let payments = shop.db(Service::Payment).await;
    assert_eq!(count(&payments, "SELECT count(*) FROM charges").await, 0);
    assert_eq!(balance(&buyer).await, 10_000);

    // Nothing was recorded, so the same key works once users are back.
    shop.start_again(Service::User).await;
    let res = place(&buyer, tea(), Some("while-users-are-down")).await.expect("place");
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().expect("json")["status"], "confirmed");
    assert_eq!(count(&orders, "SELECT count(*) FROM orders").await, 1);
    orders.close().await;
    payments.close().await;
    shop.assert_settled_and_conserved(SETTLE).await;
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_payment_down_strict_mode_answers_503_and_keeps_a_failed_order_with_nothing_charged() {
    let shop = Shop::start(microservices("payment-down-strict", "strict", 500)).await;
    let (buyer, _) = shop.user(true).await;
    buyer.top_up(10_000, None).await.expect("top up");

    shop.kill(Service::Payment).await;
    let res = place(&buyer, tea(), Some("while-payment-is-down")).await.expect("place");
    assert_problem(&res, 503, "payment_unavailable");
    let orders = shop.db(Service::Order).await;
    let rows: Vec<(Uuid, String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT id, status, rejection_reason, void_status FROM orders")
            .fetch_all(&orders)
            .await
            .expect("orders");
    assert_eq!(rows.len(), 1, "the failed order is kept");
    let (id, status, reason, void) = rows[0].clone();
    assert_eq!(
        (status.as_str(), reason.as_deref(), void.as_deref()),
        ("failed", Some("payment_unavailable"), Some("owed"))
    );
    assert_eq!(order(&buyer, &id.to_string()).await["status"], "failed");
    let replay = place(&buyer, tea(), Some("while-payment-is-down")).await.expect("place");
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_problem(&replay, 503, "payment_unavailable");

    // Once payment is back the owed void is delivered: a tombstone, so a
    // Charge that is still in flight somewhere could take nothing.
    shop.start_again(Service::Payment).await;
    eventually("the void is answered", SETTLE, || {
        let orders = orders.clone();
        async move {
            let (void,): (Option<String>,) = sqlx::query_as("SELECT void_status FROM orders WHERE id = $1")
                .bind(id)
                .fetch_one(&orders)
                .await
                .ok()?;
            (void.as_deref() == Some("done")).then_some(())
        }
    })
    .await;
    let payments = shop.db(Service::Payment).await;
    let (outcome,): (String,) = sqlx::query_as("SELECT outcome FROM charges WHERE order_id = $1")
        .bind(id)
        .fetch_one(&payments)
        .await
        .expect("tombstone");
    assert_eq!(outcome, "voided");
    assert_eq!(count(&payments, "SELECT count(*) FROM ledger_entries WHERE kind <> 'top_up'").await, 0);
    assert_eq!(balance(&buyer).await, 10_000);
    assert_eq!(order(&buyer, &id.to_string()).await["status"], "failed", "a failed order stays failed");
    assert_problem(&cancel(&buyer, &id.to_string()).await, 409, "order_not_cancellable");
    orders.close().await;
    payments.close().await;
    shop.assert_settled_and_conserved(SETTLE).await;
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_payment_down_available_mode_accepts_the_order_pending_and_settles_it_when_payment_is_back() {
    let shop = Shop::start(microservices("payment-down-available", "available", 500)).await;
    let (buyer, _) = shop.user(true).await;
    buyer.top_up(10_000, None).await.expect("top up");

    shop.kill(Service::Payment).await;
    let res = place(&buyer, tea(), None).await.expect("place");
    assert_eq!(res.status(), 201);
    let placed: Value = res.json().expect("json");
    assert_eq!(placed["status"], "pending");
    let id = placed["id"].as_str().expect("id");
    assert_eq!(order(&buyer, id).await["status"], "pending", "nobody can settle it while payment is down");
    assert_problem(&cancel(&buyer, id).await, 409, "order_not_cancellable");

    shop.start_again(Service::Payment).await;
    eventually_status(&buyer, id, "confirmed").await;
    assert_eq!(ledger_entries(&shop, "charge", id).await, 1);
    assert_eq!(balance(&buyer).await, 10_000 - TEA);
    shop.assert_settled_and_conserved(SETTLE).await;
    shop.stop().await;
}

/// `GET /v1/users/me`'s stats.
async fn stats(buyer: &UserClient) -> Value {
    me(buyer).await["stats"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_rabbitmq_unreachable_requests_succeed_and_every_event_is_applied_exactly_once_after_it_is_back() {
    let proxy = TcpProxy::start(&twinshop_testkit::amqp_address()).await;
    let amqp_url = twinshop_testkit::amqp_url_via(&proxy.addr().to_string());
    // Every service reaches RabbitMQ through the proxy (the launcher's own
    // cleanup of the run's queues does not).
    let mut microservices = plan(Build::Microservices, "rabbitmq-unreachable");
    for service in Build::Microservices.services() {
        microservices = microservices.env(*service, format!("{}AMQP_URL", service.env_prefix()), amqp_url.clone());
    }
    let shop = Shop::start(microservices).await;
    let buyers = [shop.user(true).await.0, shop.user(true).await.0];
    for buyer in &buyers {
        buyer.top_up(100_000, None).await.expect("top up");
    }

    // Every consumer is connected through the proxy: one round trip of
    // every event kind goes through before the cut.
    let warm_up: Value = place(&buyers[0], tea(), None).await.expect("place").json().expect("json");
    let warm_up = warm_up["id"].as_str().expect("id").to_owned();
    eventually("stats see the first order", SETTLE, || async {
        (stats(&buyers[0]).await["orders_confirmed"] == 1).then_some(())
    })
    .await;
    assert_eq!(cancel(&buyers[0], &warm_up).await.status(), 200);
    eventually_refunded(&buyers[0], &warm_up).await;

    proxy.cut();
    let mut placed: Vec<(usize, String, i64)> = Vec::new();
    for (n, product) in
        ["sku-coffee", "sku-mug", "sku-kettle", "sku-notebook", "sku-filter", "sku-chocolate"].iter().enumerate()
    {
        let buyer = n % buyers.len();
        let res = place(&buyers[buyer], json!([{"product_id": product, "quantity": 1}]), None).await.expect("place");
        assert_eq!(res.status(), 201, "placing needs no broker");
        let order: Value = res.json().expect("json");
        assert_eq!(order["status"], "confirmed");
        placed.push((
            buyer,
            order["id"].as_str().expect("id").to_owned(),
            order["total_cents"].as_i64().expect("total"),
        ));
    }
    let cancelled: Vec<(usize, String, i64)> = vec![placed[0].clone(), placed[3].clone()];
    for (buyer, id, _) in &cancelled {
        let res = cancel(&buyers[*buyer], id).await;
        assert_eq!(res.status(), 200, "cancelling needs no broker");
        let order: Value = res.json().expect("json");
        assert_eq!((order["status"].as_str(), order["refund_status"].as_str()), (Some("cancelled"), Some("pending")));
    }
    let order_db = shop.db(Service::Order).await;
    let unpublished = "SELECT count(*) FROM outbox WHERE published_at IS NULL";
    assert_eq!(
        count(&order_db, unpublished).await,
        (placed.len() + cancelled.len()) as i64,
        "every event waits in the outbox"
    );
    assert_eq!(stats(&buyers[0]).await["orders_confirmed"], 0, "nothing reached the user service");
    assert_eq!(balance(&buyers[0]).await, 100_000 - placed.iter().filter(|p| p.0 == 0).map(|p| p.2).sum::<i64>());

    proxy.restore();
    let is_cancelled = |id: &str| cancelled.iter().any(|c| c.1 == id);
    for (buyer, client) in buyers.iter().enumerate() {
        let kept: Vec<i64> = placed.iter().filter(|p| p.0 == buyer && !is_cancelled(&p.1)).map(|p| p.2).collect();
        let expected = json!({"orders_confirmed": kept.len(), "total_spent_cents": kept.iter().sum::<i64>()});
        eventually("stats count the kept orders", SETTLE, || async { (stats(client).await == expected).then_some(()) })
            .await;
    }
    for (buyer, id, _) in &cancelled {
        eventually_refunded(&buyers[*buyer], id).await;
    }
    let payment_db = shop.db(Service::Payment).await;
    for (buyer, client) in buyers.iter().enumerate() {
        let kept: i64 = placed.iter().filter(|p| p.0 == buyer && !is_cancelled(&p.1)).map(|p| p.2).sum();
        assert_eq!(balance(client).await, 100_000 - kept, "each refund given back once");
    }
    let refunds: Vec<(Option<Uuid>, i64)> =
        sqlx::query_as("SELECT order_id, count(*) FROM ledger_entries WHERE kind = 'refund' GROUP BY order_id")
            .fetch_all(&payment_db)
            .await
            .expect("refunds");
    let refunded: HashSet<String> = refunds
        .iter()
        .map(|(id, n)| {
            assert_eq!(*n, 1, "one refund per cancelled order");
            id.map(|id| id.to_string()).unwrap_or_default()
        })
        .collect();
    let expected: HashSet<String> = cancelled.iter().map(|c| c.1.clone()).chain([warm_up.clone()]).collect();
    assert_eq!(refunded, expected);
    eventually("every outbox is drained", SETTLE, || async {
        (count(&order_db, unpublished).await + count(&payment_db, unpublished).await == 0).then_some(())
    })
    .await;
    order_db.close().await;
    payment_db.close().await;
    shop.assert_settled_and_conserved(SETTLE).await;
    shop.stop().await;
    drop(proxy);
}

async fn eventually_refunded(buyer: &UserClient, id: &str) {
    eventually(&format!("order {id} is refunded"), SETTLE, || async {
        (order(buyer, id).await["refund_status"] == "refunded").then_some(())
    })
    .await;
}
