//! `twinshop.payment.v1.Payments` (proto/twinshop/payment/v1/payments.proto):
//! Charge and Refund, idempotent by `order_id`, with the tombstone and
//! `FAILED_PRECONDITION` rules of docs/design.md §6. Every effect on money
//! is read back through the public API (`GET /v1/wallet`, `/v1/payments`),
//! as the order service's customers would see it.

use std::{future::Future, time::Duration};

use anyhow::{Context as _, Result, bail, ensure};
use futures_util::future::join_all;
use twinshop_client::{
    Charged, Refunded,
    internal::{
        ChargeOutcome, Code, RefundOutcome, Status,
        pb::{ChargeRequest, RefundRequest},
    },
};
use uuid::Uuid;

use super::InternalCtx;
use crate::ctx::{User, entries_of};

/// The largest amount one Charge may take (the `.proto` file's bound).
const CHARGE_MAX: i64 = 1_000_000_000;

fn id(user: &User) -> Result<Uuid> {
    Uuid::parse_str(&user.id).with_context(|| format!("a user id: {}", user.id))
}

fn charged(outcome: ChargeOutcome, balance_cents: i64) -> Charged {
    Charged { outcome, balance_cents }
}

fn refunded(outcome: RefundOutcome, amount_cents: i64) -> Refunded {
    Refunded { outcome, amount_cents }
}

/// `got` must be `expected`, for the call `what`.
fn expect<T: PartialEq + std::fmt::Debug>(got: T, expected: T, what: &str) -> Result<()> {
    ensure!(got == expected, "{what}: expected {expected:?}, got {got:?}");
    Ok(())
}

/// The order's ledger entries must be exactly `expected` `(kind, amount)`
/// (amounts as magnitudes: docs/api.md does not fix their sign).
async fn ledger_of(ctx: &InternalCtx, user: &User, order: Uuid, expected: &[(&str, i64)]) -> Result<()> {
    let ledger = ctx.public.ledger(user).await?;
    let mut found: Vec<(String, i64)> = entries_of(&ledger, &order.to_string())
        .iter()
        .map(|e| (e["kind"].as_str().unwrap_or_default().to_owned(), e["amount_cents"].as_i64().unwrap_or(0).abs()))
        .collect();
    found.sort();
    let mut wanted: Vec<(String, i64)> = expected.iter().map(|(k, a)| ((*k).to_owned(), *a)).collect();
    wanted.sort();
    ensure!(found == wanted, "the ledger (GET /v1/payments) for order {order}: expected {wanted:?}, found {found:?}");
    Ok(())
}

/// A raw call that must be refused with `code`.
async fn refused<R: std::fmt::Debug>(
    call: impl Future<Output = Result<R, Status>>,
    code: Code,
    what: &str,
) -> Result<()> {
    match tokio::time::timeout(Duration::from_secs(10), call).await {
        Err(_) => bail!("{what}: no answer within 10 s"),
        Ok(Ok(answer)) => bail!("{what}: expected {code:?}, got an answer: {answer:?}"),
        Ok(Err(status)) => {
            ensure!(status.code() == code, "{what}: expected {code:?}, got {:?}: {}", status.code(), status.message());
            Ok(())
        }
    }
}

pub async fn a_charge_takes_the_amount_once_and_a_replay_answers_the_first_outcome(ctx: &InternalCtx) -> Result<()> {
    let user = ctx.wallet(1000).await?;
    let (payments, user_id, order) = (ctx.payments()?, id(&user)?, Uuid::now_v7());
    let first = payments.charge(order, user_id, 300).await?;
    expect(first, charged(ChargeOutcome::Charged, 700), "Charge of 300 from 1000")?;
    ctx.balance_is(&user, 700, "the charge").await?;
    for retry in 1..=2 {
        expect(payments.charge(order, user_id, 300).await?, first, &format!("retry {retry} of the Charge"))?;
    }
    ctx.balance_is(&user, 700, "two retries of the charge").await?;
    ledger_of(ctx, &user, order, &[("charge", 300)]).await
}

