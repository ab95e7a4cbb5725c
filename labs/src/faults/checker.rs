//! The checker: holds the system's final state to what the client's
//! history says was acknowledged, invariant by invariant (docs/design.md
//! §6), like Jepsen's bank checker.
//!
//! It is a pure function of a [`Snapshot`] (read from the databases and the
//! broker after the last heal and a settle period) and an [`Expected`]
//! (derived from the history), so its self-test can corrupt a copy of a
//! real snapshot in each way an invariant forbids and show that each
//! corruption is caught ([`corruptions`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use uuid::Uuid;

use super::workload::{Acked, OpKind, Operation};

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: String,
    pub total_cents: i64,
    pub refund_status: Option<String>,
}

/// A ledger entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: String,
    pub amount_cents: i64,
    pub order_id: Option<Uuid>,
}

/// The system's state at the end of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub orders: Vec<OrderRow>,
    pub ledger: Vec<LedgerRow>,
    pub balances: HashMap<Uuid, i64>,
    /// `(orders_confirmed, total_spent_cents)` per user, as `GET /v1/users/me` shows it.
    pub stats: HashMap<Uuid, (i64, i64)>,
    /// Unpublished outbox rows, by area.
    pub outbox_waiting: BTreeMap<String, i64>,
    /// Dead letters (broker dead-letter queues; dead-lettered outbox rows in
    /// the monolith), by where they are.
    pub dead_letters: BTreeMap<String, i64>,
}

/// What the history says the state must show.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Expected {
    pub users: Vec<Uuid>,
    /// Orders acknowledged `confirmed` (by a 201).
    pub confirmed: HashSet<Uuid>,
    /// Orders acknowledged `cancelled` (by a 200).
    pub cancelled: HashSet<Uuid>,
    /// Top-ups acknowledged, by id: `(user, amount)` (the setup's too).
    pub top_ups: HashMap<Uuid, (Uuid, i64)>,
    /// The balance the acknowledgements imply, per user.
    pub balances: HashMap<Uuid, i64>,
    /// Keyed operations that never got a definite answer.
    pub unresolved: usize,
}

impl Expected {
    /// From the history's operations; `users[i]` is shopper `i` with its
    /// acknowledged setup top-up `(id, amount)`.
    pub fn from_history(users: &[(Uuid, Uuid, i64)], ops: &[Operation]) -> Self {
        let mut e = Self { users: users.iter().map(|u| u.0).collect(), ..Self::default() };
        for (user, top_up, amount) in users {
            e.top_ups.insert(*top_up, (*user, *amount));
            *e.balances.entry(*user).or_default() += amount;
        }
        for op in ops {
            let user = users[op.user].0;
            match &op.acked {
                Acked::Placed { order_id, status: twinshop_client::OrderStatus::Confirmed, total_cents } => {
                    e.confirmed.insert(*order_id);
                    *e.balances.entry(user).or_default() -= total_cents;
                }
                Acked::Cancelled { order_id, total_cents } => {
                    e.cancelled.insert(*order_id);
                    *e.balances.entry(user).or_default() += total_cents;
                }
                Acked::ToppedUp { top_up_id, amount_cents } => {
                    e.top_ups.insert(*top_up_id, (user, *amount_cents));
                    *e.balances.entry(user).or_default() += amount_cents;
                }
                Acked::Unresolved if op.kind != OpKind::Read => e.unresolved += 1,
                _ => {}
            }
        }
        e
    }
}

/// One invariant and every way the state broke it.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub invariant: &'static str,
    pub violations: Vec<String>,
}

/// The invariants, in the order the report lists them.
pub const INVARIANTS: [&str; 11] = [
    "every operation got a definite answer",
    "every order acknowledged confirmed is confirmed or cancelled",
    "exactly one charge per confirmed or cancelled order",
    "no charge left standing for a rejected or failed order",
    "one refund per cancelled order, and it shows refunded",
    "every acknowledged top-up applied exactly once, and no other",
    "balance = top-ups - charges + refunds, never negative",
    "each balance is what the acknowledgements imply",
    "no order is left pending",
    "stats equal the confirmed orders",
    "outboxes drained, nothing dead-lettered",
];

