//! `POST /v1/sessions` and the bearer token every 🔒 endpoint requires.

use anyhow::{Result, ensure};
use serde_json::{Value, json};
use twinshop_client::Method;
use uuid::Uuid;

use crate::{
    ctx::{Ctx, PASSWORD, same},
    schema,
    token::{self, Jwt},
};

pub async fn logging_in_answers_a_bearer_eddsa_jwt_for_the_user(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    let res = ctx.post("/v1/sessions").json(&json!({"email": user.email, "password": PASSWORD})).send().await?;
    let session = res.ok(200)?;
    let token = schema::string(session, "access_token", "session")?;
    ensure!(schema::string(session, "token_type", "session")? == "Bearer", "token_type must be \"Bearer\"");
    let expires_in = schema::integer(session, "expires_in", "session")?;
    ensure!(expires_in > 0, "expires_in must be positive, got {expires_in}");

    let jwt = Jwt::parse(token)?;
    same(&jwt.header["alg"], &json!("EdDSA"), "the JWT alg")?;
    same(&jwt.claims["sub"], &json!(user.id), "the JWT sub")?;
    same(&jwt.claims["iss"], &json!("twinshop"), "the JWT iss")?;
    let iat = schema::integer(&jwt.claims, "iat", "claims")?;
    let exp = schema::integer(&jwt.claims, "exp", "claims")?;
    ensure!((exp - iat - expires_in).abs() <= 1, "exp - iat ({}) must be expires_in ({expires_in})", exp - iat);
    // The fresh token works.
    let me = ctx.get("/v1/users/me").token(token).send().await?;
    same(&me.ok(200)?["id"], &json!(user.id), "the token's user")
}

pub async fn a_wrong_password_and_an_unknown_email_get_the_same_invalid_credentials(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    let attempts = [
        json!({"email": user.email, "password": "wrong password, long enough"}),
        json!({"email": ctx.unique_email(), "password": PASSWORD}),
        json!({"email": user.email.to_uppercase(), "password": "wrong password, long enough"}),
    ];
    let mut bodies = Vec::new();
    for attempt in &attempts {
        let res = ctx.post("/v1/sessions").json(attempt).send().await?;
        let mut body = res.problem(401, "invalid_credentials")?.clone();
        // RFC 9457's `instance`, if any, names the request, not the cause.
        if let Some(obj) = body.as_object_mut() {
            obj.remove("instance");
        }
        bodies.push(body);
    }
    ensure!(bodies.iter().all(|b| *b == bodies[0]), "the answers differ, telling which part was wrong: {bodies:?}");
    Ok(())
}

pub async fn logging_in_without_email_or_password_is_validation_failed(ctx: &Ctx) -> Result<()> {
    ctx.post("/v1/sessions").json(&json!({})).send().await?.invalid(&["email", "password"])?;
    ctx.post("/v1/sessions").json(&json!({"email": ctx.unique_email()})).send().await?.invalid(&["password"])?;
    ctx.post("/v1/sessions").json(&json!({"email": 5, "password": PASSWORD})).send().await?.invalid(&["email"])?;
    Ok(())
}

/// Every 🔒 endpoint, with a body where it takes one.
fn protected() -> Vec<(Method, String, Option<Value>)> {
    let some = Uuid::now_v7();
    vec![
        (Method::GET, "/v1/users/me".into(), None),
        (Method::PATCH, "/v1/users/me".into(), Some(json!({"name": "Mallory"}))),
        (Method::GET, "/v1/wallet".into(), None),
        (Method::POST, "/v1/wallet/top-ups".into(), Some(json!({"amount_cents": 100}))),
        (Method::GET, "/v1/payments".into(), None),
        (Method::POST, "/v1/orders".into(), Some(json!({"items": [{"product_id": "sku-tea", "quantity": 1}]}))),
        (Method::GET, "/v1/orders".into(), None),
        (Method::GET, format!("/v1/orders/{some}"), None),
        (Method::POST, format!("/v1/orders/{some}/cancel"), None),
    ]
}

pub async fn every_protected_endpoint_without_a_token_is_401_unauthorized(ctx: &Ctx) -> Result<()> {
    for (method, path, body) in protected() {
        let mut req = ctx.request(method, &path);
        if let Some(body) = &body {
            req = req.json(body);
        }
        req.send().await?.problem(401, "unauthorized")?;
    }
    Ok(())
}

pub async fn malformed_tampered_and_unsigned_tokens_are_401_unauthorized(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    let other = ctx.user().await?;
    let jwt = Jwt::parse(&user.token)?;
    let other_jwt = Jwt::parse(&other.token)?;
    let unsigned = format!("{}.{}.", token::encode(br#"{"alg":"none","typ":"JWT"}"#), jwt.parts[1]);
    let bad = [
        ("a token that is not a JWT", "Bearer not-a-jwt".to_owned()),
        ("an empty bearer token", "Bearer ".to_owned()),
        ("the token without the Bearer scheme", user.token.clone()),
        ("another scheme", format!("Basic {}", token::encode(b"user:password"))),
        ("a broken signature", format!("Bearer {}", jwt.with_broken_signature())),
        ("another user's claims under this signature", format!("Bearer {}", jwt.with_claims_of(&other_jwt))),
        ("alg none without a signature", format!("Bearer {unsigned}")),
        ("a header claiming HS256", format!("Bearer {}", jwt.with_header(&json!({"alg": "HS256", "typ": "JWT"})))),
    ];
    for (what, authorization) in &bad {
        for (method, path, body) in protected() {
            let mut req = ctx.request(method, &path).header("authorization", authorization);
            if let Some(body) = &body {
                req = req.json(body);
            }
            let res = req.send().await?;
            res.problem(401, "unauthorized").map_err(|e| e.context(format!("with {what}")))?;
        }
    }
    // Nothing those requests carried had any effect.
    ensure!(ctx.balance(&user).await? == 0 && ctx.balance(&other).await? == 0, "a bad token topped up a wallet");
    same(&ctx.me(&user).await?["name"], &json!(user.name), "the name after bad PATCHes")
}