pub async fn insufficient_funds_is_an_outcome_and_stays_final_after_a_top_up(ctx: &InternalCtx) -> Result<()> {
    let user = ctx.wallet(1000).await?;
    let (payments, user_id, order) = (ctx.payments()?, id(&user)?, Uuid::now_v7());
    let first = payments.charge(order, user_id, 5000).await?;
    expect(first, charged(ChargeOutcome::InsufficientFunds, 1000), "Charge of 5000 from 1000")?;
    ctx.public.top_up(&user, 10_000).await?;
    expect(payments.charge(order, user_id, 5000).await?, first, "the Charge retried after a top-up")?;
    ctx.balance_is(&user, 11_000, "a refused charge and a top-up").await?;
    ledger_of(ctx, &user, order, &[]).await
}

pub async fn a_refund_gives_the_charge_back_once_and_a_replay_says_already_refunded(ctx: &InternalCtx) -> Result<()> {
    let user = ctx.wallet(1000).await?;
    let (payments, user_id, order) = (ctx.payments()?, id(&user)?, Uuid::now_v7());
    let first = payments.charge(order, user_id, 300).await?;
    expect(first, charged(ChargeOutcome::Charged, 700), "Charge of 300 from 1000")?;
    expect(payments.refund(order).await?, refunded(RefundOutcome::Refunded, 300), "Refund of the charge")?;
    ctx.balance_is(&user, 1000, "the refund").await?;
    let again = refunded(RefundOutcome::AlreadyRefunded, 300);
    expect(payments.refund(order).await?, again, "the Refund retried")?;
    // The Charge's first outcome stays final, and takes nothing again.
    expect(payments.charge(order, user_id, 300).await?, first, "the Charge retried after its refund")?;
    ctx.balance_is(&user, 1000, "retries of the refund and the charge").await?;
    ledger_of(ctx, &user, order, &[("charge", 300), ("refund", 300)]).await
}

pub async fn a_refund_of_an_order_whose_charge_took_nothing_is_not_charged(ctx: &InternalCtx) -> Result<()> {
    let user = ctx.wallet(100).await?;
    let (payments, user_id, order) = (ctx.payments()?, id(&user)?, Uuid::now_v7());
    let first = payments.charge(order, user_id, 5000).await?;
    expect(first, charged(ChargeOutcome::InsufficientFunds, 100), "Charge of 5000 from 100")?;
    let none = refunded(RefundOutcome::NotCharged, 0);
    expect(payments.refund(order).await?, none, "Refund of a charge that took nothing")?;
    expect(payments.charge(order, user_id, 5000).await?, first, "the Charge retried after the Refund")?;
    ctx.balance_is(&user, 100, "a refund of nothing").await?;
    ledger_of(ctx, &user, order, &[]).await
}

pub async fn a_refund_before_any_charge_leaves_a_tombstone_and_a_late_charge_is_voided(
    ctx: &InternalCtx,
) -> Result<()> {
    let user = ctx.wallet(1000).await?;
    let (payments, user_id, order) = (ctx.payments()?, id(&user)?, Uuid::now_v7());
    let none = refunded(RefundOutcome::NotCharged, 0);
    expect(payments.refund(order).await?, none, "Refund before any Charge")?;
    let voided = charged(ChargeOutcome::Voided, 0);
    expect(payments.charge(order, user_id, 300).await?, voided, "the late Charge")?;
    ctx.balance_is(&user, 1000, "a voided charge").await?;
    // Whoever retries, with whatever details, the order stays void.
    expect(payments.charge(order, user_id, 300).await?, voided, "the late Charge retried")?;
    expect(payments.charge(order, Uuid::now_v7(), 7).await?, voided, "a late Charge with other details")?;
    expect(payments.refund(order).await?, none, "the Refund retried")?;
    ctx.balance_is(&user, 1000, "retries on a tombstone").await?;
    ledger_of(ctx, &user, order, &[]).await
}