/// Every invariant with its violations (empty: it held). At most a few
/// examples are listed per invariant, with the total.
pub fn check(s: &Snapshot, e: &Expected) -> Vec<Finding> {
    let mut v: Vec<Vec<String>> = vec![Vec::new(); INVARIANTS.len()];
    if e.unresolved > 0 {
        v[0].push(format!("{} keyed operations never got a definite answer", e.unresolved));
    }
    let orders: HashMap<Uuid, &OrderRow> = s.orders.iter().map(|o| (o.id, o)).collect();
    let mut per_order: HashMap<(Uuid, &str), i64> = HashMap::new();
    let mut top_up_seen: HashMap<Uuid, usize> = HashMap::new();
    let mut ledger_sum: HashMap<Uuid, i64> = HashMap::new();
    for entry in &s.ledger {
        if let Some(order) = entry.order_id {
            *per_order.entry((order, entry.kind.as_str())).or_default() += 1;
        }
        let sign = if entry.kind == "charge" { -1 } else { 1 };
        *ledger_sum.entry(entry.user_id).or_default() += sign * entry.amount_cents;
        if entry.kind == "top_up" {
            *top_up_seen.entry(entry.id).or_default() += 1;
        }
    }
    let count = |order: Uuid, kind: &str| per_order.get(&(order, kind)).copied().unwrap_or(0);
    for id in &e.confirmed {
        match orders.get(id) {
            Some(o) if o.status == "confirmed" || o.status == "cancelled" => {}
            Some(o) => v[1].push(format!("order {id} was acknowledged confirmed and is {}", o.status)),
            None => v[1].push(format!("order {id} was acknowledged confirmed and is gone")),
        }
    }
    for o in &s.orders {
        let (charges, refunds) = (count(o.id, "charge"), count(o.id, "refund"));
        match o.status.as_str() {
            "confirmed" | "cancelled" if charges != 1 => {
                v[2].push(format!("order {} is {} with {charges} charges", o.id, o.status));
            }
            "rejected" | "failed" if charges != refunds => {
                v[3].push(format!("order {} is {} with {charges} charges and {refunds} refunds", o.id, o.status));
            }
            "cancelled" if refunds != 1 || o.refund_status.as_deref() != Some("refunded") => v[4].push(format!(
                "order {} is cancelled with {refunds} refunds, refund status {:?}",
                o.id, o.refund_status
            )),
            "confirmed" if refunds != 0 => v[4].push(format!("order {} is confirmed but was refunded", o.id)),
            "pending" => v[8].push(format!("order {} is still pending", o.id)),
            _ => {}
        }
    }
    for id in &e.cancelled {
        if orders.get(id).is_none_or(|o| o.status != "cancelled") {
            v[4].push(format!("order {id} was acknowledged cancelled and is not"));
        }
    }
    for (id, (user, amount)) in &e.top_ups {
        match top_up_seen.get(id) {
            Some(1) => {}
            Some(n) => v[5].push(format!("top-up {id} ({amount} for {user}) applied {n} times")),
            None => v[5].push(format!("top-up {id} ({amount} for {user}) was acknowledged and is not in the ledger")),
        }
    }
    if e.unresolved == 0 {
        for (id, n) in &top_up_seen {
            if !e.top_ups.contains_key(id) {
                v[5].push(format!("top-up {id} ({n}×) in the ledger was never acknowledged"));
            }
        }
    }
    for user in &e.users {
        let balance = s.balances.get(user).copied().unwrap_or(0);
        let ledger = ledger_sum.get(user).copied().unwrap_or(0);
        if balance != ledger || balance < 0 {
            v[6].push(format!("user {user}: balance {balance}, ledger says {ledger}"));
        }
        let expected = e.balances.get(user).copied().unwrap_or(0);
        if e.unresolved == 0 && balance != expected {
            v[7].push(format!("user {user}: balance {balance}, the acknowledgements imply {expected}"));
        }
        let confirmed: Vec<&OrderRow> =
            s.orders.iter().filter(|o| o.user_id == *user && o.status == "confirmed").collect();
        let want = (confirmed.len() as i64, confirmed.iter().map(|o| o.total_cents).sum::<i64>());
        let got = s.stats.get(user).copied().unwrap_or((0, 0));
        if got != want {
            v[9].push(format!("user {user}: stats {got:?}, confirmed orders {want:?}"));
        }
    }
    for (area, n) in s.outbox_waiting.iter().filter(|(_, n)| **n > 0) {
        v[10].push(format!("{n} events still waiting in the {area} outbox"));
    }
    for (place, n) in s.dead_letters.iter().filter(|(_, n)| **n > 0) {
        v[10].push(format!("{n} dead letters in {place}"));
    }
    INVARIANTS
        .iter()
        .zip(v)
        .map(|(invariant, mut violations)| {
            let total = violations.len();
            violations.truncate(5);
            if total > 5 {
                violations.push(format!("… {total} in all"));
            }
            Finding { invariant, violations }
        })
        .collect()
}

