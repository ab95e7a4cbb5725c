//! The correctness check after a run, black-box through the public API
//! only, so it works against any build.
//!
//! Why it exists: a fast run that loses money is a failed run. For every
//! pool user it reads all orders and the whole ledger (following
//! `next_cursor`) and the wallet, waiting up to [`SETTLE_TIMEOUT`] for
//! eventually consistent effects (pending orders settling, refunds of
//! cancelled orders, voids of failed ones), then holds them to the
//! invariants in [`evaluate`]. Any violation fails the run, whatever its
//! speed.

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use futures_util::{StreamExt as _, stream};
use serde::{Deserialize, Serialize};
use twinshop_client::{Client, LedgerEntry, Order};

use crate::setup::{PoolUser, UserPool};

/// How long eventually consistent effects may take before they count as
/// missing (docs/api.md: 5 s under normal operation; twice that here).
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Users checked at once.
const CONCURRENCY: usize = 8;
/// Violations kept in the report (all are counted).
const MAX_LISTED: usize = 50;

/// What the invariants need of an order listed by `GET /v1/orders`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderView {
    pub id: String,
    pub status: String,
    pub total_cents: i64,
}

impl From<&Order> for OrderView {
    fn from(o: &Order) -> Self {
        Self { id: o.id.to_string(), status: o.status.as_str().to_owned(), total_cents: o.total_cents }
    }
}

/// What the invariants need of a ledger entry listed by `GET /v1/payments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryView {
    pub kind: String,
    pub amount_cents: i64,
    pub order_id: Option<String>,
}

impl From<&LedgerEntry> for EntryView {
    fn from(e: &LedgerEntry) -> Self {
        Self {
            kind: e.kind.as_str().to_owned(),
            amount_cents: e.amount_cents,
            order_id: e.order_id.map(|id| id.to_string()),
        }
    }
}

/// What the check found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub passed: bool,
    pub users_checked: usize,
    pub orders_checked: usize,
    pub ledger_entries: usize,
    /// Orders by final status.
    pub orders_by_status: BTreeMap<String, u64>,
    pub violation_count: usize,
    /// The first violations, one sentence each.
    pub violations: Vec<String>,
    pub seconds: f64,
}

/// What one user looks like through the API.
#[derive(Debug, Clone, Default)]
pub struct UserView {
    pub orders: Vec<OrderView>,
    pub ledger: Vec<EntryView>,
    pub balance_cents: i64,
}

/// Ledger entries of one kind and order.
fn entries<'a>(ledger: &'a [EntryView], kind: &str, order: &str) -> Vec<&'a EntryView> {
    ledger.iter().filter(|e| e.kind == kind && e.order_id.as_deref() == Some(order)).collect()
}

/// Whether the view still has effects that may legitimately be on their way.
pub fn unsettled(view: &UserView) -> bool {
    view.orders.iter().any(|o| match o.status.as_str() {
        "pending" => true,
        "cancelled" => entries(&view.ledger, "refund", &o.id).is_empty(),
        "failed" => entries(&view.ledger, "charge", &o.id).len() != entries(&view.ledger, "refund", &o.id).len(),
        _ => false,
    })
}

