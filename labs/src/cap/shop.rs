//! The shop's own choice (seed 4.1): order ↔ payment cut under a steady
//! workload, once in `strict` mode and once in `available` mode.
//!
//! Strict keeps consistency: a placement that cannot reach payment fails at
//! once (`503 payment_unavailable`), the client knows the outcome, and a
//! void makes sure nothing stays charged. Available keeps answering: the
//! order is accepted `pending`, its outcome unknown to the client until the
//! sweeper settles it after the heal. The fault lab's checker holds both
//! runs to the same invariants once everything has settled.

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, Result};
use serde::Serialize;
use sqlx::{Connection as _, PgConnection};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use twinshop_client::{Client, OrderStatus};
use twinshop_launcher::{LogTarget, Plan, Service, System};

use crate::{
    common::{LabArgs, say},
    faults::{
        checker::{self, Expected, Finding},
        snapshot,
        workload::{self, Acked, Attempt, History, OpKind, Operation, Workload},
    },
};

/// One mode's run.
#[derive(Debug, Clone, Serialize)]
pub struct ModeRun {
    pub mode: &'static str,
    /// The partition, in seconds of the history.
    pub cut: (f64, f64),
    pub operations: Vec<Operation>,
    pub attempts: Vec<Attempt>,
    /// Placements sent during the partition, by first answer.
    pub during: Vec<(String, usize)>,
    /// Orders the client was told were `pending`.
    pub pending_acked: usize,
    /// Seconds each order the client was told was pending stayed pending
    /// (from its creation until the sweeper settled it).
    pub staleness: Vec<f64>,
    /// Seconds from the heal until no order was pending and no void owed.
    pub converged_s: Option<f64>,
    pub findings: Vec<Finding>,
}

async fn unsettled(conn: &mut PgConnection) -> Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'pending' OR void_status = 'owed'")
        .fetch_one(conn)
        .await
        .context("counting unsettled orders")
}

/// Runs one mode.
pub async fn run_mode(mode: &'static str, args: &LabArgs) -> Result<ModeRun> {
    let logs = args.out.join("logs").join(format!("shop-{mode}"));
    let _ = std::fs::remove_dir_all(&logs);
    let plan = Plan::microservices()
        .bin_dir(&args.bin_dir)
        .namespaces(true)
        .logs(LogTarget::Dir(logs))
        .env(Service::Order, "ORDER_CONSISTENCY_MODE", mode)
        .env(Service::Order, "ORDER_SWEEP_INTERVAL_MS", "500");
    let system = System::start(plan).await.context("starting the microservices")?;
    let result = experiment(&system, mode, args).await;
    system.stop().await.context("stopping")?;
    result
}

async fn experiment(system: &System, mode: &'static str, args: &LabArgs) -> Result<ModeRun> {
    let client = Client::builder().timeout(Duration::from_secs(5)).build(&system.url().context("no edge")?)?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let mut shoppers = workload::shoppers(&client, 10, 100_000, &format!("{run}r")).await?;
    shoppers.extend(workload::shoppers(&client, 2, 1_500, &format!("{run}p")).await?);
    let history = Arc::new(History::new());
    let wl =
        Workload { shoppers: shoppers.clone(), catalog: Arc::new(client.products().await?), history: history.clone() };
    let stop = CancellationToken::new();
    let driver = tokio::spawn(workload::drive(
        wl,
        if args.quick { 12.0 } else { 20.0 },
        args.seed,
        stop.clone(),
        Instant::now() + Duration::from_secs(300),
    ));
    tokio::time::sleep(Duration::from_secs(if args.quick { 3 } else { 6 })).await;
    say(&format!("  {mode}: cutting order ↔ payment"));
    let cut_from = history.now();
    system.partition_services(Service::Order, Service::Payment).await?;
    tokio::time::sleep(Duration::from_secs(if args.quick { 8 } else { 20 })).await;
    system.heal_services(Service::Order, Service::Payment).await?;
    let cut_to = history.now();
    let healed = Instant::now();
    // Until nothing is pending and no void owed (the sweeper's work).
    let mut conn = PgConnection::connect(&system.database_url(Service::Order).context("order database")?).await?;
    let mut converged_s = None;
    tokio::time::sleep(Duration::from_secs(if args.quick { 3 } else { 6 })).await;
    stop.cancel();
    driver.await.context("the workload")?;
    while healed.elapsed() < Duration::from_secs(90) {
        if unsettled(&mut conn).await? == 0 {
            converged_s = Some(healed.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The careful client reads each order it was told was pending until it
    // is settled: how long its outcome stayed unknown, and what it was.
    let mut operations = history.operations();
    let mut staleness = Vec::new();
    for op in operations.iter_mut() {
        let Acked::Placed { order_id, status: OrderStatus::Pending, total_cents } = op.acked.clone() else { continue };
        let shopper = &shoppers[op.user];
        let order = shopper.client.order(order_id).await?;
        // Settled by now (converged): the read is the client's final
        // knowledge; the order was pending from its creation until the
        // settling transition stamped it.
        staleness.push((order.updated_at - order.created_at).as_seconds_f64());
        op.acked = Acked::Placed { order_id, status: order.status, total_cents };
    }
    let pending_acked = staleness.len();
    let users: Vec<(uuid::Uuid, uuid::Uuid, i64)> =
        shoppers.iter().map(|s| (s.id, s.setup_top_up, s.initial_cents)).collect();
    let expected = Expected::from_history(&users, &operations);
    let amqp = system.plan().backing.amqp.clone();
    let snap = snapshot::read(system, &shoppers, Some(&amqp)).await?;
    let findings = checker::check(&snap, &expected);
    let attempts = history.attempts();
    let mut during = std::collections::BTreeMap::new();
    for a in attempts.iter().filter(|a| a.kind == OpKind::Place && a.at >= cut_from && a.at < cut_to) {
        let label = a.outcome.label();
        *during.entry(label).or_default() += 1usize;
    }
    Ok(ModeRun {
        mode,
        cut: (cut_from, cut_to),
        operations,
        attempts,
        during: during.into_iter().collect(),
        pending_acked,
        staleness,
        converged_s,
        findings,
    })
}
