//! The shop's scenarios as an engine [`Operation`]: each call picks a pool
//! user and a scenario from the mix and sends one request.
//!
//! Why it exists: this is the only module that knows what twinshop
//! traffic looks like. Endpoints are named by route template
//! (`"POST /v1/orders/{id}/cancel"`), never by concrete path, so the
//! per-endpoint histograms stay few and comparable across runs.
//!
//! What each scenario sends (a fallback keeps the request count honest
//! when the user has nothing to act on yet):
//! - **place**: `POST /v1/orders`, a fresh UUID Idempotency-Key, 1–3
//!   distinct catalog items with quantity 1–2; the answer's status is
//!   counted (`order.confirmed`, `.rejected`, `.pending`, and `.failed` for
//!   `503 payment_unavailable`);
//! - **browse**: `GET /v1/products`;
//! - **read**: `GET /v1/orders/{id}` of one of the user's orders, else `GET /v1/wallet`;
//! - **list**: `GET /v1/orders?limit=20` or `GET /v1/payments?limit=20`, half and half;
//! - **cancel**: `POST /v1/orders/{id}/cancel` of one of the user's
//!   confirmed orders (each is picked once), else `GET /v1/wallet`.
//!
//! With [`TraceSampling`], every n-th placed order also carries a sampled
//! `traceparent` (see `compare`'s trace map).
//!
//! Randomness comes from a small RNG seeded by `(seed, request number)`,
//! so a run's choices are reproducible up to what the server answers.
//!
//! Requests go through twinshop-client's raw layer (each pool user's
//! bearer header built once, the body read into one buffer): this is the
//! generator's hot path, so it decodes no more of an answer than it counts
//! (the status, a problem's `code`, a placed order's id and status).

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

use rand::{Rng as _, SeedableRng as _, rngs::SmallRng};
use serde::{Deserialize, Serialize};
use twinshop_client::{Client, Response, SendError};
use uuid::Uuid;

use crate::{
    engine::Operation,
    mix::{Mix, Scenario},
    setup::{PoolUser, Product, UserPool},
    stats::Outcome,
};

pub const PLACE: &str = "POST /v1/orders";
pub const BROWSE: &str = "GET /v1/products";
pub const READ: &str = "GET /v1/orders/{id}";
pub const WALLET: &str = "GET /v1/wallet";
pub const LIST_ORDERS: &str = "GET /v1/orders";
pub const LIST_PAYMENTS: &str = "GET /v1/payments";
pub const CANCEL: &str = "POST /v1/orders/{id}/cancel";

/// The scenario mix against one target, acting as the pool's users.
#[derive(Debug)]
pub struct Shop {
    pub target: Client,
    pub pool: Arc<UserPool>,
    pub catalog: Arc<Vec<Product>>,
    pub mix: Mix,
    pub seed: u64,
    /// Placed orders to trace, and what the generator saw of them.
    pub traces: Option<Arc<TraceSampling>>,
}

/// Every `every`-th placed order carries a W3C `traceparent` whose sampled
/// flag is set, so the services (with a parent-based sampler) record that
/// request end to end; the generator keeps its trace id and how long the
/// answer took on the wire, for the trace map's first stage.
#[derive(Debug)]
pub struct TraceSampling {
    every: u64,
    placed: AtomicU64,
    seen: Mutex<Vec<ClientTrace>>,
}

/// One traced request as the generator saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientTrace {
    pub trace_id: u128,
    /// From the send to the whole answer (not from the intended send time:
    /// the generator's own queueing is not the system's).
    pub latency_us: f64,
    /// The HTTP status, or 0 for no answer.
    pub status: u16,
}

impl TraceSampling {
    /// Traces one placed order in `every` (at least 1).
    pub fn every(every: u64) -> Self {
        Self { every: every.max(1), placed: AtomicU64::new(0), seen: Mutex::new(Vec::new()) }
    }

    fn pick(&self) -> bool {
        self.placed.fetch_add(1, Ordering::Relaxed).is_multiple_of(self.every)
    }

    fn record(&self, trace: ClientTrace) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(trace);
        }
    }

    /// The traced requests so far, taken.
    pub fn take(&self) -> Vec<ClientTrace> {
        self.seen.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
    }
}

/// `00-{trace id}-{span id}-01`: a sampled caller.
pub fn traceparent(trace_id: u128, span_id: u64) -> String {
    format!("00-{trace_id:032x}-{span_id:016x}-01")
}

#[derive(Serialize)]
struct Item<'a> {
    product_id: &'a str,
    quantity: u32,
}

#[derive(Serialize)]
struct PlaceBody<'a> {
    items: Vec<Item<'a>>,
}

#[derive(Deserialize)]
struct OrderAnswer {
    id: String,
    status: String,
}

