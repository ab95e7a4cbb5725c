//! Shared by the launcher's integration tests: the debug binaries they
//! start, the machine tools they need, and small HTTP helpers (plain
//! reqwest: the launcher does not depend on the API client crate).

#![allow(dead_code)]

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use twinshop_launcher::{LogTarget, Plan, plan::workspace_root};

/// The workspace's debug binaries; the tests need them built
/// (`cargo build --bins -p twinshop-user -p twinshop-payment -p twinshop-order -p twinshop-monolith`).
pub fn bin_dir() -> PathBuf {
    let dir = workspace_root().join("target/debug");
    for bin in ["user-service", "payment-service", "order-service", "monolith"] {
        assert!(
            dir.join(bin).is_file(),
            "{} is missing: cargo build --bins -p twinshop-user -p twinshop-payment -p twinshop-order -p twinshop-monolith",
            dir.join(bin).display()
        );
    }
    dir
}

/// A log directory of its own for one test (kept for a post-mortem).
pub fn log_dir(test: &str) -> PathBuf {
    workspace_root().join("target/launcher-test-logs").join(format!("{test}-{}", std::process::id()))
}

/// The test plan: debug binaries, quick drains, logs in files, nginx present.
pub fn plan(base: Plan, test: &str) -> Plan {
    twinshop_launcher::prereq::ensure("nginx", "nginx").expect("nginx");
    base.bin_dir(bin_dir())
        .logs(LogTarget::Dir(log_dir(test)))
        .drain(Duration::from_secs(10))
        .env_all("SHUTDOWN_TIMEOUT", "5")
        .env_all("RUST_LOG", "info")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client")
}

/// `sum(http_requests_total{route=~"<route>"})` from a process's `/metrics`.
pub async fn requests_served(internal_url: &str, route: &str) -> u64 {
    let text = client()
        .get(format!("{internal_url}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .filter(|l| l.starts_with("http_requests_total{") && l.contains(&format!("route=\"{route}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a TCP connection from inside `netns` to `addr:port` is
/// established, refused, or hangs (no answer within `wait`).
#[derive(Debug, PartialEq, Eq)]
pub enum Connect {
    Established,
    Refused,
    Hangs,
}

pub fn connect_from(netns: &str, addr: &str, port: u16, wait: Duration) -> Connect {
    let script = format!("exec 3<>/dev/tcp/{addr}/{port}");
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", netns, "timeout", &format!("{}", wait.as_secs_f64()), "bash", "-c", &script])
        .output()
        .expect("ip netns exec");
    match out.status.code() {
        Some(0) => Connect::Established,
        Some(124) => Connect::Hangs,
        _ => Connect::Refused,
    }
}

/// The string value of `"key":"…"` in a JSON body (no JSON crate needed).
pub fn json_field(body: &str, key: &str) -> Option<String> {
    let start = body.find(&format!("\"{key}\":\""))? + key.len() + 4;
    Some(body[start..].split('"').next()?.to_owned())
}

/// Registers a user with an address through the edge, logs in and tops up
/// 10,000 EUR; returns the token.
pub async fn user_with_money(http: &reqwest::Client, edge: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let email = format!("launcher-{nanos}@example.com");
    let address = r#"{"line1":"1 Test St","city":"Testville","postal_code":"12345","country":"DE"}"#;
    let body = format!(r#"{{"email":"{email}","password":"correct horse battery","name":"T","address":{address}}}"#);
    let res = http.post(format!("{edge}/v1/users")).header("content-type", "application/json").body(body);
    assert_eq!(res.send().await.expect("register").status(), 201);
    let login = format!(r#"{{"email":"{email}","password":"correct horse battery"}}"#);
    let res = http.post(format!("{edge}/v1/sessions")).header("content-type", "application/json").body(login);
    let body = res.send().await.expect("login").text().await.expect("body");
    let token = json_field(&body, "access_token").expect("token");
    let res = http
        .post(format!("{edge}/v1/wallet/top-ups"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"amount_cents":1000000}"#);
    assert_eq!(res.send().await.expect("top up").status(), 201);
    token
}

/// Places a one-chocolate order with `key` as a careful client does (the
/// same key again, up to 3 times, when the connection died without an
/// answer); returns the status and the order's `status` field.
pub async fn place_order(http: &reqwest::Client, edge: &str, token: &str, key: &str) -> Option<(u16, Option<String>)> {
    for _ in 0..3 {
        let res = http
            .post(format!("{edge}/v1/orders"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .header("content-type", "application/json")
            .body(r#"{"items":[{"product_id":"sku-chocolate","quantity":1}]}"#)
            .send()
            .await;
        if let Ok(res) = res {
            let status = res.status().as_u16();
            return Some((status, json_field(&res.text().await.unwrap_or_default(), "status")));
        }
    }
    None
}
