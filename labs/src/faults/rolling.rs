//! Two experiments on a build with two replicas of every process:
//!
//! - **Rolling restart**: every process replaced one at a time under a
//!   steady load, the way a Kubernetes rollout does it (the launcher takes
//!   the replica out of the edge and reloads nginx, waits for its in-flight
//!   requests, SIGTERMs it, starts the replacement, puts it back once
//!   ready). The claim: 0 failed requests.
//! - **A lease that follows its holder**: a placement is held in flight
//!   (the lab holds the shopper's wallet row lock, so the Charge waits),
//!   and the replica working on it is SIGKILLed, or SIGSTOPped and later
//!   resumed, while the client retries with the same key on the other
//!   replica. Killed: the retry gets the order's final answer within 2 s.
//!   Paused: the retry takes over, and the paused holder, resumed, adds no
//!   second effect (its writes are fenced by the key's generation).

use std::{collections::BTreeMap, path::Path, time::Duration};

use anyhow::{Context as _, Result, ensure};
use serde::Serialize;
use sqlx::{Connection as _, PgConnection};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use twinshop_client::{ApiError, Client, OrderItem, Product};
use twinshop_launcher::{Build, ExitInfo, ProcessId, Service, System, system::RolloutStep};
use uuid::Uuid;

use super::workload::{self, Attempt, History, Outcome, Workload};

/// What the rolling restart measured.
#[derive(Debug, Clone, Serialize)]
pub struct Rolling {
    /// `(process, seconds out of service)` per replaced replica.
    pub steps: Vec<(String, f64)>,
    pub took_s: f64,
    /// Requests sent while rolling, and those that failed.
    pub requests: usize,
    pub failed: usize,
    /// Failures by what came back.
    pub failures: Vec<(String, usize)>,
}

/// One replacement, on the workload history's clock.
#[derive(Debug, Clone, Serialize)]
pub struct Replaced {
    /// `user-1`, ...
    pub id: String,
    /// Seconds since the history began: out of the edge ...
    pub from: f64,
    /// ... and back in.
    pub to: f64,
    /// Spawning the new process until its `/readyz` answered 200.
    pub start_to_ready_s: f64,
    /// How the old one ended (`exit 0`, `signal 9`, ...).
    pub exit: String,
}

impl Replaced {
    /// `step` of process `id`, which ran from `from` to `to` on the history's clock.
    pub fn new(id: ProcessId, from: f64, to: f64, step: &RolloutStep) -> Self {
        Self {
            id: id.to_string(),
            from,
            to,
            start_to_ready_s: step.start_to_ready.as_secs_f64(),
            exit: step.exit.as_ref().map_or_else(|| "not running".into(), ExitInfo::reason),
        }
    }
}

/// Replaces every process of the build, one at a time (service after
/// service, replica after replica), by the binary of the same name in
/// `bin_dir` (`None`: the same binary) with the plan's environment, as a
/// Kubernetes rollout with `maxUnavailable: 0` does.
pub async fn replace_all(system: &System, bin_dir: Option<&Path>, history: &History) -> Result<Vec<Replaced>> {
    let mut out = Vec::new();
    for &service in system.build().services() {
        let ids: Vec<ProcessId> = system.processes().iter().map(|p| p.id).filter(|id| id.service == service).collect();
        for id in ids {
            let program = bin_dir.map(|d| d.join(service.binary()));
            let from = history.now();
            let step = system.replace(id, program).await.with_context(|| format!("replacing {id}"))?;
            out.push(Replaced::new(id, from, history.now(), &step));
        }
    }
    Ok(out)
}

/// The failed attempts among `attempts`, by what came back: no answer or
/// a 5xx. A business answer (insufficient funds is a 201; a 409 for a
/// cancellation of a cancelled order) is no failure of the system.
pub fn failures(attempts: &[Attempt]) -> BTreeMap<String, usize> {
    let mut failures = BTreeMap::new();
    for a in attempts.iter().filter(|a| failed(a)) {
        *failures.entry(a.outcome.label()).or_default() += 1;
    }
    failures
}

/// Whether an attempt is a failure of the system (see [`failures`]).
pub fn failed(a: &Attempt) -> bool {
    match &a.outcome {
        Outcome::Ok => false,
        Outcome::Http(status, _) => *status >= 500,
        Outcome::NoAnswer(_) => true,
    }
}