fn outcome(endpoint: &'static str, reply: &Result<Response, SendError>) -> Outcome {
    match reply {
        Ok(r) => Outcome { endpoint, status: Ok(r.status().as_u16()), code: r.problem_code(), tag: None },
        Err(e) => Outcome { endpoint, status: Err(e.kind), code: None, tag: None },
    }
}

/// A well-mixed seed for request `i` (splitmix64 of `seed + i`).
fn request_seed(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Shop {
    async fn get(&self, user: &PoolUser, endpoint: &'static str, path: &str) -> Outcome {
        outcome(endpoint, &self.target.get(path).bearer(&user.bearer).send().await)
    }

    async fn place(&self, user: &PoolUser, rng: &mut SmallRng) -> Outcome {
        let count = rng.random_range(1..=3usize).min(self.catalog.len());
        let picked = rand::seq::index::sample(rng, self.catalog.len(), count);
        let items = picked
            .iter()
            .map(|p| Item { product_id: &self.catalog[p].id, quantity: rng.random_range(1..=2) })
            .collect();
        let key = Uuid::now_v7().to_string();
        let mut request = self.target.post("/v1/orders").bearer(&user.bearer).idempotency_key(Some(&key));
        // Never zero: an all-zero trace or span id is invalid.
        let traced = self.traces.as_ref().filter(|t| t.pick()).map(|t| (t, rng.random::<u128>() | 1));
        if let Some((_, trace_id)) = traced {
            request = request.header("traceparent", &traceparent(trace_id, rng.random::<u64>() | 1));
        }
        let sent = std::time::Instant::now();
        let reply = request.json(&PlaceBody { items }).send().await;
        if let Some((t, trace_id)) = traced {
            let status = reply.as_ref().map_or(0, |r| r.status().as_u16());
            t.record(ClientTrace { trace_id, latency_us: sent.elapsed().as_secs_f64() * 1e6, status });
        }
        let mut out = outcome(PLACE, &reply);
        if let Ok(r) = &reply {
            if r.status().as_u16() == 201 {
                if let Ok(order) = r.json::<OrderAnswer>() {
                    out.tag = match order.status.as_str() {
                        "confirmed" => Some("order.confirmed"),
                        "rejected" => Some("order.rejected"),
                        "pending" => Some("order.pending"),
                        "failed" => Some("order.failed"),
                        _ => Some("order.other"),
                    };
                    let mut orders = user.orders();
                    if order.status == "confirmed" {
                        orders.cancellable.push(order.id.clone());
                    }
                    orders.seen.push(order.id);
                }
            } else if out.code.as_deref() == Some("payment_unavailable") {
                out.tag = Some("order.failed");
            }
        }
        out
    }

    async fn read(&self, user: &PoolUser, rng: &mut SmallRng) -> Outcome {
        let id = {
            let orders = user.orders();
            (!orders.seen.is_empty()).then(|| orders.seen[rng.random_range(0..orders.seen.len())].clone())
        };
        match id {
            Some(id) => self.get(user, READ, &format!("/v1/orders/{id}")).await,
            None => self.get(user, WALLET, "/v1/wallet").await,
        }
    }

    async fn cancel(&self, user: &PoolUser, rng: &mut SmallRng) -> Outcome {
        let id = {
            let mut orders = user.orders();
            let n = orders.cancellable.len();
            (n > 0).then(|| orders.cancellable.swap_remove(rng.random_range(0..n)))
        };
        let Some(id) = id else { return self.get(user, WALLET, "/v1/wallet").await };
        let path = format!("/v1/orders/{id}/cancel");
        let reply = self.target.post(path).bearer(&user.bearer).send().await;
        let mut out = outcome(CANCEL, &reply);
        if out.status == Ok(200) {
            out.tag = Some("order.cancelled");
        }
        out
    }
}

impl Operation for Shop {
    async fn call(&self, i: u64) -> Outcome {
        let mut rng = SmallRng::seed_from_u64(request_seed(self.seed, i));
        let user = &self.pool.users[rng.random_range(0..self.pool.users.len())];
        match self.mix.pick(rng.random_range(0..self.mix.total().max(1))) {
            Scenario::Place => self.place(user, &mut rng).await,
            Scenario::Browse => outcome(BROWSE, &self.target.get("/v1/products").send().await),
            Scenario::Read => self.read(user, &mut rng).await,
            Scenario::List if rng.random_bool(0.5) => self.get(user, LIST_ORDERS, "/v1/orders?limit=20").await,
            Scenario::List => self.get(user, LIST_PAYMENTS, "/v1/payments?limit=20").await,
            Scenario::Cancel => self.cancel(user, &mut rng).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_seeds_differ_between_neighbouring_requests_and_repeat_for_the_same_one() {
        assert_eq!(request_seed(7, 1), request_seed(7, 1));
        assert_ne!(request_seed(7, 1), request_seed(7, 2));
        assert_ne!(request_seed(7, 1), request_seed(8, 1));
    }
}
