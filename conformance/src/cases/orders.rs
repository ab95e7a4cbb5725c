//! `GET /v1/products` and placing, reading and listing orders.

use std::collections::HashSet;

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    ctx::{Ctx, entries_of, error_fields, id_of, same},
    schema,
};

/// The catalog a fresh deployment is seeded with (ids only: prices are read
/// from the catalog itself).
pub const SEEDED: [&str; 8] =
    ["sku-coffee", "sku-tea", "sku-mug", "sku-grinder", "sku-kettle", "sku-filter", "sku-chocolate", "sku-notebook"];

pub async fn the_catalog_is_public_and_holds_the_seeded_products(ctx: &Ctx) -> Result<()> {
    let res = ctx.get("/v1/products").send().await?;
    let items = schema::array(res.ok(200)?, "items", "products")?;
    for p in items {
        schema::product(p)?;
    }
    let ids: Vec<&str> = items.iter().filter_map(|p| p["id"].as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    ensure!(unique.len() == ids.len(), "product ids repeat: {ids:?}");
    for id in SEEDED {
        ensure!(unique.contains(id), "the catalog lacks the seeded {id:?}: {ids:?}");
    }
    Ok(())
}

pub async fn an_order_is_confirmed_priced_from_the_catalog_and_shipped_to_the_profile(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    ctx.top_up(&user, 10_000).await?;
    let (coffee, tea) = (ctx.product("sku-coffee").await?, ctx.product("sku-tea").await?);
    // A price the client sends is an unknown field: ignored.
    let items = json!([
        {"product_id": "sku-coffee", "quantity": 2, "unit_price_cents": 1},
        {"product_id": "sku-tea", "quantity": 1},
    ]);
    let res = ctx.place(&user, items, None).await?;
    let order = res.ok(201)?.clone();
    ensure!(!res.replayed(), "a first placement must not say Idempotent-Replayed");
    schema::order(&order)?;
    same(&order["status"], &json!("confirmed"), "status")?;
    let mut lines: Vec<Value> = order["items"].as_array().cloned().unwrap_or_default();
    lines.sort_by_key(|l| l["product_id"].as_str().unwrap_or_default().to_owned());
    let expected = json!([
        {"product_id": coffee.id, "name": coffee.name, "unit_price_cents": coffee.price_cents, "quantity": 2},
        {"product_id": tea.id, "name": tea.name, "unit_price_cents": tea.price_cents, "quantity": 1},
    ]);
    for (line, want) in lines.iter().zip(expected.as_array().into_iter().flatten()) {
        for field in ["product_id", "name", "unit_price_cents", "quantity"] {
            same(&line[field], &want[field], &format!("line {} {field}", want["product_id"]))?;
        }
    }
    ensure!(lines.len() == 2, "two lines expected: {}", order["items"]);
    let total = 2 * coffee.price_cents + tea.price_cents;
    same(&order["total_cents"], &json!(total), "total_cents")?;
    same(&order["ship_to"], &json!({"name": user.name, "address": user.address}), "ship_to")?;
    same(&order["rejection_reason"], &Value::Null, "rejection_reason")?;
    same(&order["refund_status"], &Value::Null, "refund_status")?;

    let id = id_of(&order)?;
    same(&ctx.order(&user, &id).await?, &order, "GET /v1/orders/{id}")?;
    same(&json!(ctx.balance(&user).await?), &json!(10_000 - total), "the wallet")?;
    let ledger = ctx.ledger(&user).await?;
    let charges = entries_of(&ledger, &id);
    ensure!(charges.len() == 1 && charges[0]["kind"] == "charge", "one charge for the order, got {charges:?}");
    same(&json!(charges[0]["amount_cents"].as_i64().map(i64::abs)), &json!(total), "the charge")
}

pub async fn an_order_without_enough_funds_is_rejected_and_charges_nothing(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    let grinder = ctx.price("sku-grinder").await?;
    for funds in [0, grinder - 1] {
        if funds > 0 {
            ctx.top_up(&user, funds).await?;
        }
        let order = ctx.place_ok(&user, json!([{"product_id": "sku-grinder", "quantity": 1}])).await?;
        same(&order["status"], &json!("rejected"), "status")?;
        same(&order["rejection_reason"], &json!("insufficient_funds"), "rejection_reason")?;
        same(&order["refund_status"], &Value::Null, "refund_status")?;
        same(&order["total_cents"], &json!(grinder), "total_cents")?;
        let id = id_of(&order)?;
        same(&ctx.order(&user, &id).await?, &order, "the rejected order read back")?;
        same(&json!(ctx.balance(&user).await?), &json!(funds), "the wallet")?;
        let ledger = ctx.ledger(&user).await?;
        ensure!(entries_of(&ledger, &id).is_empty(), "a rejected order left ledger entries: {ledger:?}");
    }
    Ok(())
}

pub async fn an_order_naming_an_unknown_product_is_422_and_records_nothing(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    ctx.top_up(&user, 10_000).await?;
    for items in [
        json!([{"product_id": "sku-does-not-exist", "quantity": 1}]),
        json!([{"product_id": "sku-coffee", "quantity": 1}, {"product_id": "sku-nope", "quantity": 1}]),
    ] {
        ctx.place(&user, items, None).await?.problem(422, "unknown_product")?;
    }
    same(&json!(ctx.balance(&user).await?), &json!(10_000), "the wallet")?;
    ensure!(ctx.orders(&user).await?.is_empty(), "a refused order was recorded");
    Ok(())
}

pub async fn order_items_and_quantities_are_validated_field_by_field(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    ctx.top_up(&user, 100_000).await?;
    let tea = |q: Value| json!({"product_id": "sku-tea", "quantity": q});
    let many: Vec<Value> = (0..51).map(|i| json!({"product_id": format!("sku-{i}"), "quantity": 1})).collect();
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!([]), vec!["items"]),
        (Value::Array(many), vec!["items"]),
        (json!("sku-tea"), vec!["items"]),
        (json!(null), vec!["items"]),
        (json!([tea(json!(0))]), vec!["items[0].quantity"]),
        (json!([tea(json!(101))]), vec!["items[0].quantity"]),
        (json!([tea(json!(-3))]), vec!["items[0].quantity"]),
        (json!([tea(json!(1.5))]), vec!["items[0].quantity"]),
        (json!([tea(json!("2"))]), vec!["items[0].quantity"]),
        (json!([{"product_id": "sku-tea"}]), vec!["items[0].quantity"]),
        (json!([{"quantity": 1}]), vec!["items[0].product_id"]),
        (json!([{"product_id": 7, "quantity": 1}]), vec!["items[0].product_id"]),
        (json!(["sku-tea"]), vec!["items[0]"]),
        (
            json!([tea(json!(0)), {"product_id": "sku-mug", "quantity": 101}]),
            vec!["items[0].quantity", "items[1].quantity"],
        ),
    ];
    for (items, fields) in cases {
        let res = ctx.place(&user, items.clone(), None).await?;
        res.invalid(&fields).map_err(|e| e.context(format!("items {items}")))?;
    }
    ctx.post("/v1/orders").user(&user).json(&json!({})).send().await?.invalid(&["items"])?;
    // A product twice: docs/api.md does not say which occurrence is to blame.
    let res = ctx.place(&user, json!([tea(json!(1)), tea(json!(2))]), None).await?;
    let listed = error_fields(res.problem(400, "validation_failed")?);
    ensure!(listed.iter().any(|f| f.starts_with("items")), "a repeated product must be blamed on items: {listed:?}");
    same(&json!(ctx.balance(&user).await?), &json!(100_000), "the wallet")?;
    ensure!(ctx.orders(&user).await?.is_empty(), "an invalid order was recorded");
    Ok(())
}

