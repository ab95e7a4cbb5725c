//! `GET /v1/payments`: the ledger, and the pagination rules every list
//! shares.

use anyhow::{Result, ensure};
use serde_json::{Value, json};

use crate::{
    ctx::{Ctx, User, id_of, same},
    schema,
};

pub async fn the_ledger_lists_top_ups_and_charges_newest_first_with_every_field(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    for cents in [1_000, 2_000, 3_000] {
        ctx.top_up(&user, cents).await?;
    }
    let order = ctx.place_ok(&user, json!([{"product_id": "sku-tea", "quantity": 1}])).await?;
    same(&order["status"], &json!("confirmed"), "the order")?;
    let res = ctx.get("/v1/payments").user(&user).send().await?;
    let (items, next) = schema::page(res.ok(200)?, schema::entry)?;
    ensure!(next.is_none(), "four entries fit one default page, yet next_cursor is {next:?}");
    schema::newest_first(items, "ledger entries")?;
    let seen: Vec<(Value, i64, Value)> = items
        .iter()
        .map(|e| (e["kind"].clone(), e["amount_cents"].as_i64().unwrap_or(0).abs(), e["order_id"].clone()))
        .collect();
    let expected = vec![
        (json!("charge"), ctx.price("sku-tea").await?, json!(id_of(&order)?)),
        (json!("top_up"), 3_000, Value::Null),
        (json!("top_up"), 2_000, Value::Null),
        (json!("top_up"), 1_000, Value::Null),
    ];
    ensure!(seen == expected, "ledger (kind, |amount|, order_id): expected {expected:?}, got {seen:?}");
    Ok(())
}

/// `n` top-ups of 100, 200, … cents, one after the other.
async fn top_ups(ctx: &Ctx, user: &User, n: i64) -> Result<()> {
    for i in 1..=n {
        ctx.top_up(user, i * 100).await?;
    }
    Ok(())
}

/// Walks `/v1/payments` with `limit`; returns the page sizes and every amount.
async fn walk(ctx: &Ctx, user: &User, limit: u32) -> Result<(Vec<usize>, Vec<i64>)> {
    let (mut sizes, mut amounts) = (Vec::new(), Vec::new());
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let path = match &cursor {
            Some(c) => format!("/v1/payments?limit={limit}&cursor={c}"),
            None => format!("/v1/payments?limit={limit}"),
        };
        let res = ctx.get(&path).user(user).send().await?;
        let (items, next) = schema::page(res.ok(200)?, schema::entry)?;
        sizes.push(items.len());
        amounts.extend(items.iter().map(|e| e["amount_cents"].as_i64().unwrap_or(0).abs()));
        match next {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok((sizes, amounts)),
        }
    }
    anyhow::bail!("the ledger did not end within 20 pages")
}

pub async fn the_ledger_pages_by_limit_and_cursor_until_a_null_cursor(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    top_ups(ctx, &user, 5).await?;
    let all = vec![500, 400, 300, 200, 100];
    for (limit, pages) in [(2, vec![2, 2, 1]), (1, vec![1; 5]), (5, vec![5]), (100, vec![5])] {
        let (sizes, amounts) = walk(ctx, &user, limit).await?;
        ensure!(sizes == pages, "limit={limit}: pages of {pages:?} expected, got {sizes:?}");
        ensure!(amounts == all, "limit={limit}: newest first, each once: expected {all:?}, got {amounts:?}");
    }
    Ok(())
}

pub async fn the_ledger_limit_defaults_to_20(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    top_ups(ctx, &user, 21).await?;
    let res = ctx.get("/v1/payments").user(&user).send().await?;
    let (items, next) = schema::page(res.ok(200)?, schema::entry)?;
    ensure!(items.len() == 20, "the default page holds 20, got {}", items.len());
    let next = next.ok_or_else(|| anyhow::anyhow!("a 21st entry follows, yet next_cursor is null"))?;
    let res = ctx.get(&format!("/v1/payments?cursor={next}")).user(&user).send().await?;
    let (items, next) = schema::page(res.ok(200)?, schema::entry)?;
    ensure!(items.len() == 1 && next.is_none(), "the last page holds the oldest entry and a null cursor");
    same(&json!(items[0]["amount_cents"].as_i64().map(i64::abs)), &json!(100), "the oldest entry")
}

pub async fn malformed_limits_and_cursors_are_validation_failed(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    for list in ["/v1/payments", "/v1/orders"] {
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("limit=-1", "limit"),
            ("limit=x", "limit"),
            ("limit=1.5", "limit"),
            ("cursor=nope", "cursor"),
            ("cursor=%21%21%21", "cursor"),
        ] {
            let res = ctx.get(&format!("{list}?{query}")).user(&user).send().await?;
            res.invalid(&[field]).map_err(|e| e.context(format!("{list}?{query}")))?;
        }
    }
    Ok(())
}
