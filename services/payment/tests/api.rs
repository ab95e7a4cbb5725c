//! Black-box tests of the payment service's public HTTP API (wallet,
//! top-ups, ledger), through the app spawned on random ports against real
//! Postgres and RabbitMQ.

mod support;

use std::collections::HashSet;

use serde_json::{Value, json};
use support::{assert_problem, error_fields, new_user, sign, spawn_app};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use twinshop_platform::http::auth::Claims;

#[tokio::test]
async fn a_new_users_wallet_is_empty_and_a_top_up_shows_in_the_balance_and_the_ledger() {
    let app = spawn_app().await;
    let ada = new_user();
    let res = app.get("/v1/wallet", &ada.token).await;
    assert_eq!(res.status(), 200);
    let wallet: Value = res.json().expect("json");
    assert_eq!(wallet, json!({"balance_cents": 0, "currency": "EUR"}));
    assert!(app.ledger(&ada.token).await.is_empty());

    let res = app.top_up_with(&ada.token, &json!({"amount_cents": 2500}), None).await;
    assert_eq!(res.status(), 201);
    assert!(res.headers().get("idempotent-replayed").is_none(), "a first answer is not a replay");
    let top_up: Value = res.json().expect("json");
    let id = top_up["id"].as_str().expect("id");
    assert!(uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 7), "{id}");
    assert_eq!(top_up["amount_cents"], 2500);
    assert_eq!(top_up["balance_cents"], 2500);
    assert_eq!(app.balance(&ada.token).await, 2500);

    let ledger = app.ledger(&ada.token).await;
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    let entry = &ledger[0];
    assert_eq!(entry["id"], id, "the ledger entry is the top-up");
    assert_eq!(entry["kind"], "top_up");
    assert_eq!(entry["amount_cents"], 2500);
    assert_eq!(entry["order_id"], Value::Null, "present, and null for a top-up");
    let created_at = entry["created_at"].as_str().expect("created_at");
    assert!(created_at.ends_with('Z') && OffsetDateTime::parse(created_at, &Rfc3339).is_ok(), "{created_at}");
    app.stop().await;
}

#[tokio::test]
async fn a_user_sees_only_their_own_wallet_and_ledger() {
    let app = spawn_app().await;
    let (ada, bob) = (new_user(), new_user());
    app.top_up(&ada.token, 700).await;
    assert_eq!(app.balance(&bob.token).await, 0);
    assert!(app.ledger(&bob.token).await.is_empty());
    assert_eq!(app.top_up(&bob.token, 5).await["balance_cents"], 5);
    assert_eq!(app.balance(&ada.token).await, 700);
    app.stop().await;
}

