//! The user lookup, `GET /internal/v1/users/{id}` (docs/api.md, "Internal
//! contracts"): what the order service asks for every order.

use anyhow::{Result, ensure};
use serde_json::{Value, json};

use super::InternalCtx;
use crate::{
    ctx::{address, other_address, same},
    schema,
};

/// A lookup answer: exactly `{id, name, address}`, `address` an address
/// object or `null`.
fn lookup_body(answer: &crate::ctx::Answer) -> Result<&Value> {
    let body = answer.ok(200)?;
    let fields = schema::object(body, "user lookup")?;
    for name in ["id", "name", "address"] {
        ensure!(fields.contains_key(name), "{}: no {name:?} in {body}", answer.request);
    }
    schema::id(body, "id", "user lookup")?;
    schema::string(body, "name", "user lookup")?;
    if !body["address"].is_null() {
        schema::address(&body["address"], "user lookup address")?;
    }
    Ok(body)
}

pub async fn the_lookup_answers_a_registered_users_id_name_and_address(ctx: &InternalCtx) -> Result<()> {
    let user = ctx.public.user_with("Lookup Buyer", address()).await?;
    let answer = ctx.look_up(&user.id).await?;
    let body = lookup_body(&answer)?;
    same(&body["id"], &json!(user.id), "the lookup's id")?;
    same(&body["name"], &json!("Lookup Buyer"), "the lookup's name")?;
    same(&body["address"], &user.address, "the lookup's address (as registration answered it)")?;
    // A second lookup (now perhaps from a cache) says the same.
    let again = ctx.look_up(&user.id).await?;
    same(lookup_body(&again)?, body, "a repeated lookup")
}

pub async fn the_lookup_of_a_user_without_an_address_has_a_null_address(ctx: &InternalCtx) -> Result<()> {
    let user = ctx.public.user_without_address().await?;
    let answer = ctx.look_up(&user.id).await?;
    let body = lookup_body(&answer)?;
    same(&body["id"], &json!(user.id), "the lookup's id")?;
    same(&body["address"], &Value::Null, "the lookup's address")
}

pub async fn the_lookup_follows_a_profile_update_at_once(ctx: &InternalCtx) -> Result<()> {
    let user = ctx.public.user_with("Before Update", address()).await?;
    // Looked up first, so a cache (docs/design.md §2) holds the old entry.
    lookup_body(&ctx.look_up(&user.id).await?)?;
    let res = ctx
        .public
        .patch("/v1/users/me")
        .user(&user)
        .json(&json!({"name": "After Update", "address": other_address()}))
        .send()
        .await?;
    let updated = res.ok(200)?.clone();
    // The cache entry is deleted once the update commits, before it is
    // answered: the very next lookup sees the change.
    let body = lookup_body(&ctx.look_up(&user.id).await?)?.clone();
    same(&body["name"], &json!("After Update"), "the lookup's name after PATCH /v1/users/me")?;
    same(&body["address"], &updated["address"], "the lookup's address after PATCH /v1/users/me")?;
    let res = ctx.public.patch("/v1/users/me").user(&user).json(&json!({"address": null})).send().await?;
    res.ok(200)?;
    let body = lookup_body(&ctx.look_up(&user.id).await?)?.clone();
    same(&body["address"], &Value::Null, "the lookup's address after it was removed")
}

pub async fn the_lookup_of_an_unknown_or_malformed_id_is_404_not_found(ctx: &InternalCtx) -> Result<()> {
    let unknown = uuid::Uuid::now_v7().to_string();
    for id in [unknown.as_str(), "not-a-uuid", "00000000-0000-0000-0000-000000000000"] {
        ctx.look_up(id).await?.problem(404, "not_found")?;
    }
    Ok(())
}