pub async fn the_same_order_id_with_another_user_or_amount_is_failed_precondition(ctx: &InternalCtx) -> Result<()> {
    let (user, other) = (ctx.wallet(1000).await?, ctx.wallet(1000).await?);
    let (payments, user_id, order) = (ctx.payments()?, id(&user)?, Uuid::now_v7());
    expect(payments.charge(order, user_id, 300).await?, charged(ChargeOutcome::Charged, 700), "Charge of 300")?;
    for (who, amount, what) in [(user_id, 301, "another amount"), (id(&other)?, 300, "another user")] {
        match payments.charge(order, who, amount).await {
            Err(err) if err.code() == Some(Code::FailedPrecondition) => {}
            answer => bail!("the same order_id with {what}: expected FAILED_PRECONDITION, got {answer:?}"),
        }
    }
    ctx.balance_is(&user, 700, "refused charges of the same order").await?;
    ctx.balance_is(&other, 1000, "a refused charge of another user's order").await?;
    ledger_of(ctx, &user, order, &[("charge", 300)]).await
}

pub async fn malformed_ids_and_out_of_range_amounts_are_invalid_argument_and_take_nothing(
    ctx: &InternalCtx,
) -> Result<()> {
    let user = ctx.wallet(1000).await?;
    let payments = ctx.payments()?;
    let (order, user_id) = (Uuid::now_v7().to_string(), user.id.clone());
    let charges = [
        ("not-a-uuid", user_id.as_str(), 100),
        ("", user_id.as_str(), 100),
        (order.as_str(), "not-a-uuid", 100),
        (order.as_str(), "", 100),
        (order.as_str(), user_id.as_str(), 0),
        (order.as_str(), user_id.as_str(), -1),
        (order.as_str(), user_id.as_str(), i64::MIN),
        (order.as_str(), user_id.as_str(), CHARGE_MAX + 1),
        (order.as_str(), user_id.as_str(), i64::MAX),
    ];
    for (order_id, user_id, amount_cents) in charges {
        let request = ChargeRequest { order_id: order_id.into(), user_id: user_id.into(), amount_cents };
        let what = format!("Charge({order_id:?}, {user_id:?}, {amount_cents})");
        refused(payments.raw().charge(request), Code::InvalidArgument, &what).await?;
    }
    for order_id in ["", "123", "g0000000-0000-0000-0000-000000000000"] {
        let what = format!("Refund({order_id:?})");
        refused(payments.raw().refund(RefundRequest { order_id: order_id.into() }), Code::InvalidArgument, &what)
            .await?;
    }
    ctx.balance_is(&user, 1000, "refused calls").await?;
    // Nothing was recorded for the order: a valid Charge of it goes through,
    // and the largest amount is a valid one (here, more than the wallet holds).
    let (order, user_id) = (Uuid::parse_str(&order)?, id(&user)?);
    expect(payments.charge(order, user_id, 1000).await?, charged(ChargeOutcome::Charged, 0), "a valid Charge")?;
    let largest = payments.charge(Uuid::now_v7(), user_id, CHARGE_MAX).await?;
    expect(largest, charged(ChargeOutcome::InsufficientFunds, 0), "a Charge of the largest amount")
}

pub async fn concurrent_charges_of_one_order_take_the_money_once(ctx: &InternalCtx) -> Result<()> {
    let user = ctx.wallet(1000).await?;
    let (payments, user_id, order) = (ctx.payments()?, id(&user)?, Uuid::now_v7());
    let answers = join_all((0..10).map(|_| payments.charge(order, user_id, 300))).await;
    for (i, answer) in answers.into_iter().enumerate() {
        expect(answer?, charged(ChargeOutcome::Charged, 700), &format!("concurrent Charge {i}"))?;
    }
    ctx.balance_is(&user, 700, "ten concurrent charges of one order").await?;
    ledger_of(ctx, &user, order, &[("charge", 300)]).await
}