/// Replaces every process, one at a time, under load.
pub async fn rolling_restart(system: &System, wl: &Workload, rate: f64, seed: u64) -> Result<Rolling> {
    let stop = CancellationToken::new();
    let give_up = Instant::now() + Duration::from_secs(600);
    let before = wl.history.attempts().len();
    let driver = tokio::spawn(workload::drive(wl.clone(), rate, seed, stop.clone(), give_up));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let replaced = replace_all(system, None, &wl.history).await?;
    let steps = replaced.iter().map(|r| (r.id.clone(), r.to - r.from)).collect();
    let took_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    driver.await.context("the workload")?;
    let attempts = &wl.history.attempts()[before..];
    let failures = failures(attempts);
    let failed = failures.values().sum();
    Ok(Rolling { steps, took_s, requests: attempts.len(), failed, failures: failures.into_iter().collect() })
}

/// What one lease case showed.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseCase {
    /// `killed` or `paused`.
    pub case: &'static str,
    pub order_id: Option<Uuid>,
    /// From the holder's stop to the retry's definite answer.
    pub answered_after_s: f64,
    /// The retry's answer: `201 confirmed`, `503 payment_unavailable`, ...
    pub answer: String,
    /// The order's state once everything settled.
    pub final_status: String,
    /// Charges and refunds of the order in the ledger.
    pub charges: i64,
    pub refunds: i64,
    /// `order.confirmed` events written for the order.
    pub confirmed_events: i64,
    /// The key's generation at the end (2: taken over once).
    pub generation: i32,
    /// What the paused holder answered its own client once resumed.
    pub holder_answer: Option<String>,
}

fn answer_of<T>(r: &Result<T, ApiError>, status_of: impl Fn(&T) -> String) -> String {
    match r {
        Ok(v) => format!("201 {}", status_of(v)),
        Err(e) => match (e.status(), e.code()) {
            (Some(s), Some(c)) => format!("{} {c}", s.as_u16()),
            (Some(s), None) => s.as_u16().to_string(),
            _ => "no answer".into(),
        },
    }
}

/// `schema.` in the monolith's database.
fn schema(build: Build, name: &str) -> String {
    if build == Build::Monolith { format!("{name}.") } else { String::new() }
}

async fn db(system: &System, service: Service) -> Result<PgConnection> {
    let url = system.database_url(service).context("a database")?;
    PgConnection::connect(&url).await.context("connecting to the database")
}