pub async fn the_item_and_quantity_bounds_are_inclusive(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    // Fifty distinct items pass validation (then name unknown products:
    // the seeded catalog has only eight).
    let fifty: Vec<Value> = (0..50).map(|i| json!({"product_id": format!("sku-unknown-{i}"), "quantity": 1})).collect();
    ctx.place(&user, Value::Array(fifty), None).await?.problem(422, "unknown_product")?;
    let chocolate = ctx.price("sku-chocolate").await?;
    ctx.top_up(&user, 100 * chocolate).await?;
    let order = ctx.place_ok(&user, json!([{"product_id": "sku-chocolate", "quantity": 100}])).await?;
    same(&order["status"], &json!("confirmed"), "status")?;
    same(&order["total_cents"], &json!(100 * chocolate), "total_cents")?;
    let eight: Vec<Value> = SEEDED.iter().map(|p| json!({"product_id": p, "quantity": 1})).collect();
    let order = ctx.place_ok(&user, Value::Array(eight)).await?;
    ensure!(order["items"].as_array().map(Vec::len) == Some(8), "eight lines expected: {}", order["items"]);
    Ok(())
}

pub async fn an_order_without_a_shipping_address_is_422_address_required(ctx: &Ctx) -> Result<()> {
    let user = ctx.user_without_address().await?;
    ctx.top_up(&user, 10_000).await?;
    let res = ctx.place(&user, json!([{"product_id": "sku-tea", "quantity": 1}]), None).await?;
    res.problem(422, "address_required")?;
    same(&json!(ctx.balance(&user).await?), &json!(10_000), "the wallet")?;
    ensure!(ctx.orders(&user).await?.is_empty(), "a refused order was recorded");
    Ok(())
}

