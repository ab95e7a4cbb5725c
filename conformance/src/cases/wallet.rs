//! `GET /v1/wallet` and `POST /v1/wallet/top-ups`, with their
//! `Idempotency-Key`.

use anyhow::{Result, ensure};
use serde_json::json;
use uuid::Uuid;

use crate::{
    ctx::{Ctx, same},
    schema,
};

pub async fn a_new_wallet_holds_zero_euros(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    let res = ctx.get("/v1/wallet").user(&user).send().await?;
    let wallet = res.ok(200)?;
    schema::wallet(wallet)?;
    same(wallet, &json!({"balance_cents": 0, "currency": "EUR"}), "a new wallet")
}

pub async fn top_ups_credit_the_wallet_and_answer_the_new_balance(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    let res = ctx.post("/v1/wallet/top-ups").user(&user).json(&json!({"amount_cents": 2_500})).send().await?;
    let first = res.ok(201)?.clone();
    ensure!(!res.replayed(), "a first top-up must not say Idempotent-Replayed");
    schema::top_up(&first)?;
    same(&first["amount_cents"], &json!(2_500), "amount_cents")?;
    same(&first["balance_cents"], &json!(2_500), "balance_cents")?;
    // Unknown fields are ignored, even ones that look like they matter.
    let body = json!({"amount_cents": 1_000, "currency": "USD", "balance_cents": 1});
    let res = ctx.post("/v1/wallet/top-ups").user(&user).json(&body).send().await?;
    let second = res.ok(201)?;
    schema::top_up(second)?;
    same(&second["amount_cents"], &json!(1_000), "amount_cents of the second top-up")?;
    same(&second["balance_cents"], &json!(3_500), "balance_cents after a second top-up")?;
    ensure!(first["id"] != second["id"], "two top-ups share an id");
    same(&json!(ctx.balance(&user).await?), &json!(3_500), "the wallet")
}

pub async fn top_up_amounts_run_from_1_to_1000000_cents(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    ctx.top_up(&user, 1).await?;
    ctx.top_up(&user, 1_000_000).await?;
    let bad = [json!(0), json!(-5), json!(1_000_001), json!(1.5), json!("100"), json!(null), json!(1e30)];
    for amount in bad {
        let res = ctx.post("/v1/wallet/top-ups").user(&user).json(&json!({"amount_cents": amount})).send().await?;
        res.invalid(&["amount_cents"]).map_err(|e| e.context(format!("amount_cents {amount}")))?;
    }
    ctx.post("/v1/wallet/top-ups").user(&user).json(&json!({})).send().await?.invalid(&["amount_cents"])?;
    same(&json!(ctx.balance(&user).await?), &json!(1_000_001), "the wallet after refused top-ups")
}

pub async fn a_repeated_top_up_key_replays_the_first_answer_and_credits_once(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    let key = format!("conformance-{}", Uuid::now_v7());
    let send = |body: &'static str| {
        ctx.post("/v1/wallet/top-ups").user(&user).header("idempotency-key", &key).raw(Some("application/json"), body)
    };
    let first = send(r#"{"amount_cents":700}"#).send().await?;
    let first_body = first.ok(201)?;
    ensure!(!first.replayed(), "a first request must not say Idempotent-Replayed");
    // The same body as parsed JSON, spelled differently.
    let again = send("{\n  \"amount_cents\" : 700\n}").send().await?;
    same(again.ok(201)?, first_body, "the replayed body")?;
    ensure!(again.replayed(), "a replay must say Idempotent-Replayed: true, got {:?}", again.headers);
    let third = send(r#"{"amount_cents":700}"#).send().await?;
    same(third.ok(201)?, first_body, "the second replay")?;
    ensure!(third.replayed(), "every replay says Idempotent-Replayed: true");
    same(&json!(ctx.balance(&user).await?), &json!(700), "the wallet (credited once)")?;
    let top_ups = ctx.ledger(&user).await?.iter().filter(|e| e["kind"] == "top_up").count();
    ensure!(top_ups == 1, "the ledger must show one top-up, shows {top_ups}");
    Ok(())
}

pub async fn a_top_up_key_reused_for_another_amount_is_422_idempotency_key_reused(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    let key = format!("conformance-{}", Uuid::now_v7());
    let top_up = |cents: i64| {
        ctx.post("/v1/wallet/top-ups").user(&user).key(Some(&key)).json(&json!({"amount_cents": cents})).send()
    };
    top_up(800).await?.ok(201)?;
    top_up(900).await?.problem(422, "idempotency_key_reused")?;
    same(&json!(ctx.balance(&user).await?), &json!(800), "the wallet after a reused key")?;
    // The first request still replays.
    let replay = top_up(800).await?;
    same(&replay.ok(201)?["balance_cents"], &json!(800), "the replayed balance")?;
    ensure!(replay.replayed(), "the replay says Idempotent-Replayed: true");
    Ok(())
}
