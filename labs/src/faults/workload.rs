//! The fault lab's workload: a careful client at a steady rate, and the
//! history of everything it was told.
//!
//! Like Jepsen's clients, every operation and every attempt is recorded
//! client side, with the time it was sent and what came back. A careful
//! client (as docs/api.md asks) sends placements and top-ups with an
//! `Idempotency-Key` and, when an attempt gets no definite answer (no
//! answer at all, a 5xx other than `payment_unavailable`, or
//! `idempotency_key_in_use`), tries again with the same key until it gets
//! one; cancellations are retried the same way (they are idempotent);
//! reads are tried once. The checker later holds the system's state to
//! what this history says was acknowledged.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use rand::{Rng as _, SeedableRng as _, rngs::SmallRng};
use serde::Serialize;
use tokio::time::Instant;
use twinshop_client::{Address, ApiError, Client, NewUser, OrderItem, OrderStatus, Product, StatusCode, UserClient};
use uuid::Uuid;

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Place,
    Cancel,
    TopUp,
    Read,
}

/// What one attempt (one HTTP request) got.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Outcome {
    /// A 2xx.
    Ok,
    /// An error answer: its status and problem code.
    Http(u16, String),
    /// No answer: `timeout` or `transport`.
    NoAnswer(&'static str),
}

impl Outcome {
    /// A short label for charts: `ok`, `503 dependency_unavailable`, `timeout`.
    pub fn label(&self) -> String {
        match self {
            Self::Ok => "ok".into(),
            Self::Http(status, code) => format!("{status} {code}"),
            Self::NoAnswer(kind) => (*kind).into(),
        }
    }
}

/// One attempt, as the client saw it.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub kind: OpKind,
    /// Seconds since the history began, when it was sent.
    pub at: f64,
    pub latency_ms: f64,
    pub outcome: Outcome,
    /// For no answer: the request and what the transport said (the whole
    /// error chain), which alone explains a failure no resend covered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// How an operation ended, from the client's side.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Acked {
    /// `201` for a placement: the order and its status then.
    Placed { order_id: Uuid, status: OrderStatus, total_cents: i64 },
    /// `503 payment_unavailable` (strict mode): the order failed, nothing charged.
    PaymentUnavailable,
    /// `201` for a top-up.
    ToppedUp { top_up_id: Uuid, amount_cents: i64 },
    /// `200` for a cancellation.
    Cancelled { order_id: Uuid, total_cents: i64 },
    /// A definite refusal (a 4xx), e.g. a cancellation of an order not
    /// cancellable.
    Refused { status: u16, code: String },
    /// A read answered.
    Read,
    /// A read that got no definite answer (reads are not retried).
    ReadFailed,
    /// No definite answer before the client gave up.
    Unresolved,
}

/// One operation: its user, key, timing, attempts and end.
#[derive(Debug, Clone, Serialize)]
pub struct Operation {
    pub kind: OpKind,
    pub user: usize,
    pub key: Option<String>,
    pub started: f64,
    pub ended: f64,
    pub attempts: u32,
    pub acked: Acked,
}

/// Everything the client was told.
#[derive(Debug)]
pub struct History {
    pub epoch: Instant,
    attempts: Mutex<Vec<Attempt>>,
    operations: Mutex<Vec<Operation>>,
}

impl History {
    pub fn new() -> Self {
        Self { epoch: Instant::now(), attempts: Mutex::default(), operations: Mutex::default() }
    }

    /// Seconds since the history began.
    pub fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    fn attempt(&self, attempt: Attempt) {
        self.attempts.lock().unwrap_or_else(PoisonError::into_inner).push(attempt);
    }

    fn operation(&self, op: Operation) {
        self.operations.lock().unwrap_or_else(PoisonError::into_inner).push(op);
    }