pub async fn another_users_unknown_and_malformed_order_ids_are_404_not_found(ctx: &Ctx) -> Result<()> {
    let (owner, other) = (ctx.user().await?, ctx.user().await?);
    ctx.top_up(&owner, 10_000).await?;
    ctx.top_up(&other, 10_000).await?;
    let order = ctx.place_ok(&owner, json!([{"product_id": "sku-mug", "quantity": 1}])).await?;
    let id = id_of(&order)?;
    let cases = [
        (&other, id.clone()),
        (&owner, Uuid::now_v7().to_string()),
        (&owner, "not-a-uuid".to_owned()),
        (&owner, "123".to_owned()),
        (&owner, id.to_uppercase().replace('-', "x")),
    ];
    for (who, path) in cases {
        ctx.get(&format!("/v1/orders/{path}")).user(who).send().await?.problem(404, "not_found")?;
        ctx.post(&format!("/v1/orders/{path}/cancel")).user(who).send().await?.problem(404, "not_found")?;
    }
    same(&ctx.order(&owner, &id).await?, &order, "the order after another user's attempts")?;
    same(&json!(ctx.balance(&owner).await?), &json!(10_000 - order["total_cents"].as_i64().unwrap_or(0)), "wallet")
}

pub async fn orders_list_newest_first_across_pages(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    ctx.top_up(&user, 10_000).await?;
    let mut placed = Vec::new();
    for _ in 0..5 {
        placed.push(ctx.place_ok(&user, json!([{"product_id": "sku-filter", "quantity": 1}])).await?);
    }
    placed.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut sizes = Vec::new();
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/v1/orders?limit=2&cursor={c}"),
            None => "/v1/orders?limit=2".to_owned(),
        };
        let res = ctx.get(&path).user(&user).send().await?;
        let (items, next) = schema::page(res.ok(200)?, schema::order)?;
        sizes.push(items.len());
        seen.extend(items.iter().cloned());
        match next {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    ensure!(sizes == [2, 2, 1], "pages of 2, 2, 1 expected, got {sizes:?}");
    same(&Value::Array(seen), &Value::Array(placed.clone()), "the orders, newest first, as placed")?;
    let res = ctx.get("/v1/orders").user(&user).send().await?;
    let (items, next) = schema::page(res.ok(200)?, schema::order)?;
    ensure!(items.len() == 5 && next.is_none(), "one default page of 5 with a null cursor");
    schema::newest_first(items, "orders").context("the default page")
}