/// A corruption of a copy of the data, and the invariant that must catch it.
pub struct Corruption {
    pub name: &'static str,
    pub caught_by: &'static str,
    pub apply: fn(&mut Snapshot, &mut Expected) -> bool,
}

impl std::fmt::Debug for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Corruption").field("name", &self.name).finish()
    }
}

fn first_with<'a>(s: &'a mut Snapshot, status: &str) -> Option<&'a mut OrderRow> {
    s.orders.iter_mut().find(|o| o.status == status)
}

fn charge_of(s: &Snapshot, order: Uuid) -> Option<LedgerRow> {
    s.ledger.iter().find(|l| l.order_id == Some(order) && l.kind == "charge").cloned()
}

/// Every way the self-test corrupts the data. Each returns `false` when the
/// data has nothing to corrupt that way (the self-test then fails: its
/// workload must produce every kind of record).
pub const CORRUPTIONS: &[Corruption] = &[
    Corruption {
        name: "an acknowledged confirmed order vanishes",
        caught_by: INVARIANTS[1],
        apply: |s, e| {
            let Some(id) = e.confirmed.iter().next().copied() else { return false };
            s.orders.retain(|o| o.id != id);
            true
        },
    },
    Corruption {
        name: "an acknowledged confirmed order turns rejected",
        caught_by: INVARIANTS[1],
        apply: |s, e| {
            let Some(id) =
                e.confirmed.iter().copied().find(|id| s.orders.iter().any(|o| o.id == *id && o.status == "confirmed"))
            else {
                return false;
            };
            s.orders.iter_mut().filter(|o| o.id == id).for_each(|o| o.status = "rejected".into());
            true
        },
    },
    Corruption {
        name: "a confirmed order is charged twice",
        caught_by: INVARIANTS[2],
        apply: |s, _| {
            let Some(id) = first_with(s, "confirmed").map(|o| o.id) else { return false };
            let Some(mut charge) = charge_of(s, id) else { return false };
            charge.id = Uuid::now_v7();
            s.ledger.push(charge);
            true
        },
    },
    Corruption {
        name: "a rejected order keeps a charge",
        caught_by: INVARIANTS[3],
        apply: |s, _| {
            let Some(o) = first_with(s, "rejected").cloned() else { return false };
            s.ledger.push(LedgerRow {
                id: Uuid::now_v7(),
                user_id: o.user_id,
                kind: "charge".into(),
                amount_cents: o.total_cents,
                order_id: Some(o.id),
            });
            true
        },
    },
    Corruption {
        name: "a cancelled order's refund is lost",
        caught_by: INVARIANTS[4],
        apply: |s, _| {
            let Some(id) = first_with(s, "cancelled").map(|o| o.id) else { return false };
            s.ledger.retain(|l| !(l.order_id == Some(id) && l.kind == "refund"));
            true
        },
    },
    Corruption {
        name: "an acknowledged top-up is applied twice",
        caught_by: INVARIANTS[5],
        apply: |s, e| {
            let Some(id) = e.top_ups.keys().next().copied() else { return false };
            let Some(entry) = s.ledger.iter().find(|l| l.id == id).cloned() else { return false };
            s.ledger.push(entry);
            true
        },
    },
    Corruption {
        name: "an acknowledged top-up is lost",
        caught_by: INVARIANTS[5],
        apply: |s, e| {
            let Some(id) = e.top_ups.keys().next().copied() else { return false };
            s.ledger.retain(|l| l.id != id);
            true
        },
    },
    Corruption {
        name: "money appears in a wallet",
        caught_by: INVARIANTS[6],
        apply: |s, _| {
            let Some(balance) = s.balances.values_mut().next() else { return false };
            *balance += 100;
            true
        },
    },
    Corruption {
        name: "a wallet goes negative",
        caught_by: INVARIANTS[6],
        apply: |s, _| {
            let Some(balance) = s.balances.values_mut().next() else { return false };
            *balance = -1;
            true
        },
    },
    Corruption {
        name: "an order's charge and its debit vanish together",
        caught_by: INVARIANTS[7],
        apply: |s, _| {
            // Consistent within the ledger, but not with what the client was told.
            let Some(o) = first_with(s, "confirmed").cloned() else { return false };
            let Some(charge) = charge_of(s, o.id) else { return false };
            s.ledger.retain(|l| l.id != charge.id);
            *s.balances.entry(o.user_id).or_default() += charge.amount_cents;
            s.orders.retain(|x| x.id != o.id);
            s.stats.entry(o.user_id).and_modify(|st| {
                st.0 -= 1;
                st.1 -= o.total_cents;
            });
            true
        },
    },
    Corruption {
        name: "an order stays pending",
        caught_by: INVARIANTS[8],
        apply: |s, _| {
            let Some(o) = first_with(s, "rejected") else { return false };
            o.status = "pending".into();
            true
        },
    },
    Corruption {
        name: "an event is applied twice to the stats",
        caught_by: INVARIANTS[9],
        apply: |s, _| {
            let Some(st) = s.stats.values_mut().find(|st| st.0 > 0) else { return false };
            st.0 += 1;
            true
        },
    },
    Corruption {
        name: "an event stays in an outbox",
        caught_by: INVARIANTS[10],
        apply: |s, _| {
            *s.outbox_waiting.entry("order".into()).or_default() += 1;
            true
        },
    },
    Corruption {
        name: "an event is dead-lettered",
        caught_by: INVARIANTS[10],
        apply: |s, _| {
            *s.dead_letters.entry("user.order-events.dlq".into()).or_default() += 1;
            true
        },
    },
    Corruption {
        name: "an operation is left without an answer",
        caught_by: INVARIANTS[0],
        apply: |_, e| {
            e.unresolved += 1;
            true
        },
    },
];