#[tokio::test]
async fn repeating_a_top_up_with_the_same_key_and_body_replays_the_answer_without_a_second_effect() {
    let app = spawn_app().await;
    let ada = new_user();
    app.top_up(&ada.token, 100).await;
    let body = json!({"amount_cents": 400, "note": "birthday"});
    let first = app.top_up_with(&ada.token, &body, Some("top-up-1")).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().expect("json");
    assert_eq!(first["balance_cents"], 500);

    // Without the key the same body is simply another top-up.
    let unkeyed = app.top_up_with(&ada.token, &body, None).await;
    assert_eq!(unkeyed.status(), 201);
    assert!(unkeyed.headers().get("idempotent-replayed").is_none());

    // The same body in another spelling (key order, whitespace) is the same request.
    let replay = app
        .client
        .post("/v1/wallet/top-ups")
        .token(&ada.token)
        .idempotency_key(Some("top-up-1"))
        .body(Some("application/json"), r#"{ "note" : "birthday",  "amount_cents" : 400 }"#)
        .send()
        .await
        .expect("request");
    assert_eq!(replay.status(), 201, "the same status");
    assert_eq!(replay.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    let replay: Value = replay.json().expect("json");
    assert_eq!(replay, first, "the same body, including the balance of the first answer");

    assert_eq!(app.balance(&ada.token).await, 900, "100 + 400 (keyed, once) + 400 (unkeyed)");
    let ledger = app.ledger(&ada.token).await;
    assert_eq!(ledger.len(), 3, "{ledger:?}");
    assert_eq!(ledger.iter().filter(|e| e["id"] == first["id"]).count(), 1);
    app.stop().await;
}

#[tokio::test]
async fn reusing_a_key_with_another_body_is_idempotency_key_reused_and_changes_nothing() {
    let app = spawn_app().await;
    let ada = new_user();
    let res = app.top_up_with(&ada.token, &json!({"amount_cents": 300}), Some("k")).await;
    assert_eq!(res.status(), 201);
    for other in [json!({"amount_cents": 301}), json!({"amount_cents": 300, "note": "extra"})] {
        let res = app.top_up_with(&ada.token, &other, Some("k")).await;
        assert_problem(res, 422, "idempotency_key_reused");
    }
    assert_eq!(app.balance(&ada.token).await, 300);
    assert_eq!(app.ledger(&ada.token).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn idempotency_keys_are_scoped_per_user() {
    let app = spawn_app().await;
    let (ada, bob) = (new_user(), new_user());
    let body = json!({"amount_cents": 1000});
    let a = app.top_up_with(&ada.token, &body, Some("shared-key")).await;
    assert_eq!(a.status(), 201);
    let a: Value = a.json().expect("json");
    let b = app.top_up_with(&bob.token, &body, Some("shared-key")).await;
    assert_eq!(b.status(), 201);
    assert!(b.headers().get("idempotent-replayed").is_none(), "not a replay of another user's request");
    let b: Value = b.json().expect("json");
    assert_ne!(a["id"], b["id"]);
    // A different body is fine too: the key is Bob's own.
    let res = app.top_up_with(&bob.token, &json!({"amount_cents": 1}), Some("another")).await;
    assert_eq!(res.status(), 201);
    assert_eq!(app.balance(&ada.token).await, 1000);
    assert_eq!(app.balance(&bob.token).await, 1001);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_top_ups_with_one_key_apply_once_and_all_get_the_same_answer() {
    let app = spawn_app().await;
    let ada = new_user();
    let body = json!({"amount_cents": 1234});
    let attempts = (0..10).map(|_| async {
        let res = app.top_up_with(&ada.token, &body, Some("burst")).await;
        let status = res.status().as_u16();
        let replayed = res.headers().get("idempotent-replayed").is_some();
        let body: Value = res.json().expect("json");
        (status, replayed, body)
    });
    let answers = futures_util::future::join_all(attempts).await;
    for (status, _, body) in &answers {
        assert_eq!(*status, 201, "{body}");
        assert_eq!(body, &answers[0].2, "every answer is the first one");
    }
    assert_eq!(answers.iter().filter(|(_, replayed, _)| !replayed).count(), 1, "one original, nine replays");
    assert_eq!(answers[0].2["balance_cents"], 1234);
    assert_eq!(app.balance(&ada.token).await, 1234, "applied exactly once");
    assert_eq!(app.ledger(&ada.token).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn top_up_amounts_outside_one_to_a_million_cents_or_not_integers_are_validation_failed() {
    let app = spawn_app().await;
    let ada = new_user();
    for bad in [
        json!({"amount_cents": 0}),
        json!({"amount_cents": -1}),
        json!({"amount_cents": 1_000_001}),
        json!({"amount_cents": 1.5}),
        json!({"amount_cents": "100"}),
        json!({"amount_cents": null}),
        json!({"amount_cents": 1e30}),
        json!({}),
    ] {
        let res = app.top_up_with(&ada.token, &bad, Some("same-key-every-time")).await;
        let problem = assert_problem(res, 400, "validation_failed");
        assert_eq!(error_fields(&problem), ["amount_cents"], "{bad}: {problem}");
    }
    assert_eq!(app.balance(&ada.token).await, 0, "nothing was applied");
    assert!(app.ledger(&ada.token).await.is_empty());

    assert_eq!(app.top_up(&ada.token, 1).await["balance_cents"], 1);
    assert_eq!(app.top_up(&ada.token, 1_000_000).await["balance_cents"], 1_000_001);
    app.stop().await;
}

#[tokio::test]
async fn unknown_fields_are_ignored_whatever_they_hold() {
    let app = spawn_app().await;
    let ada = new_user();
    let res = app
        .top_up_raw(
            &ada.token,
            "application/json",
            r#"{"amount_cents": 50, "id": "mine", "balance_cents": 1000000, "note": "nul \u0000 inside"}"#,
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().expect("json");
    assert_ne!(body["id"], "mine");
    assert_eq!(body["balance_cents"], 50);
    // The same with a key: the body is fingerprinted and replayed.
    let raw = r#"{"amount_cents": 50, "memo": "\u0000"}"#;
    let keyed = || {
        let req = app.client.post("/v1/wallet/top-ups").token(&ada.token).idempotency_key(Some("nul"));
        req.body(Some("application/json"), raw).send()
    };
    let first = keyed().await.expect("request");
    assert_eq!(first.status(), 201);
    let first: Value = first.json().expect("json");
    let again = keyed().await.expect("request");
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    assert_eq!(again.json::<Value>().expect("json"), first);
    assert_eq!(app.balance(&ada.token).await, 100);
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_validation_failed_and_applies_nothing() {
    let app = spawn_app().await;
    let ada = new_user();
    let body = json!({"amount_cents": 100});
    let too_long = "k".repeat(256);
    for bad in [too_long.as_str(), "has space", ""] {
        let res = app.top_up_with(&ada.token, &body, Some(bad)).await;
        let problem = assert_problem(res, 400, "validation_failed");
        assert_eq!(error_fields(&problem), ["Idempotency-Key"], "{bad:?}: {problem}");
    }
    // Not ASCII at all (raw UTF-8 bytes in the header).
    let res = app
        .client
        .post("/v1/wallet/top-ups")
        .token(&ada.token)
        .header_bytes("idempotency-key", "ключ".as_bytes())
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_problem(res, 400, "validation_failed");
    assert_eq!(app.balance(&ada.token).await, 0);

    let longest = "k".repeat(255);
    let res = app.top_up_with(&ada.token, &body, Some(&longest)).await;
    assert_eq!(res.status(), 201, "255 visible characters are a valid key");
    app.stop().await;
}

#[tokio::test]
async fn the_ledger_pages_through_every_entry_newest_first_without_duplicates() {
    let app = spawn_app().await;
    let ada = new_user();
    for amount in 1..=5 {
        app.top_up(&ada.token, amount).await;
    }
    let mut amounts = Vec::new();
    let mut ids = HashSet::new();
    let mut times = Vec::new();
    let mut pages = 0;
    let mut path = "/v1/payments?limit=2".to_owned();
    loop {
        let res = app.get(&path, &ada.token).await;
        assert_eq!(res.status(), 200);
        let page: Value = res.json().expect("json");
        pages += 1;
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 2, "{page}");
        for item in items {
            assert!(ids.insert(item["id"].as_str().expect("id").to_owned()), "duplicate {item}");
            amounts.push(item["amount_cents"].as_i64().expect("amount"));
            times.push(OffsetDateTime::parse(item["created_at"].as_str().expect("time"), &Rfc3339).expect("rfc3339"));
        }
        assert!(page.as_object().is_some_and(|p| p.contains_key("next_cursor")), "always present: {page}");
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/payments?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(amounts, [5, 4, 3, 2, 1], "newest first");
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    let res = app.get("/v1/payments?limit=5", &ada.token).await;
    let page: Value = res.json().expect("json");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(5));
    assert_eq!(page["next_cursor"], Value::Null, "an exactly full last page has no next cursor");
    let page: Value = app.get("/v1/payments", &ada.token).await.json().expect("json");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(5), "the default limit covers five");
    app.stop().await;
}

#[tokio::test]
async fn malformed_cursors_and_limits_are_validation_failed() {
    let app = spawn_app().await;
    let ada = new_user();
    app.top_up(&ada.token, 10).await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=two", "limit"),
        ("cursor=!!not-a-cursor", "cursor"),
        ("cursor=bm90LWEtY3Vyc29y", "cursor"),
    ] {
        let res = app.get(&format!("/v1/payments?{query}"), &ada.token).await;
        let problem = assert_problem(res, 400, "validation_failed");
        assert_eq!(error_fields(&problem), [field], "{query}: {problem}");
    }
    let res = app.get("/v1/payments?limit=0&cursor=@@", &ada.token).await;
    let problem = assert_problem(res, 400, "validation_failed");
    assert_eq!(error_fields(&problem), ["cursor", "limit"], "both are listed");
    assert_eq!(app.get("/v1/payments?limit=100", &ada.token).await.status(), 200);
    assert_eq!(app.get("/v1/payments?limit=1", &ada.token).await.status(), 200);
    app.stop().await;
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

#[tokio::test]
async fn requests_without_a_valid_token_are_unauthorized_and_change_nothing() {
    let app = spawn_app().await;
    let ada = new_user();
    let expired = sign(&Claims { sub: ada.id, iat: now() - 7200, exp: now() - 60, iss: "twinshop".into() });
    let wrong_issuer = sign(&Claims { sub: ada.id, iat: now(), exp: now() + 600, iss: "evil".into() });
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &Claims { sub: ada.id, iat: now(), exp: now() + 600, iss: "twinshop".into() },
        &jsonwebtoken::EncodingKey::from_secret(twinshop_testkit::dev_keys().1.as_bytes()),
    )
    .expect("sign");
    let bad_tokens = [Some(expired), Some(wrong_issuer), Some(hs256), Some("abc.def.ghi".to_owned()), None];
    for (method, path) in [("GET", "/v1/wallet"), ("POST", "/v1/wallet/top-ups"), ("GET", "/v1/payments")] {
        for token in &bad_tokens {
            let mut req = app.client.request(method.parse().expect("method"), path).json(&json!({"amount_cents": 100}));
            if let Some(token) = token {
                req = req.token(token);
            }
            let res = req.send().await.expect("request");
            assert_problem(res, 401, "unauthorized");
        }
    }
    // The scheme must be Bearer.
    let basic = format!("Basic {}", ada.token);
    let res = app.client.get("/v1/wallet").header("authorization", &basic).send().await.expect("request");
    assert_problem(res, 401, "unauthorized");
    assert_eq!(app.balance(&ada.token).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_malformed_json() {
    let app = spawn_app().await;
    let ada = new_user();
    for raw in ["{not json", "[1, 2]", "\"a string\"", "100", "null", ""] {
        let res = app.top_up_raw(&ada.token, "application/json", raw).await;
        assert_problem(res, 400, "malformed_json");
    }
    assert_eq!(app.balance(&ada.token).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_body_without_json_content_type_is_unsupported_media_type() {
    let app = spawn_app().await;
    let ada = new_user();
    let res = app.top_up_raw(&ada.token, "text/plain", r#"{"amount_cents": 100}"#).await;
    assert_problem(res, 415, "unsupported_media_type");
    let res = app
        .client
        .post("/v1/wallet/top-ups")
        .token(&ada.token)
        .body(None, r#"{"amount_cents": 100}"#)
        .send()
        .await
        .expect("request");
    assert_problem(res, 415, "unsupported_media_type");
    assert_eq!(app.balance(&ada.token).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_one_mebibyte_body_is_payload_too_large() {
    let app = spawn_app().await;
    let ada = new_user();
    let big = format!(r#"{{"amount_cents": 100, "note": "{}"}}"#, "x".repeat(1 << 20));
    let res = app.top_up_raw(&ada.token, "application/json", &big).await;
    assert_problem(res, 413, "payload_too_large");
    assert_eq!(app.balance(&ada.token).await, 0);
    app.stop().await;
}
