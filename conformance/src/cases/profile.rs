//! `GET` and `PATCH /v1/users/me`.

use anyhow::Result;
use serde_json::{Value, json};

use crate::{
    ctx::{Ctx, address, other_address, same},
    schema,
};

pub async fn the_profile_is_the_registered_user_with_zero_stats(ctx: &Ctx) -> Result<()> {
    let email = ctx.unique_email();
    let body = json!({"email": email, "password": crate::ctx::PASSWORD, "name": "Grace Profile", "address": address()});
    let res = ctx.post("/v1/users").json(&body).send().await?;
    let created = res.ok(201)?.clone();
    let token = ctx.login(&email, crate::ctx::PASSWORD).await?;
    let res = ctx.get("/v1/users/me").token(&token).send().await?;
    let me = res.ok(200)?;
    schema::me(me)?;
    for field in ["id", "email", "name", "address", "created_at"] {
        same(&me[field], &created[field], field)?;
    }
    same(&me["stats"], &json!({"orders_confirmed": 0, "total_spent_cents": 0}), "stats")
}

pub async fn patching_name_and_address_changes_only_those(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    let before = ctx.me(&user).await?;
    let patch = |body: Value| ctx.patch("/v1/users/me").user(&user).json(&body).send();

    let res = patch(json!({"name": "Renamed Buyer"})).await?;
    let after = res.ok(200)?;
    schema::user(after)?;
    same(&after["name"], &json!("Renamed Buyer"), "name")?;
    same(&after["address"], &before["address"], "address after a name change")?;

    let res = patch(json!({"address": other_address()})).await?;
    let after = res.ok(200)?;
    schema::user(after)?;
    same(&after["address"], &other_address(), "address")?;
    same(&after["name"], &json!("Renamed Buyer"), "name after an address change")?;

    // An empty change, and fields that are not patchable, change nothing.
    let res = patch(json!({"email": ctx.unique_email(), "id": "00000000-0000-7000-8000-000000000000"})).await?;
    let after = res.ok(200)?;
    schema::user(after)?;
    let me = ctx.me(&user).await?;
    for field in ["id", "email", "created_at"] {
        same(&me[field], &before[field], field)?;
        same(&after[field], &before[field], field)?;
    }
    same(&me["name"], &json!("Renamed Buyer"), "name read back")?;
    same(&me["address"], &other_address(), "address read back")
}

pub async fn an_address_set_to_null_is_removed_and_orders_then_require_one(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    ctx.top_up(&user, 10_000).await?;
    let res = ctx.patch("/v1/users/me").user(&user).json(&json!({"address": null})).send().await?;
    let after = res.ok(200)?;
    schema::user(after)?;
    same(&after["address"], &Value::Null, "address")?;
    same(&after["name"], &json!(user.name), "name")?;
    same(&ctx.me(&user).await?["address"], &Value::Null, "address read back")?;

    let items = json!([{"product_id": "sku-tea", "quantity": 1}]);
    ctx.place(&user, items.clone(), None).await?.problem(422, "address_required")?;
    same(&json!(ctx.balance(&user).await?), &json!(10_000), "balance after a refused order")?;

    // A new address is where the next order ships.
    ctx.patch("/v1/users/me").user(&user).json(&json!({"address": other_address()})).send().await?.ok(200)?;
    let order = ctx.place_ok(&user, items).await?;
    same(&order["status"], &json!("confirmed"), "status")?;
    same(&order["ship_to"], &json!({"name": user.name, "address": other_address()}), "ship_to")
}

pub async fn bad_profile_changes_are_validation_failed_and_change_nothing(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    let before = ctx.me(&user).await?;
    let cases = [
        (json!({"name": ""}), vec!["name"]),
        (json!({"name": "n".repeat(101)}), vec!["name"]),
        (json!({"name": 5}), vec!["name"]),
        (json!({"address": "Berlin"}), vec!["address"]),
        (
            json!({"name": "Valid Name", "address": {"country": "XX"}}),
            vec!["address.line1", "address.city", "address.postal_code", "address.country"],
        ),
        (
            json!({"name": "", "address": {"line1": "1 A", "city": "B", "postal_code": "1", "country": "ZZ"}}),
            vec!["name", "address.country"],
        ),
    ];
    for (body, fields) in cases {
        let res = ctx.patch("/v1/users/me").user(&user).json(&body).send().await?;
        res.invalid(&fields)?;
    }
    let after = ctx.me(&user).await?;
    same(&after, &before, "the profile after refused changes")
}
