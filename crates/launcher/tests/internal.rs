//! Several user and payment replicas: the order service reaches them through
//! the launcher's internal balancers (HTTP for the user lookup, gRPC for
//! payment), so rolling them fails no order placement either.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use common::{client, plan};
use json::field;
use twinshop_launcher::{Plan, Service, System};

/// Tiny JSON field reads, so the test needs no JSON crate.
mod json {
    /// The string value of `"key":"…"` in `body`.
    pub fn field(body: &str, key: &str) -> Option<String> {
        let start = body.find(&format!("\"{key}\":\""))? + key.len() + 4;
        Some(body[start..].split('"').next()?.to_owned())
    }
}

async fn user_with_money(http: &reqwest::Client, edge: &str) -> String {
    let email = format!("launcher-{:08x}@example.com", rand_u32());
    let address = r#"{"line1":"1 Test St","city":"Testville","postal_code":"12345","country":"DE"}"#;
    let body = format!(r#"{{"email":"{email}","password":"correct horse battery","name":"T","address":{address}}}"#);
    let res = http.post(format!("{edge}/v1/users")).header("content-type", "application/json").body(body);
    assert_eq!(res.send().await.expect("register").status(), 201);
    let login = format!(r#"{{"email":"{email}","password":"correct horse battery"}}"#);
    let res = http.post(format!("{edge}/v1/sessions")).header("content-type", "application/json").body(login);
    let token = field(&res.send().await.expect("login").text().await.expect("body"), "access_token").expect("token");
    let res = http
        .post(format!("{edge}/v1/wallet/top-ups"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"amount_cents":1000000}"#);
    assert_eq!(res.send().await.expect("top up").status(), 201);
    token
}

fn rand_u32() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_user_and_payment_behind_the_internal_balancers_fails_no_order() {
    let plan = plan(Plan::microservices(), "internal").replicas(Service::User, 2).replicas(Service::Payment, 2);
    let system = Arc::new(System::start(plan).await.expect("start"));
    let edge = system.url().expect("edge");
    let conf = std::fs::read_to_string(system.edge().expect("edge").prefix().join("twinshop.conf")).expect("conf");
    assert!(conf.contains("grpc_pass grpc://twinshop_internal_payment;") && conf.contains("twinshop_internal_user"));

    let http = client();
    let token = user_with_money(&http, &edge).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (confirmed, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for w in 0..2 {
        let (stop, confirmed, failed, failures) = (stop.clone(), confirmed.clone(), failed.clone(), failures.clone());
        let (edge, token, http) = (edge.clone(), token.clone(), http.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let key = format!("launcher-{w}-{n}");
                // A careful client: the same key again if the connection died without an answer.
                let mut outcome = None;
                for _ in 0..3 {
                    let res = http
                        .post(format!("{edge}/v1/orders"))
                        .bearer_auth(&token)
                        .header("Idempotency-Key", &key)
                        .header("content-type", "application/json")
                        .body(r#"{"items":[{"product_id":"sku-chocolate","quantity":1}]}"#)
                        .send()
                        .await;
                    if let Ok(res) = res {
                        let status = res.status().as_u16();
                        outcome = Some((status, field(&res.text().await.unwrap_or_default(), "status")));
                        break;
                    }
                }
                match outcome {
                    Some((201, Some(s))) if s == "confirmed" => confirmed.fetch_add(1, Ordering::Relaxed),
                    other => {
                        failures.lock().expect("lock").push(format!("{other:?}"));
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let payments = system.rolling_replace(Service::Payment, None).await.expect("roll payment");
    let users = system.rolling_replace(Service::User, None).await.expect("roll user");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let (confirmed, failed) = (confirmed.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!(
        "orders during the rolls: {confirmed} confirmed, {failed} failed; payment roll {:?}, user roll {:?}",
        payments.took, users.took
    );
    assert_eq!(failed, 0, "{:?}", failures.lock().expect("lock"));
    assert!(confirmed >= 10, "orders kept flowing ({confirmed})");
    let system = Arc::into_inner(system).expect("sole owner");
    let report = system.stop().await.expect("stop");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
