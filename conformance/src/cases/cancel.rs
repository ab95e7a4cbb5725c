//! `POST /v1/orders/{id}/cancel` and the refund that follows it.

use std::ops::ControlFlow;

use anyhow::{Result, ensure};
use serde_json::{Value, json};

use crate::{
    ctx::{Ctx, User, entries_of, id_of, ledger_sums, same},
    schema,
};

/// A fresh user funded with `funds` and a confirmed order of one coffee.
async fn confirmed_order(ctx: &Ctx, funds: i64) -> Result<(User, Value)> {
    let user = ctx.user().await?;
    ctx.top_up(&user, funds).await?;
    let order = ctx.place_ok(&user, json!([{"product_id": "sku-coffee", "quantity": 1}])).await?;
    same(&order["status"], &json!("confirmed"), "status")?;
    Ok((user, order))
}

async fn cancel(ctx: &Ctx, user: &User, id: &str) -> Result<Value> {
    let res = ctx.post(&format!("/v1/orders/{id}/cancel")).user(user).send().await?;
    let order = res.ok(200)?;
    schema::order(order)?;
    Ok(order.clone())
}

/// Polls until the order's refund is applied; returns the order.
async fn refunded(ctx: &Ctx, user: &User, id: &str) -> Result<Value> {
    ctx.eventually("the refund is applied", || async {
        let order = ctx.order(user, id).await?;
        Ok(if order["refund_status"] == "refunded" {
            ControlFlow::Break(order)
        } else {
            ControlFlow::Continue(format!("refund_status {}", order["refund_status"]))
        })
    })
    .await
}

pub async fn cancelling_a_confirmed_order_refunds_it_and_restores_the_balance(ctx: &Ctx) -> Result<()> {
    let (user, order) = confirmed_order(ctx, 10_000).await?;
    let id = id_of(&order)?;
    let cancelled = cancel(ctx, &user, &id).await?;
    same(&cancelled["status"], &json!("cancelled"), "status")?;
    same(&cancelled["refund_status"], &json!("pending"), "refund_status in the cancel answer")?;
    same(&cancelled["rejection_reason"], &Value::Null, "rejection_reason")?;
    for field in ["id", "items", "total_cents", "ship_to", "created_at"] {
        same(&cancelled[field], &order[field], field)?;
    }

    let after = refunded(ctx, &user, &id).await?;
    same(&after["status"], &json!("cancelled"), "status once refunded")?;
    same(&json!(ctx.balance(&user).await?), &json!(10_000), "the wallet once refunded")?;
    let ledger = ctx.ledger(&user).await?;
    let entries = entries_of(&ledger, &id);
    let kinds: Vec<&Value> = entries.iter().map(|e| &e["kind"]).collect();
    ensure!(kinds == [&json!("refund"), &json!("charge")], "a charge then a refund, newest first: {kinds:?}");
    same(&json!(entries[0]["amount_cents"].as_i64().map(i64::abs)), &order["total_cents"], "the refund")?;
    let (top_ups, charges, refunds) = ledger_sums(&ledger);
    ensure!(top_ups - charges + refunds == 10_000, "the ledger does not add up to the wallet: {ledger:?}");
    Ok(())
}

pub async fn cancelling_a_cancelled_order_returns_it_unchanged_and_refunds_once(ctx: &Ctx) -> Result<()> {
    let (user, order) = confirmed_order(ctx, 10_000).await?;
    let id = id_of(&order)?;
    cancel(ctx, &user, &id).await?;
    // At once: still cancelled, whatever the refund's progress.
    let again = cancel(ctx, &user, &id).await?;
    same(&again["status"], &json!("cancelled"), "status after a second cancel")?;
    let settled = refunded(ctx, &user, &id).await?;
    // Once refunded: the answer is the order exactly as it is.
    let third = cancel(ctx, &user, &id).await?;
    same(&third, &settled, "a cancelled order cancelled again")?;
    same(&ctx.order(&user, &id).await?, &settled, "the order after cancelling again")?;
    same(&json!(ctx.balance(&user).await?), &json!(10_000), "the wallet (refunded once)")?;
    let ledger = ctx.ledger(&user).await?;
    let refunds = entries_of(&ledger, &id).iter().filter(|e| e["kind"] == "refund").count();
    ensure!(refunds == 1, "one refund expected, found {refunds}");
    Ok(())
}

pub async fn cancelling_a_rejected_order_is_409_order_not_cancellable(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    ctx.top_up(&user, 100).await?;
    let order = ctx.place_ok(&user, json!([{"product_id": "sku-kettle", "quantity": 1}])).await?;
    same(&order["status"], &json!("rejected"), "status")?;
    let id = id_of(&order)?;
    ctx.post(&format!("/v1/orders/{id}/cancel")).user(&user).send().await?.problem(409, "order_not_cancellable")?;
    same(&ctx.order(&user, &id).await?, &order, "the rejected order after a refused cancel")?;
    same(&json!(ctx.balance(&user).await?), &json!(100), "the wallet")?;
    ensure!(entries_of(&ctx.ledger(&user).await?, &id).is_empty(), "a refused cancel touched the ledger");
    Ok(())
}