    pub fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn operations(&self) -> Vec<Operation> {
        self.operations.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

/// A shopper: an account, its token, and the orders it knows confirmed.
#[derive(Debug)]
pub struct Shopper {
    pub id: Uuid,
    pub client: UserClient,
    /// What the setup topped up (acknowledged), and that top-up's id.
    pub initial_cents: i64,
    pub setup_top_up: Uuid,
    confirmed: Mutex<Vec<(Uuid, i64)>>,
}

/// Creates `n` shoppers with an address and `initial_cents` each.
pub async fn shoppers(client: &Client, n: usize, initial_cents: i64, run: &str) -> anyhow::Result<Vec<Arc<Shopper>>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let new = NewUser {
            email: format!("shopper{i}-{run}@faults.example"),
            password: "correct horse battery staple".into(),
            name: format!("Shopper {i}"),
            address: Some(Address {
                line1: format!("{i} Fault Lane"),
                city: "Berlin".into(),
                postal_code: "10115".into(),
                country: "DE".into(),
            }),
        };
        let (user, session) = client.sign_up(&new).await?;
        let top_up = session.top_up(initial_cents, Some(&format!("setup-{i}"))).await?;
        out.push(Arc::new(Shopper {
            id: user.id,
            client: session,
            initial_cents,
            setup_top_up: top_up.id,
            confirmed: Mutex::default(),
        }));
    }
    Ok(out)
}

/// The careful client's rule: try again (with the same key) when the answer
/// says nothing definite about the request.
fn worth_retrying(err: &ApiError) -> bool {
    if err.transport().is_some() {
        return true;
    }
    match err.status() {
        Some(StatusCode::CONFLICT) => err.is_code("idempotency_key_in_use"),
        Some(s) if s.is_server_error() => !err.is_code("payment_unavailable"),
        _ => false,
    }
}

/// The transport's own account of a request that got no answer.
fn detail_of<T>(result: &Result<T, ApiError>) -> Option<String> {
    match result {
        Err(err) if err.transport().is_some() => Some(err.to_string()),
        _ => None,
    }
}

fn outcome_of<T>(result: &Result<T, ApiError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(err) => match (err.transport(), err.status()) {
            (Some(t), _) => Outcome::NoAnswer(if t.as_str() == "timeout" { "timeout" } else { "transport" }),
            (None, Some(status)) => Outcome::Http(status.as_u16(), err.code().unwrap_or("-").to_owned()),
            (None, None) => Outcome::NoAnswer("transport"),
        },
    }
}

/// Runs `attempt` until it gives a definite answer or `give_up` passes,
/// recording every attempt.
async fn careful<T, F, Fut>(
    history: &History,
    kind: OpKind,
    give_up: Instant,
    mut attempt: F,
) -> (Result<T, ApiError>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut tries = 0u32;
    let mut wait = Duration::from_millis(100);
    loop {
        tries += 1;
        let at = history.now();
        let sent = Instant::now();
        let result = attempt().await;
        history.attempt(Attempt {
            kind,
            at,
            latency_ms: sent.elapsed().as_secs_f64() * 1e3,
            outcome: outcome_of(&result),
            detail: detail_of(&result),
        });
        match &result {
            Err(err) if worth_retrying(err) && Instant::now() + wait < give_up => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
            _ => return (result, tries),
        }
    }
}

/// The operation mix and the shop it runs against.
#[derive(Debug, Clone)]
pub struct Workload {
    pub shoppers: Vec<Arc<Shopper>>,
    pub catalog: Arc<Vec<Product>>,
    pub history: Arc<History>,
}

