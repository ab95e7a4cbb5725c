//! Black-box tests of the user service's HTTP API, through the app spawned
//! on random ports against real Postgres, Redis and RabbitMQ.

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::{Outage, assert_problem, error_fields, spawn_app, spawn_app_with};
use twinshop_platform::http::auth::Claims;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

fn sign(claims: &Value, header: Header, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

#[tokio::test]
async fn registering_returns_the_user_without_secrets_and_records_a_user_registered_event() {
    let app = spawn_app().await;
    let user = app.register("ada@example.com").await;
    assert!(user["id"].as_str().is_some_and(|id| uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 7)));
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["address"]["country"], "GB");
    assert!(user["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let text = user.to_string();
    assert!(!text.contains("password") && !text.contains("argon2"), "{text}");

    let mut conn = app.db.connect().await;
    let (event_type, body): (String, Value) =
        sqlx::query_as("SELECT event_type, body FROM outbox").fetch_one(&mut conn).await.expect("one outbox row");
    assert_eq!(event_type, "user.registered");
    assert_eq!(body["payload"]["user_id"], user["id"]);
    app.stop().await;
}

#[tokio::test]
async fn the_same_email_in_another_letter_case_is_email_taken() {
    let app = spawn_app().await;
    app.register("grace@example.com").await;
    let res = app
        .post("/v1/users", &json!({"email": "GRACE@Example.COM", "password": "another long one", "name": "Grace"}))
        .await;
    assert_problem(res, 409, "email_taken");
    app.stop().await;
}

#[tokio::test]
async fn registration_lists_every_invalid_field() {
    let app = spawn_app().await;
    let res = app
        .post(
            "/v1/users",
            &json!({"email": "not-an-email", "password": "short", "name": "",
                    "address": {"line1": "", "city": 7, "postal_code": "1", "country": "XX"}}),
        )
        .await;
    let body = assert_problem(res, 400, "validation_failed");
    assert_eq!(
        error_fields(&body),
        ["address.city", "address.country", "address.line1", "email", "name", "password"],
        "{body}"
    );
    let res = app.post("/v1/users", &json!({})).await;
    let body = assert_problem(res, 400, "validation_failed");
    assert_eq!(error_fields(&body), ["email", "name", "password"]);
    let res = app.post("/v1/users", &json!({"email": 1, "password": ["x"], "name": null})).await;
    let body = assert_problem(res, 400, "validation_failed");
    assert_eq!(error_fields(&body), ["email", "name", "password"]);
    app.stop().await;
}

#[tokio::test]
async fn unknown_fields_are_ignored() {
    let app = spawn_app().await;
    let res = app
        .post(
            "/v1/users",
            &json!({"email": "x@example.com", "password": "long enough pw", "name": "X", "admin": true, "id": "mine"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().expect("json");
    assert_ne!(body["id"], "mine");
    assert_eq!(body["address"], Value::Null, "every field present, null when absent");
    app.stop().await;
}

#[tokio::test]
async fn bodies_that_are_not_json_objects_are_malformed_json() {
    let app = spawn_app().await;
    for raw in ["{not json", "[1, 2]", "\"a string\"", ""] {
        let res = app.post_raw("/v1/users", "application/json", raw.as_bytes().to_vec()).await;
        assert_problem(res, 400, "malformed_json");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_body_without_json_content_type_is_unsupported_media_type() {
    let app = spawn_app().await;
    let body = br#"{"email":"a@example.com","password":"long enough pw","name":"A"}"#.to_vec();
    let res = app.post_raw("/v1/users", "text/plain", body.clone()).await;
    assert_problem(res, 415, "unsupported_media_type");
    let res = app.client.post("/v1/sessions").body(None, body).send().await.expect("request");
    assert_problem(res, 415, "unsupported_media_type");
    app.stop().await;
}

#[tokio::test]
async fn a_one_mebibyte_body_is_payload_too_large() {
    let app = spawn_app().await;
    let big = format!(r#"{{"email":"a@example.com","password":"long enough pw","name":"{}"}}"#, "x".repeat(1 << 20));
    let res = app.post_raw("/v1/users", "application/json", big.into_bytes()).await;
    assert_eq!(
        res.headers().get("connection").and_then(|v| v.to_str().ok()),
        Some("close"),
        "the unread body ends the connection, and the answer says so"
    );
    assert_problem(res, 413, "payload_too_large");
    // So a keep-alive client's next request does not go down a closed connection.
    let res = app.post("/v1/sessions", &json!({"email": "a@example.com", "password": "long enough pw"})).await;
    assert_eq!(res.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn logging_in_gives_a_bearer_token_that_opens_the_profile_with_zero_stats() {
    let app = spawn_app().await;
    let user = app.register("Lin@Example.com").await;
    let res = app.post("/v1/sessions", &json!({"email": "lin@example.COM", "password": "correct horse battery"})).await;
    assert_eq!(res.status(), 200);
    let session: Value = res.json().expect("json");
    assert_eq!(session["token_type"], "Bearer");
    assert_eq!(session["expires_in"], 3600);
    let token = session["access_token"].as_str().expect("token");
    let res = app.get_authed("/v1/users/me", token).await;
    assert_eq!(res.status(), 200);
    let me: Value = res.json().expect("json");
    assert_eq!(me["id"], user["id"]);
    assert_eq!(me["stats"], json!({"orders_confirmed": 0, "total_spent_cents": 0}));
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = spawn_app().await;
    app.register("kim@example.com").await;
    let wrong = app.post("/v1/sessions", &json!({"email": "kim@example.com", "password": "not the password"})).await;
    let wrong = assert_problem(wrong, 401, "invalid_credentials");
    let unknown =
        app.post("/v1/sessions", &json!({"email": "nobody@example.com", "password": "correct horse battery"})).await;
    let unknown = assert_problem(unknown, 401, "invalid_credentials");
    assert_eq!(wrong, unknown);
    let res = app.post("/v1/sessions", &json!({"email": "kim@example.com"})).await;
    let body = assert_problem(res, 400, "validation_failed");
    assert_eq!(error_fields(&body), ["password"]);
    app.stop().await;
}

#[tokio::test]
async fn tampered_expired_and_wrongly_signed_tokens_are_unauthorized() {
    let app = spawn_app().await;
    app.register("eve@example.com").await;
    let token = app.login("eve@example.com").await;
    let (private_pem, public_pem) = twinshop_testkit::dev_keys();
    let dev_key = EncodingKey::from_ed_pem(private_pem.as_bytes()).expect("dev key");
    let me: Value = app.get_authed("/v1/users/me", &token).await.json().expect("json");
    let sub = me["id"].as_str().expect("id");

    // Payload swapped for another user's, signature kept.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let other = Claims { sub: uuid::Uuid::now_v7(), iat: now(), exp: now() + 600, iss: "twinshop".into() };
    parts[1] = base64_url(&serde_json::to_vec(&other).expect("json"));
    let tampered = parts.join(".");

    let expired = sign(
        &json!({"sub": sub, "iat": now() - 7200, "exp": now() - 60, "iss": "twinshop"}),
        Header::new(Algorithm::EdDSA),
        &dev_key,
    );
    let wrong_issuer = sign(
        &json!({"sub": sub, "iat": now(), "exp": now() + 600, "iss": "evil"}),
        Header::new(Algorithm::EdDSA),
        &dev_key,
    );
    // Algorithm confusion: HMAC keyed with the (public) verification key.
    let hs256 = sign(
        &json!({"sub": sub, "iat": now(), "exp": now() + 600, "iss": "twinshop"}),
        Header::new(Algorithm::HS256),
        &EncodingKey::from_secret(public_pem.as_bytes()),
    );
    let alg_none = format!(
        "{}.{}.",
        base64_url(br#"{"alg":"none","typ":"JWT"}"#),
        base64_url(json!({"sub": sub, "iat": now(), "exp": now() + 600, "iss": "twinshop"}).to_string().as_bytes())
    );
    let other_key = EncodingKey::from_ed_der(&ed25519_pkcs8(&[7u8; 32]));
    let foreign = sign(
        &json!({"sub": sub, "iat": now(), "exp": now() + 600, "iss": "twinshop"}),
        Header::new(Algorithm::EdDSA),
        &other_key,
    );

    for (what, bad) in [
        ("tampered", tampered),
        ("expired", expired),
        ("wrong issuer", wrong_issuer),
        ("HS256", hs256),
        ("alg none", alg_none),
        ("foreign key", foreign),
        ("garbage", "abc.def.ghi".to_owned()),
    ] {
        let res = app.get_authed("/v1/users/me", &bad).await;
        assert_eq!(res.status(), 401, "{what}");
        assert_problem(res, 401, "unauthorized");
    }
    // The 5 s clock leeway: just expired still passes, well expired does not.
    let claims = |exp: u64| json!({"sub": sub, "iat": now() - 600, "exp": exp, "iss": "twinshop"});
    let within = sign(&claims(now() - 2), Header::new(Algorithm::EdDSA), &dev_key);
    assert_eq!(app.get_authed("/v1/users/me", &within).await.status(), 200, "expired 2 s ago, within the leeway");
    let beyond = sign(&claims(now() - 8), Header::new(Algorithm::EdDSA), &dev_key);
    assert_problem(app.get_authed("/v1/users/me", &beyond).await, 401, "unauthorized");
    let res = app.client.get("/v1/users/me").send().await.expect("request");
    assert_problem(res, 401, "unauthorized");
    let basic = format!("Basic {token}");
    let res = app.client.get("/v1/users/me").header("authorization", &basic).send().await.expect("request");
    assert_problem(res, 401, "unauthorized");
    app.stop().await;
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// PKCS#8 v1 DER of an Ed25519 private key from its 32-byte seed.
fn ed25519_pkcs8(seed: &[u8; 32]) -> Vec<u8> {
    let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    der.extend_from_slice(seed);
    der
}

#[tokio::test]
async fn patching_the_profile_changes_name_and_address_and_null_removes_the_address() {
    let app = spawn_app().await;
    app.register("mo@example.com").await;
    let token = app.login("mo@example.com").await;
    let res = app.patch_me(&token, &json!({"name": "  Mo Salah ", "address": {"line1": "2 Road", "city": "Cairo", "postal_code": "11511", "country": "eg"}})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().expect("json");
    assert_eq!(body["name"], "Mo Salah");
    assert_eq!(body["address"]["country"], "EG");
    let res = app.patch_me(&token, &json!({"address": null})).await;
    let body: Value = res.json().expect("json");
    assert_eq!(body["address"], Value::Null);
    assert_eq!(body["name"], "Mo Salah", "absent fields are unchanged");

    let res =
        app.patch_me(&token, &json!({"name": null, "address": {"line1": "x", "city": "y", "postal_code": "z"}})).await;
    let body = assert_problem(res, 400, "validation_failed");
    assert_eq!(error_fields(&body), ["address.country", "name"]);
    let me: Value = app.get_authed("/v1/users/me", &token).await.json().expect("json");
    assert_eq!(me["address"], Value::Null, "a rejected patch changes nothing");
    app.stop().await;
}

#[tokio::test]
async fn the_internal_lookup_is_served_on_the_internal_port_only() {
    let app = spawn_app().await;
    let user = app.register("int@example.com").await;
    let id = user["id"].as_str().expect("id");
    let res = app.internal_get(&format!("/internal/v1/users/{id}")).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().expect("json");
    assert_eq!(body, json!({"id": id, "name": "Ada Lovelace", "address": user["address"]}));

    let res = app.client.get(format!("/internal/v1/users/{id}")).send().await.expect("request");
    assert_problem(res, 404, "not_found");
    let res = app.internal_get(&format!("/internal/v1/users/{}", uuid::Uuid::now_v7())).await;
    assert_problem(res, 404, "not_found");
    let res = app.internal_get("/internal/v1/users/not-a-uuid").await;
    assert_problem(res, 404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn a_lookup_fills_the_cache_and_a_profile_update_drops_the_entry() {
    let app = spawn_app().await;
    let user = app.register("cache@example.com").await;
    let id = user["id"].as_str().expect("id");
    let key = format!("user:v1:{id}");
    let client = redis::Client::open(twinshop_testkit::redis_url()).expect("redis url");
    let mut redis = client.get_multiplexed_async_connection().await.expect("redis");

    app.internal_get(&format!("/internal/v1/users/{id}")).await;
    let ttl: i64 = redis::cmd("TTL").arg(&key).query_async(&mut redis).await.expect("ttl");
    assert!((1..=60).contains(&ttl), "cached with a TTL of at most 60 s, got {ttl}");

    let token = app.login("cache@example.com").await;
    assert_eq!(app.patch_me(&token, &json!({"name": "Renamed"})).await.status(), 200);
    let exists: bool = redis::cmd("EXISTS").arg(&key).query_async(&mut redis).await.expect("exists");
    assert!(!exists, "the entry is deleted after the update commits");
    let body: Value = app.internal_get(&format!("/internal/v1/users/{id}")).await.json().expect("json");
    assert_eq!(body["name"], "Renamed");
    app.stop().await;
}

#[tokio::test]
async fn with_redis_down_the_lookup_answers_from_postgres_and_readiness_reports_the_cache_degraded() {
    let app = spawn_app_with(Outage { redis: true, ..Outage::default() }).await;
    let user = app.register("noredis@example.com").await;
    let id = user["id"].as_str().expect("id");
    let res = app.internal_get(&format!("/internal/v1/users/{id}")).await;
    assert_eq!(res.status(), 200);
    let res = app.internal_get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().expect("json");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"], json!({"postgres": "up", "redis": "degraded", "rabbitmq": "up"}));
    app.stop().await;
}

#[tokio::test]
async fn with_rabbitmq_down_registration_succeeds_and_the_event_waits_in_the_outbox() {
    let app = spawn_app_with(Outage { rabbitmq: true, ..Outage::default() }).await;
    app.register("nobroker@example.com").await;
    let body: Value = app.internal_get("/readyz").await.json().expect("json");
    assert_eq!(body["checks"]["rabbitmq"], "degraded");
    assert_eq!(body["status"], "degraded");
    let pool = sqlx::PgPool::connect(&app.db.url).await.expect("pool");
    // The relay keeps trying; the row stays unpublished meanwhile.
    let attempts: i32 =
        twinshop_testkit::eventually("a failed publish attempt", std::time::Duration::from_secs(10), || {
            let pool = pool.clone();
            async move {
                let (attempts, published): (i32, bool) =
                    sqlx::query_as("SELECT attempts, published_at IS NOT NULL FROM outbox")
                        .fetch_one(&pool)
                        .await
                        .ok()?;
                assert!(!published);
                (attempts > 0).then_some(attempts)
            }
        })
        .await;
    assert!(attempts >= 1);
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn with_the_database_down_readiness_is_503_and_requests_get_a_problem() {
    let app = spawn_app_with(Outage { database: true, ..Outage::default() }).await;
    let res = app.internal_get("/readyz").await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().expect("json");
    assert_eq!(body["checks"]["postgres"], "down");
    assert_eq!(body["status"], "unavailable");
    let res = app.internal_get("/livez").await;
    assert_eq!(res.status(), 200, "liveness does not depend on the database");
    let res = app.post("/v1/sessions", &json!({"email": "a@example.com", "password": "whatever long"})).await;
    let body = assert_problem(res, 503, "dependency_unavailable");
    assert!(!body.to_string().to_lowercase().contains("postgres"), "no internals leak: {body}");
    app.stop().await;
}

#[tokio::test]
async fn before_its_migration_has_run_the_service_is_not_ready_and_after_it_is() {
    let app = spawn_app_with(Outage { unmigrated: true, ..Outage::default() }).await;
    let res = app.internal_get("/readyz").await;
    assert_eq!(res.status(), 503, "a reachable but empty database is not ready");
    let body: Value = res.json().expect("json");
    assert_eq!(body["checks"]["postgres"], "down", "{body}");
    support::migrate(&app.vars).await.expect("migrations apply");
    let res = app.internal_get("/readyz").await;
    assert_eq!(res.status(), 200, "ready once migrated, without a restart");
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_problem_json() {
    let app = spawn_app().await;
    let res = app.client.get("/v1/nothing-here").send().await.expect("request");
    assert_problem(res, 404, "not_found");
    let res = app.client.delete("/v1/users").send().await.expect("request");
    assert_problem(res, 405, "method_not_allowed");
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_error_code() {
    let app = spawn_app().await;
    app.post("/v1/sessions", &json!({"email": "m@example.com", "password": "whatever long"})).await;
    let text = app.internal_get("/metrics").await.text().into_owned();
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total{")
            && l.contains(r#"route="/v1/sessions""#)
            && l.contains(r#"code="invalid_credentials""#)),
        "{text}"
    );
    assert!(text.contains("http_request_duration_seconds_bucket"), "latency histogram present");
    app.stop().await;
}

#[tokio::test]
async fn the_black_box_client_signs_up_reads_and_updates_the_profile_and_looks_the_user_up() {
    use twinshop_client::{Address, NewUser, ProfileUpdate, Stats, StatusCode, UserDirectory};
    let app = spawn_app().await;
    let address = Address {
        line1: "1 Typed St".into(),
        city: "Berlin".into(),
        postal_code: "10115".into(),
        country: "DE".into(),
    };
    let new = NewUser {
        email: "typed@example.com".into(),
        password: "correct horse battery".into(),
        name: "Typed".into(),
        address: Some(address.clone()),
    };
    let (user, typed) = app.client.sign_up(&new).await.expect("signed up");
    assert_eq!((user.email.as_str(), user.address.as_ref()), ("typed@example.com", Some(&address)));
    let me = typed.me().await.expect("the profile");
    assert_eq!((me.user.id, me.stats), (user.id, Stats::default()));

    let update = ProfileUpdate { name: Some("Renamed".into()), address: Some(None) };
    let renamed = typed.update_me(&update).await.expect("patched");
    assert_eq!((renamed.name.as_str(), renamed.address), ("Renamed", None));
    let err = app.client.register(&new).await.expect_err("taken");
    assert!(err.is_code("email_taken") && err.status() == Some(StatusCode::CONFLICT), "{err}");
    let err = app.client.login(&new.email, "not the password").await.expect_err("wrong password");
    assert!(err.is_code("invalid_credentials"), "{err}");

    let directory = UserDirectory::with_client(app.internal_client());
    let found = directory.user(user.id).await.expect("a lookup").expect("found");
    assert_eq!((found.id, found.name.as_str(), found.address), (user.id, "Renamed", None));
    assert_eq!(directory.user(uuid::Uuid::now_v7()).await.expect("a lookup"), None, "unknown is None, not an error");
    app.stop().await;
}

#[tokio::test]
async fn after_ten_failed_logins_an_account_is_throttled_with_retry_after_even_for_the_right_password() {
    let app = spawn_app().await;
    app.register("kim@example.com").await;
    app.register("lee@example.com").await;
    let shop = &app;
    let attempt = move |email: &'static str, password: &'static str| {
        let body = json!({"email": email, "password": password});
        async move { shop.post("/v1/sessions", &body).await }
    };
    for _ in 0..twinshop_user::app::LOGIN_ATTEMPTS {
        assert_problem(attempt("kim@example.com", "not the password").await, 401, "invalid_credentials");
    }
    for password in ["not the password", "correct horse battery"] {
        let res = attempt("KIM@example.com", password).await;
        let retry_after: u64 = res.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After seconds");
        assert!((1..=60).contains(&retry_after), "one more attempt a minute: {retry_after}");
        let body = assert_problem(res, 429, "too_many_requests");
        assert_eq!(body["title"], "Too many requests");
    }
    app.login("lee@example.com").await;
    app.stop().await;
}

#[tokio::test]
async fn successful_logins_are_never_throttled() {
    let app = spawn_app().await;
    app.register("kim@example.com").await;
    for _ in 0..2 * twinshop_user::app::LOGIN_ATTEMPTS {
        app.login("kim@example.com").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn beyond_the_bound_and_its_queue_requests_are_refused_at_once_with_overloaded_and_probes_still_answer() {
    // One request in flight, four waiting; every request takes 600 ms (the
    // latency fault), so eight sent at once leave three with no place.
    let vars = [("USER_MAX_IN_FLIGHT", "1"), ("USER_FAULTS_ENABLED", "true")];
    let app = support::spawn_app_with_vars(Outage::default(), &vars).await;
    let inside = app.internal_client();
    let set = inside
        .request(twinshop_client::Method::PUT, "/faults/user")
        .json(&json!({"latency_ms": 600}))
        .send()
        .await
        .expect("answer");
    assert_eq!(set.status(), 200);

    let started = std::time::Instant::now();
    let flood = futures_util::future::join_all((0..8).map(|_| app.client.get("/v1/users/me").send()));
    let probe = async {
        // At the bound: the port has refused a request (its counter says so).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let metrics = inside.get("/metrics").send().await.expect("answer");
            let shed = metrics.text().lines().any(|l| {
                l.starts_with("requests_shed_total{port=\"public\"}") && l.split(' ').next_back() != Some("0")
            });
            if shed {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the flood never reached the bound");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        inside.get("/livez").send().await.expect("answer").status()
    };
    let (answers, livez) = tokio::join!(flood, probe);
    assert_eq!(livez, 200, "probes are never bounded, not even at the bound");
    let mut refused = 0;
    for res in answers {
        let res = res.expect("answer");
        if res.status() == 503 {
            refused += 1;
            assert_eq!(res.header("retry-after"), Some("1"));
            assert_problem(res, 503, "overloaded");
        } else {
            assert_problem(res, 401, "unauthorized");
        }
    }
    assert_eq!(refused, 3, "one served at once, four after waiting, three refused");
    assert!(started.elapsed() >= std::time::Duration::from_millis(5 * 600), "the queued ones were served in turn");
    app.stop().await;
}