/// Runs one case: `pause == false` kills the holder, `true` pauses it.
pub async fn lease_case(system: &System, shop: &Client, catalog: &[Product], pause: bool) -> Result<LeaseCase> {
    let build = system.build();
    let (order_svc, pay_svc) = match build {
        Build::Monolith => (Service::Monolith, Service::Monolith),
        Build::Microservices => (Service::Order, Service::Payment),
    };
    let (first, second) = (ProcessId::new(order_svc, 1), ProcessId::new(order_svc, 2));
    let replica = |id: ProcessId| -> Result<Client> {
        let p = system.process(id)?;
        Ok(shop.at(&format!("http://{}:{}", p.address, p.http_port))?)
    };
    let (holder, other) = (replica(first)?, replica(second)?);
    // A fresh shopper with money.
    let run = Uuid::now_v7().simple().to_string();
    let new = twinshop_client::NewUser {
        email: format!("lease-{run}@faults.example"),
        password: "correct horse battery staple".into(),
        name: "Lease".into(),
        address: Some(twinshop_client::Address {
            line1: "1 Lease Lane".into(),
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: "DE".into(),
        }),
    };
    let (user, session) = shop.sign_up(&new).await?;
    session.top_up(50_000, Some("lease-setup")).await?;
    let key = format!("lease-{run}");
    let items = vec![OrderItem::new(catalog[0].id.clone(), 1)];

    // Hold the wallet row: the placement's Charge waits on it.
    let mut pay = db(system, pay_svc).await?;
    let mut lock = pay.begin().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT 1 FROM {}wallets WHERE user_id = $1 FOR UPDATE",
        schema(build, "payments")
    )))
    .bind(user.id)
    .execute(&mut *lock)
    .await
    .context("locking the wallet")?;
    let holder_session = holder.as_user(session.bearer().clone());
    let (k, it) = (key.clone(), items.clone());
    let in_flight = tokio::spawn(async move { holder_session.place_order(&it, Some(&k)).await });
    // Until the holder recorded the order and its key (it is now charging).
    let mut orders = db(system, order_svc).await?;
    let idem = format!("{}idempotency", schema(build, "orders"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let order_id: Uuid = loop {
        let row: Option<Option<Uuid>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT resource_id FROM {idem} WHERE user_id = $1 AND key = $2"
        )))
        .bind(user.id)
        .bind(&key)
        .fetch_optional(&mut orders)
        .await?;
        if let Some(Some(id)) = row {
            break id;
        }
        ensure!(Instant::now() < deadline, "the placement never reached its charge");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    if pause {
        system.pause(first).await?
    } else {
        system.kill(first).await?
    }
    let stopped = Instant::now();
    lock.commit().await?;

    // The careful client retries with the same key, on the other replica.
    let retrier = other.as_user(session.bearer().clone());
    let answer = loop {
        let r = retrier.place_order(&items, Some(&key)).await;
        let definite = match &r {
            Ok(_) => true,
            Err(e) => {
                e.is_code("payment_unavailable")
                    || (e.status().is_some_and(|s| s.is_client_error()) && !e.is_code("idempotency_key_in_use"))
            }
        };
        if definite || stopped.elapsed() > Duration::from_secs(30) {
            break answer_of(&r, |o| format!("{:?}", o.status).to_lowercase());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let answered_after_s = stopped.elapsed().as_secs_f64();

    let holder_answer = if pause {
        tokio::time::sleep(Duration::from_millis(500)).await;
        system.resume(first).await?;
        let r = tokio::time::timeout(Duration::from_secs(30), in_flight).await;
        Some(match r {
            Ok(Ok(r)) => {
                let replayed = r.as_ref().map(|o| o.replayed).unwrap_or_else(ApiError::replayed);
                format!(
                    "{}{}",
                    answer_of(&r, |o| format!("{:?}", o.status).to_lowercase()),
                    if replayed { " (replayed)" } else { "" }
                )
            }
            _ => "no answer".into(),
        })
    } else {
        in_flight.abort();
        system.supervisor(first)?.wait_ready(Duration::from_secs(60)).await?;
        None
    };
    // Let the sweeper void what a failed order still owes.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, charges, refunds) = loop {
        let status: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT status FROM {}orders WHERE id = $1",
            schema(build, "orders")
        )))
        .bind(order_id)
        .fetch_one(&mut orders)
        .await?;
        let (charges, refunds): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FILTER (WHERE kind = 'charge'), count(*) FILTER (WHERE kind = 'refund') FROM {}ledger_entries WHERE order_id = $1",
            schema(build, "payments")
        )))
        .bind(order_id)
        .fetch_one(&mut pay)
        .await?;
        let settled = status != "pending" && (status == "confirmed" || charges == refunds);
        if settled || Instant::now() > deadline {
            break (status, charges, refunds);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let confirmed_events: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}outbox WHERE event_type = 'order.confirmed' AND body->'payload'->>'order_id' = $1",
        schema(build, "orders")
    )))
    .bind(order_id.to_string())
    .fetch_one(&mut orders)
    .await?;
    let generation: i32 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT generation FROM {idem} WHERE user_id = $1 AND key = $2"
    )))
    .bind(user.id)
    .bind(&key)
    .fetch_one(&mut orders)
    .await?;
    Ok(LeaseCase {
        case: if pause { "paused" } else { "killed" },
        order_id: Some(order_id),
        answered_after_s,
        answer,
        final_status: status,
        charges,
        refunds,
        confirmed_events,
        generation,
        holder_answer,
    })
}

/// Whether a lease case showed what it should: one effect, a final answer.
pub fn lease_held(c: &LeaseCase) -> bool {
    let one_effect = match c.final_status.as_str() {
        "confirmed" => c.charges == 1 && c.refunds == 0 && c.confirmed_events == 1,
        "failed" | "rejected" => c.charges == c.refunds && c.confirmed_events == 0,
        _ => false,
    };
    let answered = c.answer.starts_with("201") || c.answer.starts_with("503 payment_unavailable");
    one_effect && answered
}