impl Workload {
    /// One operation by a random shopper, chosen by `seed`: 40 % place,
    /// 15 % cancel, 15 % top up, 30 % read. Keyed operations are retried
    /// until `give_up`.
    pub async fn one(&self, seed: u64, give_up: Instant) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let user = rng.random_range(0..self.shoppers.len());
        let shopper = self.shoppers[user].clone();
        let started = self.history.now();
        let roll = rng.random_range(0..100);
        let (kind, key, (acked, attempts)) = if roll < 40 {
            let key = Uuid::now_v7().to_string();
            let items = self.items(&mut rng);
            (OpKind::Place, Some(key.clone()), self.place(&shopper, &items, &key, give_up).await)
        } else if roll < 55 {
            (OpKind::Cancel, None, self.cancel(&shopper, give_up).await)
        } else if roll < 70 {
            let key = Uuid::now_v7().to_string();
            let amount = rng.random_range(5..=20) * 1_000;
            (OpKind::TopUp, Some(key.clone()), self.top_up(&shopper, amount, &key, give_up).await)
        } else {
            let wallet = rng.random_bool(0.5);
            (OpKind::Read, None, self.read(&shopper, wallet).await)
        };
        let ended = self.history.now();
        self.history.operation(Operation { kind, user, key, started, ended, attempts, acked });
    }

    fn items(&self, rng: &mut SmallRng) -> Vec<OrderItem> {
        let n = rng.random_range(1..=3).min(self.catalog.len());
        let mut picked: Vec<&Product> = Vec::with_capacity(n);
        while picked.len() < n {
            let p = &self.catalog[rng.random_range(0..self.catalog.len())];
            if !picked.iter().any(|q| q.id == p.id) {
                picked.push(p);
            }
        }
        picked.into_iter().map(|p| OrderItem::new(p.id.clone(), rng.random_range(1..=2))).collect()
    }

    /// Places an order with `key`, retrying with the same key.
    pub async fn place(&self, shopper: &Shopper, items: &[OrderItem], key: &str, give_up: Instant) -> (Acked, u32) {
        let (result, tries) =
            careful(&self.history, OpKind::Place, give_up, || shopper.client.place_order(items, Some(key))).await;
        let acked = match result {
            Ok(order) => {
                if order.status == OrderStatus::Confirmed {
                    shopper
                        .confirmed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((order.id, order.total_cents));
                }
                Acked::Placed { order_id: order.id, status: order.status, total_cents: order.total_cents }
            }
            Err(err) if err.is_code("payment_unavailable") => Acked::PaymentUnavailable,
            Err(err) => definite_or_unresolved(&err),
        };
        (acked, tries)
    }

    async fn cancel(&self, shopper: &Shopper, give_up: Instant) -> (Acked, u32) {
        let target = {
            let mut confirmed = shopper.confirmed.lock().unwrap_or_else(PoisonError::into_inner);
            (!confirmed.is_empty()).then(|| confirmed.swap_remove(0))
        };
        let Some((order_id, total_cents)) = target else {
            return self.read(shopper, true).await;
        };
        let (result, tries) = careful(&self.history, OpKind::Cancel, give_up, || shopper.client.cancel(order_id)).await;
        let acked = match result {
            Ok(order) if order.status == OrderStatus::Cancelled => Acked::Cancelled { order_id, total_cents },
            Ok(_) => Acked::Refused { status: 200, code: "not_cancelled".into() },
            Err(err) => definite_or_unresolved(&err),
        };
        (acked, tries)
    }

    async fn top_up(&self, shopper: &Shopper, amount: i64, key: &str, give_up: Instant) -> (Acked, u32) {
        let (result, tries) =
            careful(&self.history, OpKind::TopUp, give_up, || shopper.client.top_up(amount, Some(key))).await;
        let acked = match result {
            Ok(top_up) => Acked::ToppedUp { top_up_id: top_up.id, amount_cents: top_up.amount_cents },
            Err(err) => definite_or_unresolved(&err),
        };
        (acked, tries)
    }

    async fn read(&self, shopper: &Shopper, wallet: bool) -> (Acked, u32) {
        let at = self.history.now();
        let sent = Instant::now();
        let known = shopper.confirmed.lock().unwrap_or_else(PoisonError::into_inner).first().map(|o| o.0);
        let (outcome, detail) = match known.filter(|_| !wallet) {
            Some(id) => {
                let result = shopper.client.order(id).await;
                (outcome_of(&result), detail_of(&result))
            }
            None => {
                let result = shopper.client.wallet().await;
                (outcome_of(&result), detail_of(&result))
            }
        };
        let ok = outcome == Outcome::Ok;
        let latency_ms = sent.elapsed().as_secs_f64() * 1e3;
        self.history.attempt(Attempt { kind: OpKind::Read, at, latency_ms, outcome, detail });
        (if ok { Acked::Read } else { Acked::ReadFailed }, 1)
    }
}

fn definite_or_unresolved(err: &ApiError) -> Acked {
    match err.status() {
        Some(status) if !worth_retrying(err) => {
            Acked::Refused { status: status.as_u16(), code: err.code().unwrap_or("-").to_owned() }
        }
        _ => Acked::Unresolved,
    }
}

/// Drives the workload at `rate` operations per second until `stop` is
/// cancelled; every operation is awaited before it returns (each retried
/// until `give_up`).
pub async fn drive(
    workload: Workload,
    rate: f64,
    seed: u64,
    stop: tokio_util::sync::CancellationToken,
    give_up: Instant,
) {
    let mut tasks = tokio::task::JoinSet::new();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n = 0u64;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        n += 1;
        let w = workload.clone();
        tasks.spawn(async move { w.one(seed.wrapping_mul(1_000_003).wrapping_add(n), give_up).await });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}
