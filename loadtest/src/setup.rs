//! The unmeasured setup phase: a pool of registered, logged-in users with
//! an address and a funded wallet, and the catalog to order from.
//!
//! Why it exists: a measured run should place orders, not register users;
//! registration and login hash passwords with argon2 (deliberately slow),
//! so a pool of 100 takes seconds and must never be inside the measured
//! window. Setup runs with small, bounded concurrency (default 4) so it
//! does not trip the server's hashing limit or its request timeouts.
//!
//! The pool also remembers, per user, what the run did (top-ups, the
//! orders it saw created): the scenarios pick orders to read and cancel
//! from it, and the correctness check compares it with what the API says.

use std::{
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use anyhow::{Context as _, Result, ensure};
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use serde::{Deserialize, Serialize};
pub use twinshop_client::Product;
use twinshop_client::{Address, Bearer, Client, NewUser};
use uuid::Uuid;

/// The password of every pool user (10–128 characters).
const PASSWORD: &str = "loadtest password 0123";
/// The API's largest single top-up (API.md: 1 … 1,000,000 cents).
pub const MAX_TOP_UP_CENTS: i64 = 1_000_000;
/// Never top up more than this per user, whatever the estimate says.
pub const MAX_WALLET_CENTS: i64 = 10 * MAX_TOP_UP_CENTS;

/// `GET /v1/products`, read once before a run.
pub async fn fetch_catalog(target: &Client) -> Result<Vec<Product>> {
    let products = target.products().await?;
    ensure!(!products.is_empty(), "the catalog is empty: nothing to order");
    Ok(products)
}

/// How to build the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupConfig {
    pub users: usize,
    /// Topped up per user, in top-ups of at most 1,000,000 cents.
    pub wallet_cents: i64,
    /// Users set up at once.
    pub concurrency: usize,
}

/// Enough money per user for `expected_orders` orders of the mix's shape
/// (1–3 items, quantity 1–2), with a 50 % margin, between one top-up and
/// [`MAX_WALLET_CENTS`]. Running out is not an error (orders are then
/// `rejected`), but a run that mostly rejects measures the wrong thing.
pub fn wallet_budget(catalog: &[Product], expected_orders: f64) -> i64 {
    let mean_price = catalog.iter().map(|p| p.price_cents as f64).sum::<f64>() / catalog.len().max(1) as f64;
    // E[items] = 2, E[quantity] = 1.5.
    let mean_order = mean_price * 2.0 * 1.5;
    let budget = (expected_orders.max(0.0) * mean_order * 1.5).ceil();
    if budget.is_finite() { (budget as i64).clamp(MAX_TOP_UP_CENTS, MAX_WALLET_CENTS) } else { MAX_WALLET_CENTS }
}

/// What the run did as one user.
#[derive(Debug, Default)]
pub struct UserOrders {
    /// Every order the API answered 201 for, in the order they came.
    pub seen: Vec<String>,
    /// Orders answered `confirmed` and not yet picked for cancelling.
    pub cancellable: Vec<String>,
}

/// A registered, logged-in user with a funded wallet.
#[derive(Debug)]
pub struct PoolUser {
    pub email: String,
    /// The id registration answered.
    pub id: Uuid,
    /// `Authorization: Bearer <token>`, built once, sent with every request.
    pub bearer: Bearer,
    /// What setup topped up (the ledger must say the same).
    pub topped_up_cents: i64,
    orders: Mutex<UserOrders>,
}

impl PoolUser {
    /// The user's order bookkeeping (a short, uncontended lock).
    pub fn orders(&self) -> MutexGuard<'_, UserOrders> {
        self.orders.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The users a run acts as.
#[derive(Debug)]
pub struct UserPool {
    /// Unique per pool: part of every email.
    pub run_id: String,
    pub users: Vec<PoolUser>,
    /// How long setup took.
    pub setup_time: Duration,
    pub config: SetupConfig,
}

impl UserPool {
    /// Registers, logs in and funds `config.users` users with unique
    /// emails, `config.concurrency` at a time.
    pub async fn setup(target: &Client, config: SetupConfig) -> Result<Self> {
        ensure!(config.users > 0, "the pool needs at least one user");
        let started = std::time::Instant::now();
        let run_id = Uuid::now_v7().simple().to_string();
        let users = stream::iter(0..config.users)
            .map(|i| setup_user(target, &run_id, i, config.wallet_cents))
            .buffer_unordered(config.concurrency.max(1))
            .try_collect()
            .await?;
        Ok(Self { run_id, users, setup_time: started.elapsed(), config })
    }
}

async fn setup_user(target: &Client, run_id: &str, i: usize, wallet_cents: i64) -> Result<PoolUser> {
    let email = format!("loadtest.{run_id}.{i}@example.com");
    let address = Address {
        line1: "1 Load Street".to_owned(),
        city: "Berlin".to_owned(),
        postal_code: "10115".to_owned(),
        country: "DE".to_owned(),
    };
    let new = NewUser {
        email: email.clone(),
        password: PASSWORD.to_owned(),
        name: format!("Load User {i}"),
        address: Some(address),
    };
    let (registered, user) = target.sign_up(&new).await.with_context(|| format!("setting up {email}"))?;
    let mut remaining = wallet_cents;
    while remaining > 0 {
        let amount = remaining.min(MAX_TOP_UP_CENTS);
        user.top_up(amount, None).await.with_context(|| format!("topping up {email}"))?;
        remaining -= amount;
    }
    Ok(PoolUser {
        email,
        id: registered.id,
        bearer: user.bearer().clone(),
        topped_up_cents: wallet_cents.max(0),
        orders: Mutex::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(prices: &[i64]) -> Vec<Product> {
        prices
            .iter()
            .enumerate()
            .map(|(i, p)| Product { id: format!("p{i}"), name: format!("P{i}"), price_cents: *p })
            .collect()
    }

    #[test]
    fn the_wallet_budget_covers_the_expected_orders_with_a_margin() {
        // Mean price 1000 → mean order 3000 → 100 orders × 3000 × 1.5.
        assert_eq!(wallet_budget(&catalog(&[500, 1500]), 100.0), 450_000.max(MAX_TOP_UP_CENTS));
        assert_eq!(wallet_budget(&catalog(&[500, 1500]), 1_000.0), 4_500_000);
    }

    #[test]
    fn the_wallet_budget_stays_between_one_top_up_and_the_cap() {
        assert_eq!(wallet_budget(&catalog(&[1000]), 0.0), MAX_TOP_UP_CENTS);
        assert_eq!(wallet_budget(&catalog(&[1000]), 1e12), MAX_WALLET_CENTS);
        assert_eq!(wallet_budget(&[], 10.0), MAX_TOP_UP_CENTS);
    }
}
