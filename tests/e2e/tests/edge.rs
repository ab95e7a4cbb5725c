//! The edge: the real nginx, configured from the same routing template that
//! the local run, compose and Kubernetes use, in front of the three real
//! services. Needs nginx installed (CI installs it); without it the test
//! fails with a message saying so.

use serde_json::{Value, json};
use twinshop_e2e::{Edge, Options, Stack, Svc};

async fn problem(res: reqwest::Response, status: u16, code: &str) {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/problem+json"));
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["code"], code, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_routes_by_path_and_answers_its_own_errors_as_problem_json() {
    let mut stack = Stack::start(Options::default()).await;
    let edge =
        Edge::start(&stack.public_addr(Svc::User), &stack.public_addr(Svc::Payment), &stack.public_addr(Svc::Order))
            .await;
    let base = edge.url();
    let client = stack.client.clone();

    // One base URL, three owners.
    let email = format!("{}@example.com", twinshop_testkit::unique_name("edge"));
    let res = client
        .post(format!("{base}/v1/users"))
        .json(&json!({"email": email, "password": "correct horse battery", "name": "Edge",
                      "address": {"line1": "1 A", "city": "B", "postal_code": "1", "country": "FR"}}))
        .send()
        .await
        .expect("register");
    assert_eq!(res.status(), 201);
    let session: Value = client
        .post(format!("{base}/v1/sessions"))
        .json(&json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = session["access_token"].as_str().expect("token").to_owned();
    let res = client.get(format!("{base}/v1/wallet")).bearer_auth(&token).send().await.expect("wallet");
    assert_eq!(res.status(), 200);
    let res = client.get(format!("{base}/v1/payments")).bearer_auth(&token).send().await.expect("ledger");
    assert_eq!(res.status(), 200);
    let res = client
        .get(format!("{base}/v1/orders"))
        .bearer_auth(&token)
        .header("x-request-id", "edge-test-1")
        .send()
        .await
        .expect("orders");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("x-request-id").and_then(|v| v.to_str().ok()),
        Some("edge-test-1"),
        "the request id passes through"
    );

    // A service's own problem passes through untouched.
    let res = client
        .post(format!("{base}/v1/orders"))
        .bearer_auth(&token)
        .json(&json!({"items": []}))
        .send()
        .await
        .expect("order");
    problem(res, 400, "validation_failed").await;

    // The edge's own answers.
    for path in [
        "/",
        "/v1/unknown",
        "/v1/usersX",
        "/internal/v1/users/00000000-0000-0000-0000-000000000000",
        "/readyz",
        "/metrics",
    ] {
        let res = client.get(format!("{base}{path}")).send().await.expect("get");
        problem(res, 404, "not_found").await;
    }
    let big = "x".repeat(70 * 1024);
    let res = client
        .post(format!("{base}/v1/users"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("post");
    problem(res, 413, "payload_too_large").await;

    stack.kill(Svc::Payment);
    let res = client.get(format!("{base}/v1/wallet")).bearer_auth(&token).send().await.expect("wallet");
    problem(res, 503, "dependency_unavailable").await;

    drop(edge);
    stack.spawn(Svc::Payment).await;
    stack.stop().await;
}
