//! `Idempotency-Key` on `POST /v1/orders`, and the key rules both keyed
//! endpoints share (scope, syntax).

use std::collections::HashSet;

use anyhow::{Result, bail, ensure};
use futures_util::future::join_all;
use serde_json::json;
use uuid::Uuid;

use crate::{
    ctx::{Ctx, entries_of, id_of, same},
    schema,
};

fn fresh_key() -> String {
    format!("conformance-{}", Uuid::now_v7())
}

pub async fn a_repeated_order_key_replays_the_first_order_and_charges_once(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    ctx.top_up(&user, 100_000).await?;
    let key = fresh_key();
    let send = |body: &'static str| {
        ctx.post("/v1/orders").user(&user).key(Some(&key)).raw(Some("application/json"), body).send()
    };
    let first = send(r#"{"items":[{"product_id":"sku-tea","quantity":3}]}"#).await?;
    let order = first.ok(201)?;
    schema::order(order)?;
    same(&order["status"], &json!("confirmed"), "status")?;
    ensure!(!first.replayed(), "a first placement must not say Idempotent-Replayed");
    // The same body as parsed JSON: other key order, other spacing.
    let again = send("{ \"items\": [ { \"quantity\": 3, \"product_id\": \"sku-tea\" } ] }").await?;
    same(again.ok(201)?, order, "the replayed order")?;
    ensure!(again.replayed(), "a replay must say Idempotent-Replayed: true, got {:?}", again.headers);

    let total = 3 * ctx.price("sku-tea").await?;
    same(&json!(ctx.balance(&user).await?), &json!(100_000 - total), "the wallet (charged once)")?;
    let orders = ctx.orders(&user).await?;
    ensure!(orders.len() == 1, "one order expected, found {}", orders.len());
    let ledger = ctx.ledger(&user).await?;
    ensure!(entries_of(&ledger, &id_of(order)?).len() == 1, "one charge expected: {ledger:?}");
    Ok(())
}

pub async fn an_order_key_reused_for_another_body_is_422_idempotency_key_reused(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    ctx.top_up(&user, 100_000).await?;
    let key = fresh_key();
    let tea = |q: i64| json!([{"product_id": "sku-tea", "quantity": q}]);
    let first = ctx.place(&user, tea(3), Some(&key)).await?;
    let order = first.ok(201)?.clone();
    for other in [tea(4), json!([{"product_id": "sku-mug", "quantity": 3}])] {
        ctx.place(&user, other, Some(&key)).await?.problem(422, "idempotency_key_reused")?;
    }
    let total = order["total_cents"].as_i64().unwrap_or(0);
    same(&json!(ctx.balance(&user).await?), &json!(100_000 - total), "the wallet")?;
    ensure!(ctx.orders(&user).await?.len() == 1, "a reused key made another order");
    Ok(())
}

pub async fn concurrent_requests_with_one_key_make_one_order_and_one_charge(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    ctx.top_up(&user, 100_000).await?;
    let key = fresh_key();
    let items = json!([{"product_id": "sku-notebook", "quantity": 2}]);
    let answers = join_all((0..10).map(|_| ctx.place(&user, items.clone(), Some(&key)))).await;
    let mut ids = HashSet::new();
    for res in answers {
        let res = res?;
        match res.status {
            201 => {
                let order = res.ok(201)?;
                schema::order(order)?;
                ids.insert(id_of(order)?);
            }
            // docs/api.md: while the first is processed, a second gets 409.
            409 => {
                res.problem(409, "idempotency_key_in_use")?;
            }
            other => bail!("unexpected {other}: {}", res.text),
        }
    }
    ensure!(ids.len() == 1, "every 201 must name the same order, got {ids:?}");
    // Once settled, the key replays deterministically.
    let replay = ctx.place(&user, items, Some(&key)).await?;
    let order = replay.ok(201)?;
    ensure!(replay.replayed() && ids.contains(&id_of(order)?), "the replay names the one order: {order}");
    let orders = ctx.orders(&user).await?;
    ensure!(orders.len() == 1, "one order expected, found {}", orders.len());
    let total = 2 * ctx.price("sku-notebook").await?;
    same(&json!(ctx.balance(&user).await?), &json!(100_000 - total), "the wallet (charged once)")?;
    let charges = ctx.ledger(&user).await?.iter().filter(|e| e["kind"] == "charge").count();
    ensure!(charges == 1, "one charge expected, found {charges}");
    Ok(())
}

pub async fn idempotency_keys_are_scoped_per_user_and_endpoint(ctx: &Ctx) -> Result<()> {
    let (a, b) = (ctx.user().await?, ctx.user().await?);
    let key = fresh_key();
    let top_up = |user| ctx.post("/v1/wallet/top-ups").user(user).key(Some(&key)).json(&json!({"amount_cents": 5_000}));
    let first = top_up(&a).send().await?;
    let second = top_up(&b).send().await?;
    ensure!(!second.replayed(), "another user's key replayed");
    ensure!(first.ok(201)?["id"] != second.ok(201)?["id"], "two users' top-ups share an id");
    same(&json!(ctx.balance(&b).await?), &json!(5_000), "the second user's wallet")?;
    // The same key on another endpoint is another key.
    let res = ctx.place(&a, json!([{"product_id": "sku-chocolate", "quantity": 1}]), Some(&key)).await?;
    ensure!(!res.replayed(), "an order replayed a top-up");
    let order = res.ok(201)?;
    schema::order(order)?;
    same(&order["status"], &json!("confirmed"), "the order placed with a top-up's key")?;
    let res = ctx.place(&b, json!([{"product_id": "sku-chocolate", "quantity": 1}]), Some(&key)).await?;
    ensure!(!res.replayed() && res.ok(201)?["id"] != order["id"], "another user's order key replayed");
    Ok(())
}

pub async fn malformed_idempotency_keys_are_validation_failed(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    let long = "k".repeat(256);
    let bad: [(&str, &[u8]); 5] = [
        ("a space", b"has space"),
        ("256 characters", long.as_bytes()),
        ("nothing", b""),
        ("a tab", b"tab\there"),
        ("a non-ASCII byte", b"caf\xe9"),
    ];
    for (what, key) in bad {
        let res = ctx
            .post("/v1/wallet/top-ups")
            .user(&user)
            .header_bytes("idempotency-key", key)
            .json(&json!({"amount_cents": 100}))
            .send()
            .await?;
        res.problem(400, "validation_failed").map_err(|e| e.context(format!("a top-up key with {what}")))?;
        let res = ctx
            .post("/v1/orders")
            .user(&user)
            .header_bytes("idempotency-key", key)
            .json(&json!({"items": [{"product_id": "sku-tea", "quantity": 1}]}))
            .send()
            .await?;
        res.problem(400, "validation_failed").map_err(|e| e.context(format!("an order key with {what}")))?;
    }
    same(&json!(ctx.balance(&user).await?), &json!(0), "the wallet after refused top-ups")?;
    ensure!(ctx.orders(&user).await?.is_empty(), "a refused order was recorded");
    // The longest valid key works.
    ctx.post("/v1/wallet/top-ups")
        .user(&user)
        .key(Some(&"k".repeat(255)))
        .json(&json!({"amount_cents": 100}))
        .send()
        .await?
        .ok(201)?;
    Ok(())
}
