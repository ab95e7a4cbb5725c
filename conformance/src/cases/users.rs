//! `POST /v1/users`, and the body rules every JSON endpoint shares
//! (malformed JSON, media type, size limit, unknown fields).

use anyhow::{Result, ensure};
use serde_json::{Value, json};

use crate::{
    ctx::{Ctx, PASSWORD, Req, User, address, same},
    schema,
};

fn register_body(ctx: &Ctx) -> Value {
    json!({"email": ctx.unique_email(), "password": PASSWORD, "name": "Ada Conformance", "address": address()})
}

pub async fn registering_answers_201_with_every_user_field_and_no_password(ctx: &Ctx) -> Result<()> {
    let body = register_body(ctx);
    let res = ctx.post("/v1/users").json(&body).send().await?;
    let user = res.ok(201)?;
    schema::user(user)?;
    same(&user["email"], &body["email"], "email")?;
    same(&user["name"], &body["name"], "name")?;
    same(&user["address"], &address(), "address")?;
    ensure!(!res.text.contains(PASSWORD), "the answer echoes the password");
    Ok(())
}

pub async fn registering_without_an_address_gives_a_null_address(ctx: &Ctx) -> Result<()> {
    let body = json!({"email": ctx.unique_email(), "password": PASSWORD, "name": "No Address"});
    let user = ctx.post("/v1/users").json(&body).send().await?;
    let user = user.ok(201)?;
    schema::user(user)?;
    same(&user["address"], &Value::Null, "address")
}

pub async fn an_email_registered_in_another_letter_case_is_409_email_taken(ctx: &Ctx) -> Result<()> {
    let mut body = register_body(ctx);
    ctx.post("/v1/users").json(&body).send().await?.ok(201)?;
    ctx.post("/v1/users").json(&body).send().await?.problem(409, "email_taken")?;
    let email = body["email"].as_str().unwrap_or_default().to_owned();
    body["email"] = json!(email.to_uppercase());
    body["name"] = json!("Someone Else");
    ctx.post("/v1/users").json(&body).send().await?.problem(409, "email_taken")?;
    // The first account is untouched.
    ctx.login(&email, PASSWORD).await?;
    Ok(())
}

pub async fn registration_lists_every_missing_or_mistyped_field(ctx: &Ctx) -> Result<()> {
    ctx.post("/v1/users").json(&json!({})).send().await?.invalid(&["email", "password", "name"])?;
    let wrong_types = json!({"email": 5, "password": 12_345_678_901_i64, "name": ["Ada"], "address": "Berlin"});
    ctx.post("/v1/users").json(&wrong_types).send().await?.invalid(&["email", "password", "name", "address"])?;
    let missing_one = json!({"email": ctx.unique_email(), "name": "Ada"});
    let res = ctx.post("/v1/users").json(&missing_one).send().await?;
    let problem = res.invalid(&["password"])?;
    let listed = crate::ctx::error_fields(problem);
    ensure!(listed == ["password"], "only the bad field is listed, got {listed:?}");
    Ok(())
}

pub async fn registration_lists_every_out_of_range_field_including_the_address(ctx: &Ctx) -> Result<()> {
    let body = json!({"email": "not-an-email", "password": "short", "name": ""});
    ctx.post("/v1/users").json(&body).send().await?.invalid(&["email", "password", "name"])?;
    let body = json!({
        "email": ctx.unique_email(),
        "password": "p".repeat(129),
        "name": "n".repeat(101),
        "address": {"line1": "", "country": "XX"},
    });
    let fields = ["password", "name", "address.line1", "address.city", "address.postal_code", "address.country"];
    ctx.post("/v1/users").json(&body).send().await?.invalid(&fields)?;
    let nine = json!({"email": ctx.unique_email(), "password": "123456789", "name": "Ada"});
    ctx.post("/v1/users").json(&nine).send().await?.invalid(&["password"])?;
    Ok(())
}

pub async fn the_password_and_name_length_bounds_are_inclusive(ctx: &Ctx) -> Result<()> {
    // "chars", not bytes: a hundred two-byte characters is a valid name.
    for (password, name) in [("p".repeat(10), "é".repeat(100)), ("p".repeat(128), "A".to_owned())] {
        let email = ctx.unique_email();
        let body = json!({"email": email, "password": password, "name": name});
        let user = ctx.post("/v1/users").json(&body).send().await?;
        same(&user.ok(201)?["name"], &json!(name), "name")?;
        ctx.login(&email, &password).await?;
    }
    Ok(())
}

pub async fn unknown_fields_are_ignored_and_a_charset_is_fine(ctx: &Ctx) -> Result<()> {
    let forged = "00000000-0000-7000-8000-000000000000";
    let mut body = register_body(ctx);
    body["id"] = json!(forged);
    body["created_at"] = json!("1999-01-01T00:00:00Z");
    body["is_admin"] = json!(true);
    body["stats"] = json!({"orders_confirmed": 99, "total_spent_cents": 1});
    body["address"]["planet"] = json!("Mars");
    let res = ctx.post("/v1/users").raw(Some("application/json; charset=utf-8"), body.to_string()).send().await?;
    let user = res.ok(201)?;
    schema::user(user)?;
    ensure!(user["id"] != forged, "the client chose the id");
    ensure!(user["created_at"] != "1999-01-01T00:00:00Z", "the client chose created_at");
    same(&user["address"], &address(), "address")?;
    let token = ctx.login(body["email"].as_str().unwrap_or_default(), PASSWORD).await?;
    let me = ctx.get("/v1/users/me").token(&token).send().await?;
    same(&me.ok(200)?["stats"], &json!({"orders_confirmed": 0, "total_spent_cents": 0}), "stats")
}

/// One request to each endpoint that takes a JSON body (with a token where
/// it needs one), for the body rules all of them share.
fn json_requests<'a>(ctx: &'a Ctx, user: &User) -> Vec<Req<'a>> {
    vec![
        ctx.post("/v1/users"),
        ctx.post("/v1/sessions"),
        ctx.patch("/v1/users/me").user(user),
        ctx.post("/v1/wallet/top-ups").user(user),
        ctx.post("/v1/orders").user(user),
    ]
}

pub async fn bodies_that_are_not_json_objects_are_400_malformed_json(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    for body in ["{", "{\"email\": ", "not json", "", "[]", "[{}]", "\"text\"", "42", "null", "true"] {
        for req in json_requests(ctx, &user) {
            req.raw(Some("application/json"), body).send().await?.problem(400, "malformed_json")?;
        }
    }
    Ok(())
}

pub async fn bodies_without_application_json_are_415_unsupported_media_type(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    let body = register_body(ctx).to_string();
    for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
        for req in json_requests(ctx, &user) {
            req.raw(content_type, body.clone()).send().await?.problem(415, "unsupported_media_type")?;
        }
    }
    Ok(())
}

pub async fn bodies_over_64_kib_are_413_payload_too_large_and_just_under_is_fine(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    // Valid JSON in both, so only the size differs.
    let mut big = register_body(ctx);
    big["padding"] = json!("x".repeat(70 * 1024));
    for req in json_requests(ctx, &user) {
        // A server may close the connection after refusing a body it did not
        // read (RFC 9112 §9.6): keep that connection out of the pool.
        req.header("connection", "close").json(&big).send().await?.problem(413, "payload_too_large")?;
    }
    let mut under = register_body(ctx);
    under["padding"] = json!("x".repeat(60 * 1024));
    ctx.post("/v1/users").json(&under).send().await?.ok(201)?;
    Ok(())
}
