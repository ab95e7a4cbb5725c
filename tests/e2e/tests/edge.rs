//! The edge: the real nginx the launcher starts, configured from the same
//! routing template that the local run, compose and Kubernetes use, in
//! front of the three real services. Needs nginx installed (CI installs
//! it); without it the launcher says so.

use serde_json::{Value, json};
use twinshop_client::Response;
use twinshop_e2e::{Service, Shop, assert_problem, plan};
use twinshop_launcher::Build;

/// A problem the edge or a service answered, with exactly the problem media type.
fn problem(res: &Response, status: u16, code: &str) {
    assert_eq!(res.header("content-type"), Some("application/problem+json"), "{}", res.text());
    assert_problem(res, status, code);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_routes_by_path_and_answers_its_own_errors_as_problem_json() {
    let shop = Shop::start(plan(Build::Microservices, "edge")).await;
    let edge = shop.client();

    // One base URL, three owners.
    let email = format!("{}@example.com", twinshop_testkit::unique_name("edge"));
    let res = edge
        .post("/v1/users")
        .json(&json!({"email": email, "password": "correct horse battery", "name": "Edge",
                      "address": {"line1": "1 A", "city": "B", "postal_code": "1", "country": "FR"}}))
        .send()
        .await
        .expect("register");
    assert_eq!(res.status(), 201);
    let session: Value = edge
        .post("/v1/sessions")
        .json(&json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .expect("login")
        .json()
        .expect("json");
    let user = edge.as_user(session["access_token"].as_str().expect("token"));
    let res = user.get("/v1/wallet").send().await.expect("wallet");
    assert_eq!(res.status(), 200);
    let res = user.get("/v1/payments").send().await.expect("ledger");
    assert_eq!(res.status(), 200);
    let res = user.get("/v1/orders").header("x-request-id", "edge-test-1").send().await.expect("orders");
    assert_eq!(res.status(), 200);
    assert_eq!(res.header("x-request-id"), Some("edge-test-1"), "the request id passes through");

    // A service's own problem passes through untouched.
    let res = user.post("/v1/orders").json(&json!({"items": []})).send().await.expect("order");
    problem(&res, 400, "validation_failed");

    // The storefront: static files from web/shop under /shop/ only (`/` is
    // a 404 below), with its settings from the launcher.
    let res = edge.get("/shop/").send().await.expect("storefront");
    assert_eq!(res.status(), 200);
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(res.text().contains("<title>twinshop</title>"), "{}", res.text());
    let res = edge.get("/shop/app.js").send().await.expect("module");
    assert_eq!(res.header("content-type"), Some("text/javascript; charset=utf-8"));
    let res = edge.get("/shop/config.json").send().await.expect("settings");
    assert_eq!(res.json::<Value>().expect("json"), json!({"jaeger_url": ""}), "no Jaeger UI given to the launcher");
    problem(&edge.get("/shop/missing.js").send().await.expect("missing"), 404, "not_found");

    // The edge's own answers.
    for path in [
        "/",
        "/v1/unknown",
        "/v1/usersX",
        "/internal/v1/users/00000000-0000-0000-0000-000000000000",
        "/readyz",
        "/metrics",
    ] {
        let res = edge.get(path).send().await.expect("get");
        problem(&res, 404, "not_found");
    }
    // Nor the payment service's gRPC API: it is on the internal port only.
    let grpc = edge.post("/twinshop.payment.v1.Payments/Charge").body(Some("application/grpc"), "").send().await;
    problem(&grpc.expect("post"), 404, "not_found");
    // TRACE: 405 with the route's methods on a documented route, 404
    // elsewhere; the edge never echoes a request back. (CONNECT takes an
    // authority, not a path, from an HTTP client like this one; the edge's
    // own test in tests/deploy sends it with a path.)
    let trace = twinshop_client::Method::TRACE;
    let res = user.request(trace.clone(), "/v1/wallet").send().await.expect("wallet");
    problem(&res, 405, "method_not_allowed");
    assert_eq!(res.header("allow"), Some("GET,HEAD"), "{}", res.text());
    let res = edge.request(trace, "/v1/unknown").send().await.expect("unknown");
    problem(&res, 404, "not_found");
    let big = "x".repeat(70 * 1024);
    let res = edge.post("/v1/users").body(Some("application/json"), big).send().await.expect("post");
    problem(&res, 413, "payload_too_large");

    shop.kill(Service::Payment).await;
    let res = user.get("/v1/wallet").send().await.expect("wallet");
    problem(&res, 503, "dependency_unavailable");

    shop.start_again(Service::Payment).await;
    shop.stop().await;
}