/// The invariants, for one user (`who` names them in messages):
/// - a `confirmed` order has exactly one charge of its total and no refund;
/// - a `cancelled` order has one charge and one refund, both of its total;
/// - a `rejected` order has no charge and no refund;
/// - a `failed` order has nothing, or one charge and one refund of its total;
/// - no order is `pending`;
/// - every ledger entry with an `order_id` belongs to one of the user's orders;
/// - top-ups in the ledger add up to what setup topped up;
/// - money is conserved: top-ups − charges + refunds = the wallet balance;
/// - every order the generator saw created is listed.
pub fn evaluate(who: &str, view: &UserView, topped_up: i64, seen: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let abs = |e: &&EntryView| e.amount_cents.abs();
    for o in &view.orders {
        let charges = entries(&view.ledger, "charge", &o.id);
        let refunds = entries(&view.ledger, "refund", &o.id);
        let (nc, nr) = (charges.len(), refunds.len());
        let all_of_total = charges.iter().chain(&refunds).all(|e| abs(e) == o.total_cents);
        let problem = match o.status.as_str() {
            "confirmed" if nc != 1 || nr != 0 => Some(format!("{nc} charge(s) and {nr} refund(s), expected 1 and 0")),
            "cancelled" if nc != 1 || nr != 1 => Some(format!("{nc} charge(s) and {nr} refund(s), expected 1 and 1")),
            "rejected" if nc + nr != 0 => Some(format!("{nc} charge(s) and {nr} refund(s), expected none")),
            "failed" if !(nc == nr && nc <= 1) => {
                Some(format!("{nc} charge(s) and {nr} refund(s), expected 0/0 or 1/1"))
            }
            "pending" => Some(format!("still pending after {} s", SETTLE_TIMEOUT.as_secs())),
            "confirmed" | "cancelled" | "rejected" | "failed" if !all_of_total => {
                Some(format!("an entry's amount differs from the total {}", o.total_cents))
            }
            "confirmed" | "cancelled" | "rejected" | "failed" => None,
            other => Some(format!("unknown status {other:?}")),
        };
        if let Some(p) = problem {
            out.push(format!("{who}: order {} ({}): {p}", o.id, o.status));
        }
    }
    let ids: HashSet<&str> = view.orders.iter().map(|o| o.id.as_str()).collect();
    for e in &view.ledger {
        if let Some(order) = e.order_id.as_deref().filter(|id| !ids.contains(id)) {
            out.push(format!(
                "{who}: a {} of {} names order {order}, which the user does not have",
                e.kind, e.amount_cents
            ));
        }
    }
    let sum = |kind: &str| view.ledger.iter().filter(|e| e.kind == kind).map(|e| e.amount_cents.abs()).sum::<i64>();
    let (top_ups, charges, refunds) = (sum("top_up"), sum("charge"), sum("refund"));
    if top_ups != topped_up {
        out.push(format!("{who}: the ledger's top-ups add up to {top_ups}, setup topped up {topped_up}"));
    }
    if top_ups - charges + refunds != view.balance_cents {
        out.push(format!(
            "{who}: money not conserved: top-ups {top_ups} − charges {charges} + refunds {refunds} = {}, balance is {}",
            top_ups - charges + refunds,
            view.balance_cents
        ));
    }
    for id in seen.iter().filter(|id| !ids.contains(id.as_str())) {
        out.push(format!("{who}: order {id} was created (201) but is not listed"));
    }
    out
}

/// [`check_pool`] up to three times, until it passes: after a run's last
/// step, effects still on their way (events being relayed and consumed)
/// get two more chances (each check already waits up to 10 s per user).
pub async fn check_pool_settled(target: &Client, pool: &UserPool) -> CheckReport {
    let mut report = check_pool(target, pool).await;
    for _ in 0..2 {
        if report.passed {
            break;
        }
        report = check_pool(target, pool).await;
    }
    report
}