/// The self-test: the untouched data must pass, and every corruption of a
/// copy must be caught by its invariant. `(corruption, caught, findings)`.
pub fn self_test(s: &Snapshot, e: &Expected) -> (bool, Vec<(&'static str, bool, String)>) {
    let clean = check(s, e).iter().all(|f| f.violations.is_empty());
    let mut results = Vec::new();
    for c in CORRUPTIONS {
        let (mut s2, mut e2) = (s.clone(), e.clone());
        if !(c.apply)(&mut s2, &mut e2) {
            results.push((c.name, false, "the data had nothing to corrupt this way".to_owned()));
            continue;
        }
        let findings = check(&s2, &e2);
        let caught = findings.iter().any(|f| f.invariant == c.caught_by && !f.violations.is_empty());
        let said = findings
            .iter()
            .filter(|f| !f.violations.is_empty())
            .map(|f| format!("{}: {}", f.invariant, f.violations.first().cloned().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("; ");
        results.push((c.name, caught, said));
    }
    (clean, results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::workload::{Acked, OpKind, Operation};

    /// A small world that holds every invariant: one shopper with a setup
    /// top-up, a confirmed order, a cancelled (refunded) one, a rejected one,
    /// and a later top-up; the client saw each acknowledged.
    fn world() -> (Snapshot, Expected) {
        let (user, setup, top_up) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let (kept, cancelled, rejected) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let order = |id, status: &str, refund: Option<&str>| OrderRow {
            id,
            user_id: user,
            status: status.into(),
            total_cents: 1_000,
            refund_status: refund.map(Into::into),
        };
        let entry = |kind: &str, amount, order_id| LedgerRow {
            id: Uuid::now_v7(),
            user_id: user,
            kind: kind.into(),
            amount_cents: amount,
            order_id,
        };
        let mut ledger = vec![
            LedgerRow { id: setup, user_id: user, kind: "top_up".into(), amount_cents: 5_000, order_id: None },
            LedgerRow { id: top_up, user_id: user, kind: "top_up".into(), amount_cents: 2_000, order_id: None },
        ];
        ledger.push(entry("charge", 1_000, Some(kept)));
        ledger.push(entry("charge", 1_000, Some(cancelled)));
        ledger.push(entry("refund", 1_000, Some(cancelled)));
        let snapshot = Snapshot {
            orders: vec![
                order(kept, "confirmed", None),
                order(cancelled, "cancelled", Some("refunded")),
                order(rejected, "rejected", None),
            ],
            ledger,
            balances: HashMap::from([(user, 6_000)]),
            stats: HashMap::from([(user, (1, 1_000))]),
            outbox_waiting: BTreeMap::from([("order".into(), 0)]),
            dead_letters: BTreeMap::from([("user.order-events.dlq".into(), 0)]),
        };
        let op = |kind, acked| Operation { kind, user: 0, key: None, started: 0.0, ended: 0.0, attempts: 1, acked };
        let confirmed = twinshop_client::OrderStatus::Confirmed;
        let ops = vec![
            op(OpKind::Place, Acked::Placed { order_id: kept, status: confirmed, total_cents: 1_000 }),
            op(OpKind::Place, Acked::Placed { order_id: cancelled, status: confirmed, total_cents: 1_000 }),
            op(
                OpKind::Place,
                Acked::Placed {
                    order_id: rejected,
                    status: twinshop_client::OrderStatus::Rejected,
                    total_cents: 1_000,
                },
            ),
            op(OpKind::Cancel, Acked::Cancelled { order_id: cancelled, total_cents: 1_000 }),
            op(OpKind::TopUp, Acked::ToppedUp { top_up_id: top_up, amount_cents: 2_000 }),
        ];
        (snapshot, Expected::from_history(&[(user, setup, 5_000)], &ops))
    }

    #[test]
    fn a_consistent_world_passes_and_every_corruption_is_caught_by_its_invariant() {
        let (snapshot, expected) = world();
        let (clean, results) = self_test(&snapshot, &expected);
        assert!(clean, "{:#?}", check(&snapshot, &expected));
        for (name, caught, said) in results {
            assert!(caught, "{name} was not caught: {said}");
        }
    }

    #[test]
    fn a_balance_the_acknowledgements_do_not_imply_is_named_with_both_figures() {
        let (snapshot, mut expected) = world();
        expected.balances.values_mut().for_each(|b| *b += 500);
        let findings = check(&snapshot, &expected);
        let f = findings.iter().find(|f| f.invariant == INVARIANTS[7]).expect("the invariant");
        assert!(
            f.violations[0].contains("balance 6000") && f.violations[0].contains("imply 6500"),
            "{:?}",
            f.violations
        );
    }
}
