//! What holds across areas: eventually consistent stats, the money
//! invariant under concurrent orders, and each user seeing only their own.

use std::{collections::HashSet, ops::ControlFlow};

use anyhow::{Result, bail, ensure};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::{
    ctx::{Ctx, User, id_of, ledger_sums, same},
    schema,
};

/// Polls `/v1/users/me` until its stats are `(orders_confirmed, total_spent_cents)`.
async fn stats_become(ctx: &Ctx, user: &User, want: (i64, i64)) -> Result<()> {
    ctx.eventually(&format!("stats become {want:?}"), || async {
        let stats = schema::me(&ctx.me(user).await?)?;
        Ok(if stats == want { ControlFlow::Break(()) } else { ControlFlow::Continue(format!("{stats:?}")) })
    })
    .await
}

pub async fn stats_count_confirmed_orders_and_stop_counting_cancelled_ones(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    ctx.top_up(&user, 10_000).await?;
    let coffee = ctx.place_ok(&user, json!([{"product_id": "sku-coffee", "quantity": 1}])).await?;
    let tea = ctx.place_ok(&user, json!([{"product_id": "sku-tea", "quantity": 2}])).await?;
    for order in [&coffee, &tea] {
        same(&order["status"], &json!("confirmed"), "status")?;
    }
    let (c, t) = (coffee["total_cents"].as_i64().unwrap_or(0), tea["total_cents"].as_i64().unwrap_or(0));
    // Rejected orders never count.
    let rejected = ctx.place_ok(&user, json!([{"product_id": "sku-grinder", "quantity": 2}])).await?;
    same(&rejected["status"], &json!("rejected"), "the order beyond the funds")?;
    stats_become(ctx, &user, (2, c + t)).await?;

    let id = id_of(&coffee)?;
    ctx.post(&format!("/v1/orders/{id}/cancel")).user(&user).send().await?.ok(200)?;
    stats_become(ctx, &user, (1, t)).await
}

pub async fn twenty_concurrent_orders_on_a_wallet_funded_for_five_confirm_exactly_five(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    let price = ctx.price("sku-chocolate").await?;
    ctx.top_up(&user, 5 * price).await?;
    let items = json!([{"product_id": "sku-chocolate", "quantity": 1}]);
    let answers = join_all((0..20).map(|_| ctx.place(&user, items.clone(), None))).await;
    let mut confirmed = HashSet::new();
    let mut rejected = 0;
    for res in answers {
        let res = res?;
        let order = res.ok(201)?;
        schema::order(order)?;
        match (order["status"].as_str(), order["rejection_reason"].as_str()) {
            (Some("confirmed"), _) => {
                confirmed.insert(id_of(order)?);
            }
            (Some("rejected"), Some("insufficient_funds")) => rejected += 1,
            other => bail!("unexpected outcome {other:?}: {order}"),
        }
    }
    ensure!(
        (confirmed.len(), rejected) == (5, 15),
        "5 confirmed and 15 rejected expected, got {confirmed:?} and {rejected}"
    );
    same(&json!(ctx.balance(&user).await?), &json!(0), "the wallet")?;

    let ledger = ctx.ledger(&user).await?;
    let charged: HashSet<String> = ledger
        .iter()
        .filter(|e| e["kind"] == "charge")
        .filter_map(|e| e["order_id"].as_str().map(str::to_owned))
        .collect();
    ensure!(charged == confirmed, "the charges must be exactly the confirmed orders: {charged:?} vs {confirmed:?}");
    ensure!(ledger_sums(&ledger) == (5 * price, 5 * price, 0), "the ledger does not add up: {ledger:?}");
    let orders = ctx.orders(&user).await?;
    ensure!(orders.len() == 20, "20 orders expected in the list, found {}", orders.len());
    Ok(())
}

pub async fn each_user_sees_only_their_own_wallet_ledger_and_orders(ctx: &Ctx) -> Result<()> {
    let (a, b) = (ctx.user().await?, ctx.user().await?);
    ctx.top_up(&a, 5_000).await?;
    ctx.place_ok(&a, json!([{"product_id": "sku-mug", "quantity": 1}])).await?;
    same(&json!(ctx.balance(&b).await?), &json!(0), "the other user's wallet")?;
    for list in ["/v1/payments", "/v1/orders"] {
        let res = ctx.get(list).user(&b).send().await?;
        same(res.ok(200)?, &json!({"items": [], "next_cursor": Value::Null}), &format!("the other user's {list}"))?;
    }
    let me = ctx.me(&b).await?;
    same(&me["id"], &json!(b.id), "the other user's profile")?;
    same(&me["stats"], &json!({"orders_confirmed": 0, "total_spent_cents": 0}), "the other user's stats")
}