/// Checks every user of the pool (see [`evaluate`]).
pub async fn check_pool(target: &Client, pool: &UserPool) -> CheckReport {
    let started = Instant::now();
    let results: Vec<(usize, Result<UserView>)> = stream::iter(pool.users.iter().enumerate())
        .map(|(i, user)| async move { (i, settled_view(target, user).await) })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut report = CheckReport { users_checked: pool.users.len(), ..CheckReport::default() };
    let mut violations = Vec::new();
    for (i, result) in results {
        let user = &pool.users[i];
        match result {
            Ok(view) => {
                report.orders_checked += view.orders.len();
                report.ledger_entries += view.ledger.len();
                for o in &view.orders {
                    *report.orders_by_status.entry(o.status.clone()).or_default() += 1;
                }
                let seen = user.orders().seen.clone();
                violations.extend(evaluate(&user.email, &view, user.topped_up_cents, &seen));
            }
            Err(e) => violations.push(format!("{}: could not be read: {e:#}", user.email)),
        }
    }
    report.violation_count = violations.len();
    report.passed = violations.is_empty();
    violations.truncate(MAX_LISTED);
    report.violations = violations;
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// Reads a user until nothing is on its way any more, or the settle timeout.
async fn settled_view(target: &Client, user: &PoolUser) -> Result<UserView> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let view = read_view(target, user).await?;
        if !unsettled(&view) || Instant::now() >= deadline {
            return Ok(view);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn read_view(target: &Client, user: &PoolUser) -> Result<UserView> {
    let api = target.as_user(&user.bearer);
    // Orders, then the ledger, then the wallet: an entry the ledger shows
    // is already in the balance read after it; one that lands between the
    // two reads belongs to an order that still looks unsettled (a refund
    // missing, a pending order), so the view is read again.
    let orders = api.all_orders().await.context("reading the orders")?;
    let ledger = api.all_payments().await.context("reading the ledger")?;
    let wallet = api.wallet().await.context("reading the wallet")?;
    Ok(UserView {
        orders: orders.iter().map(OrderView::from).collect(),
        ledger: ledger.iter().map(EntryView::from).collect(),
        balance_cents: wallet.balance_cents,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: &str, status: &str, total: i64) -> OrderView {
        OrderView { id: id.into(), status: status.into(), total_cents: total }
    }

    fn entry(kind: &str, amount: i64, order: Option<&str>) -> EntryView {
        EntryView { kind: kind.into(), amount_cents: amount, order_id: order.map(Into::into) }
    }

    /// A consistent user: 10 000 topped up; a confirmed order of 1000,
    /// a cancelled (refunded) one of 500, a rejected one, a failed one
    /// charged and voided.
    fn healthy() -> UserView {
        UserView {
            orders: vec![
                order("a", "confirmed", 1000),
                order("b", "cancelled", 500),
                order("c", "rejected", 99_999),
                order("d", "failed", 300),
            ],
            ledger: vec![
                entry("top_up", 10_000, None),
                entry("charge", 1000, Some("a")),
                entry("charge", 500, Some("b")),
                entry("refund", 500, Some("b")),
                entry("charge", 300, Some("d")),
                entry("refund", 300, Some("d")),
            ],
            balance_cents: 9_000,
        }
    }

    fn seen() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn a_consistent_user_passes() {
        assert_eq!(evaluate("u", &healthy(), 10_000, &seen()), Vec::<String>::new());
        assert!(!unsettled(&healthy()));
    }

    #[test]
    fn negative_amounts_are_read_as_magnitudes() {
        let mut view = healthy();
        for e in &mut view.ledger {
            if e.kind == "charge" {
                e.amount_cents = -e.amount_cents;
            }
        }
        assert_eq!(evaluate("u", &view, 10_000, &seen()), Vec::<String>::new());
    }

    #[test]
    fn a_double_charge_breaks_the_order_and_the_money() {
        let mut view = healthy();
        view.ledger.push(entry("charge", 1000, Some("a")));
        let v = evaluate("u", &view, 10_000, &seen());
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].contains("order a (confirmed): 2 charge(s)"), "{v:?}");
        assert!(v[1].contains("money not conserved"), "{v:?}");
    }

    #[test]
    fn a_charge_of_the_wrong_amount_is_reported() {
        let mut view = healthy();
        view.ledger[1].amount_cents = 900;
        view.balance_cents = 9_100;
        let v = evaluate("u", &view, 10_000, &seen());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("differs from the total 1000"), "{v:?}");
    }

    #[test]
    fn a_cancelled_order_without_refund_is_unsettled_then_a_violation() {
        let mut view = healthy();
        view.ledger.retain(|e| !(e.kind == "refund" && e.order_id.as_deref() == Some("b")));
        view.balance_cents = 8_500;
        assert!(unsettled(&view));
        let v = evaluate("u", &view, 10_000, &seen());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("order b (cancelled): 1 charge(s) and 0 refund(s)"), "{v:?}");
    }

    #[test]
    fn a_pending_order_a_charged_rejection_and_a_lost_order_are_reported() {
        let mut view = healthy();
        view.orders.push(order("e", "pending", 100));
        view.ledger.push(entry("charge", 99_999, Some("c")));
        view.balance_cents -= 99_999;
        let mut seen = seen();
        seen.push("zzz".into());
        assert!(unsettled(&view));
        let v = evaluate("u", &view, 10_000, &seen);
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(v.iter().any(|m| m.contains("order c (rejected)")), "{v:?}");
        assert!(v.iter().any(|m| m.contains("order e (pending): still pending")), "{v:?}");
        assert!(v.iter().any(|m| m.contains("order zzz was created (201) but is not listed")), "{v:?}");
    }

    #[test]
    fn a_charge_for_an_unknown_order_and_a_missing_top_up_are_reported() {
        let mut view = healthy();
        view.ledger.push(entry("charge", 10, Some("ghost")));
        view.balance_cents -= 10;
        let v = evaluate("u", &view, 20_000, &seen());
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].contains("names order ghost"), "{v:?}");
        assert!(v[1].contains("top-ups add up to 10000, setup topped up 20000"), "{v:?}");
    }
}
