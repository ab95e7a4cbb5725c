//! What is not an endpoint: unknown routes and wrong methods still answer
//! problem+json.

use anyhow::{Result, bail};
use twinshop_client::Method;
use uuid::Uuid;

use crate::ctx::Ctx;

pub async fn unknown_routes_are_404_not_found_problems(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    let internal = format!("/internal/v1/users/{}", user.id);
    let paths = [
        "/",
        "/v1",
        "/v1/nope",
        "/v1/usersX",
        "/v2/products",
        "/v1/products/sku-tea/reviews",
        "/v1/orders/x/y",
        internal.as_str(),
        // Operations endpoints live on internal ports, never on the public one.
        "/livez",
        "/readyz",
        "/metrics",
    ];
    for path in paths {
        ctx.get(path).send().await?.problem(404, "not_found")?;
        ctx.get(path).user(&user).send().await?.problem(404, "not_found")?;
    }
    ctx.post("/v1/nope").json(&serde_json::json!({})).send().await?.problem(404, "not_found")?;
    Ok(())
}

pub async fn a_wrong_method_is_a_404_or_405_problem(ctx: &Ctx) -> Result<()> {
    let user = ctx.user().await?;
    let order = format!("/v1/orders/{}", Uuid::now_v7());
    let cancel = format!("{order}/cancel");
    let wrong = [
        (Method::DELETE, "/v1/wallet"),
        (Method::PUT, "/v1/products"),
        (Method::GET, "/v1/sessions"),
        (Method::DELETE, "/v1/users/me"),
        (Method::GET, "/v1/wallet/top-ups"),
        (Method::PUT, "/v1/orders"),
        (Method::DELETE, order.as_str()),
        (Method::GET, cancel.as_str()),
    ];
    for (method, path) in wrong {
        // The edge answers methods no route knows with 404; a service 405.
        let res = ctx.request(method.clone(), path).user(&user).send().await?;
        match res.status {
            404 => res.problem(404, "not_found")?,
            405 => res.problem(405, "method_not_allowed")?,
            other => bail!("{method} {path}: expected 404 or 405, got {other}: {}", res.text),
        };
    }
    Ok(())
}
