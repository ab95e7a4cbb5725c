//! The microservices build end to end: the journey, idempotency, concurrency
//! and every bad input of the order API, through the three real processes.

use std::time::Duration;

use serde_json::{Value, json};
use twinshop_e2e::{Options, Stack, Svc};
use twinshop_testkit::eventually;

const COFFEE: i64 = 1890;

async fn assert_problem(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status(), status);
    let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["code"], code, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journey_from_registration_to_refund_keeps_every_cent() {
    let stack = Stack::start(Options::default()).await;
    let (token, _) = stack.user(true).await;
    stack.top_up(&token, 10_000).await;

    let res = stack.place(&token, json!([{"product_id": "sku-coffee", "quantity": 2}]), None).await.expect("place");
    assert_eq!(res.status(), 201);
    let order: Value = res.json().await.expect("json");
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["total_cents"], 2 * COFFEE);
    assert_eq!(order["items"][0]["unit_price_cents"], COFFEE, "prices come from the catalog");
    assert_eq!(order["ship_to"]["name"], "Test Buyer");
    assert_eq!(order["ship_to"]["address"]["country"], "DE");
    assert_eq!(order["rejection_reason"], Value::Null);
    assert_eq!(order["refund_status"], Value::Null);
    assert_eq!(stack.balance(&token).await, 10_000 - 2 * COFFEE);

    let stats = eventually("stats count the confirmed order", Duration::from_secs(10), || async {
        let me = stack.me(&token).await;
        (me["stats"]["orders_confirmed"] == 1).then_some(me["stats"].clone())
    })
    .await;
    assert_eq!(stats["total_spent_cents"], 2 * COFFEE);

    let id = order["id"].as_str().expect("id");
    let res = stack
        .client
        .post(format!("{}/v1/orders/{id}/cancel", stack.url(Svc::Order)))
        .bearer_auth(&token)
        .send()
        .await
        .expect("cancel");
    assert_eq!(res.status(), 200);
    let cancelled: Value = res.json().await.expect("json");
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["refund_status"] == "pending" || cancelled["refund_status"] == "refunded");
    let again = stack
        .client
        .post(format!("{}/v1/orders/{id}/cancel", stack.url(Svc::Order)))
        .bearer_auth(&token)
        .send()
        .await
        .expect("cancel");
    assert_eq!(again.status(), 200, "cancelling a cancelled order returns it unchanged");

    eventually("the refund arrives", Duration::from_secs(10), || async {
        (stack.order(&token, id).await["refund_status"] == "refunded").then_some(())
    })
    .await;
    assert_eq!(stack.balance(&token).await, 10_000);
    eventually("stats no longer count the cancelled order", Duration::from_secs(10), || async {
        let me = stack.me(&token).await;
        (me["stats"] == json!({"orders_confirmed": 0, "total_spent_cents": 0})).then_some(())
    })
    .await;
    stack.assert_settled_and_conserved(Duration::from_secs(10)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_funds_rejects_the_order_and_charges_nothing() {
    let stack = Stack::start(Options::default()).await;
    let (token, _) = stack.user(true).await;
    stack.top_up(&token, 1_000).await;
    let res = stack.place(&token, json!([{"product_id": "sku-grinder", "quantity": 1}]), None).await.expect("place");
    assert_eq!(res.status(), 201, "insufficient funds is not an error");
    let order: Value = res.json().await.expect("json");
    assert_eq!(order["status"], "rejected");
    assert_eq!(order["rejection_reason"], "insufficient_funds");
    assert_eq!(stack.balance(&token).await, 1_000);
    let id = order["id"].as_str().expect("id");
    let res = stack
        .client
        .post(format!("{}/v1/orders/{id}/cancel", stack.url(Svc::Order)))
        .bearer_auth(&token)
        .send()
        .await
        .expect("cancel");
    assert_problem(res, 409, "order_not_cancellable").await;
    stack.assert_settled_and_conserved(Duration::from_secs(10)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_sent_twice_or_concurrently_makes_one_order_and_one_charge() {
    let stack = Stack::start(Options::default()).await;
    let (token, _) = stack.user(true).await;
    stack.top_up(&token, 100_000).await;
    let items = json!([{"product_id": "sku-tea", "quantity": 3}]);

    let first = stack.place(&token, items.clone(), Some("key-1")).await.expect("place");
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    let second = stack.place(&token, items.clone(), Some("key-1")).await.expect("place");
    assert_eq!(second.status(), 201);
    assert_eq!(second.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    assert_eq!(second.json::<Value>().await.expect("json"), first, "the same body");
    let reused =
        stack.place(&token, json!([{"product_id": "sku-tea", "quantity": 4}]), Some("key-1")).await.expect("place");
    assert_problem(reused, 422, "idempotency_key_reused").await;

    let attempts = (0..10).map(|_| stack.place(&token, items.clone(), Some("key-concurrent")));
    let answers = futures_util::future::join_all(attempts).await;
    let mut ids = std::collections::HashSet::new();
    for res in answers {
        let res = res.expect("place");
        match res.status().as_u16() {
            201 => {
                let body: Value = res.json().await.expect("json");
                ids.insert(body["id"].as_str().expect("id").to_owned());
            }
            409 => {
                assert_problem(res, 409, "idempotency_key_in_use").await;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ids.len(), 1, "every successful answer names the same order");
    let payments = stack.db(Svc::Payment).await;
    let (charges,): (i64,) = sqlx::query_as("SELECT count(*) FROM ledger_entries WHERE kind = 'charge'")
        .fetch_one(&payments)
        .await
        .expect("count");
    assert_eq!(charges, 2, "one charge for key-1, one for key-concurrent");
    assert_eq!(stack.balance(&token).await, 100_000 - 2 * 3 * 650);
    stack.assert_settled_and_conserved(Duration::from_secs(10)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_orders_on_a_wallet_funded_for_ten_confirm_exactly_ten() {
    let stack = Stack::start(Options::default()).await;
    let (token, _) = stack.user(true).await;
    stack.top_up(&token, 10 * 290).await;
    let attempts = (0..50).map(|_| stack.place(&token, json!([{"product_id": "sku-chocolate", "quantity": 1}]), None));
    let answers = futures_util::future::join_all(attempts).await;
    let mut confirmed = 0;
    let mut rejected = 0;
    for res in answers {
        let res = res.expect("place");
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.expect("json");
        match body["status"].as_str() {
            Some("confirmed") => confirmed += 1,
            Some("rejected") => rejected += 1,
            other => panic!("unexpected status {other:?}"),
        }
    }
    assert_eq!((confirmed, rejected), (10, 40));
    assert_eq!(stack.balance(&token).await, 0);
    stack.assert_settled_and_conserved(Duration::from_secs(10)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_order_input_gets_the_exact_status_and_code() {
    let stack = Stack::start(Options::default()).await;
    let (token, _) = stack.user(true).await;
    stack.top_up(&token, 100_000).await;
    let order_url = format!("{}/v1/orders", stack.url(Svc::Order));

    let res = stack.place(&token, json!([{"product_id": "sku-nope", "quantity": 1}]), None).await.expect("place");
    assert_problem(res, 422, "unknown_product").await;
    for (items, field) in [
        (json!([]), "items"),
        (json!([{"product_id": "sku-tea", "quantity": 0}]), "items[0].quantity"),
        (json!([{"product_id": "sku-tea", "quantity": 101}]), "items[0].quantity"),
        (json!([{"product_id": "sku-tea", "quantity": "2"}]), "items[0].quantity"),
        (json!([{"product_id": "sku-tea", "quantity": 1.5}]), "items[0].quantity"),
        (json!([{"product_id": "sku-tea", "quantity": -3}]), "items[0].quantity"),
        (json!([{"quantity": 1}]), "items[0].product_id"),
        (
            json!([{"product_id": "sku-tea", "quantity": 1}, {"product_id": "sku-tea", "quantity": 1}]),
            "items[1].product_id",
        ),
        (json!(["sku-tea"]), "items[0]"),
        (json!("sku-tea"), "items"),
    ] {
        let res = stack.place(&token, items.clone(), None).await.expect("place");
        let body = assert_problem(res, 400, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], field, "{items}");
    }
    let many: Vec<Value> = (0..51).map(|i| json!({"product_id": format!("p{i}"), "quantity": 1})).collect();
    let res = stack.place(&token, Value::Array(many), None).await.expect("place");
    assert_problem(res, 400, "validation_failed").await;
    let res = stack
        .client
        .post(&order_url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("post");
    assert_problem(res, 400, "malformed_json").await;
    let res = stack.client.post(&order_url).bearer_auth(&token).body("items").send().await.expect("post");
    assert_problem(res, 415, "unsupported_media_type").await;
    let res = stack.client.post(&order_url).json(&json!({"items": []})).send().await.expect("post");
    assert_problem(res, 401, "unauthorized").await;
    let res = stack
        .client
        .post(&order_url)
        .bearer_auth(&token)
        .header("Idempotency-Key", "has space")
        .json(&json!({"items": [{"product_id": "sku-tea", "quantity": 1}]}))
        .send()
        .await
        .expect("post");
    assert_problem(res, 400, "validation_failed").await;

    // Ids: malformed, unknown, and another user's are all 404.
    let placed: Value = stack
        .place(&token, json!([{"product_id": "sku-tea", "quantity": 1}]), None)
        .await
        .expect("place")
        .json()
        .await
        .expect("json");
    let id = placed["id"].as_str().expect("id");
    let (other, _) = stack.user(true).await;
    for (who, path) in
        [(&token, "not-a-uuid".to_owned()), (&token, uuid::Uuid::now_v7().to_string()), (&other, id.to_owned())]
    {
        let res = stack.client.get(format!("{order_url}/{path}")).bearer_auth(who).send().await.expect("get");
        assert_problem(res, 404, "not_found").await;
        let res =
            stack.client.post(format!("{order_url}/{path}/cancel")).bearer_auth(who).send().await.expect("cancel");
        assert_problem(res, 404, "not_found").await;
    }
    for bad in ["limit=0", "limit=101", "limit=x", "cursor=nope"] {
        let res = stack.client.get(format!("{order_url}?{bad}")).bearer_auth(&token).send().await.expect("list");
        assert_problem(res, 400, "validation_failed").await;
    }

    let (no_address, _) = stack.user(false).await;
    let res = stack.place(&no_address, json!([{"product_id": "sku-tea", "quantity": 1}]), None).await.expect("place");
    assert_problem(res, 422, "address_required").await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_list_newest_first_across_pages_and_the_catalog_is_public() {
    let stack = Stack::start(Options::default()).await;
    let res = stack.client.get(format!("{}/v1/products", stack.url(Svc::Order))).send().await.expect("products");
    assert_eq!(res.status(), 200);
    let products: Value = res.json().await.expect("json");
    assert!(products["items"].as_array().is_some_and(|a| a.len() >= 5));
    assert!(
        products["items"].as_array().expect("items").iter().all(|p| p["price_cents"].as_i64().is_some_and(|c| c > 0))
    );

    let (token, _) = stack.user(true).await;
    stack.top_up(&token, 100_000).await;
    let mut placed = Vec::new();
    for _ in 0..5 {
        let body: Value = stack
            .place(&token, json!([{"product_id": "sku-filter", "quantity": 1}]), None)
            .await
            .expect("place")
            .json()
            .await
            .expect("json");
        placed.push(body["id"].as_str().expect("id").to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/v1/orders?limit=2", stack.url(Svc::Order));
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value =
            stack.client.get(url).bearer_auth(&token).send().await.expect("list").json().await.expect("json");
        for item in page["items"].as_array().expect("items") {
            seen.push(item["id"].as_str().expect("id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    placed.reverse();
    assert_eq!(seen, placed, "newest first, every order exactly once");
    stack.stop().await;
}
