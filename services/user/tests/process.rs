//! Tests of the `user-service` binary as a process: configuration errors,
//! and what survives a `kill -9` in the middle of registrations.

use std::{
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::json;
use twinshop_client::Client;
use twinshop_testkit::{TestDb, dev_keys, eventually, free_port, unique_name};

const BIN: &str = env!("CARGO_BIN_EXE_user-service");

fn base_env(db_url: &str, namespace: &str, http: u16, internal: u16) -> Vec<(String, String)> {
    let (private_key, public_key) = dev_keys();
    [
        ("USER_BIND_ADDRESS", "127.0.0.1".to_owned()),
        ("USER_HTTP_PORT", http.to_string()),
        ("USER_INTERNAL_PORT", internal.to_string()),
        ("USER_DATABASE_URL", db_url.to_owned()),
        ("USER_REDIS_URL", twinshop_testkit::redis_url()),
        ("USER_AMQP_URL", twinshop_testkit::amqp_url()),
        ("JWT_PRIVATE_KEY", private_key),
        ("JWT_PUBLIC_KEY", public_key),
        ("EVENTS_NAMESPACE", namespace.to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn run_with(env: &[(String, String)], args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).env_clear().envs(env.iter().cloned()).output().expect("run the binary")
}

#[test]
fn a_missing_variable_exits_64_naming_it() {
    let out = run_with(&[], &[]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("USER_DATABASE_URL"), "{stderr}");
}

#[test]
fn a_malformed_variable_exits_64_naming_it_without_printing_secrets() {
    let mut env = base_env("postgres://u:hunter2@127.0.0.1/db", "x", 1, 2);
    env.retain(|(k, _)| k != "USER_HTTP_PORT");
    env.push(("USER_HTTP_PORT".into(), "eighty".into()));
    let out = run_with(&env, &[]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("USER_HTTP_PORT") && !stderr.contains("eighty"), "{stderr}");
    assert!(!stderr.contains("hunter2"));

    let mut env = base_env("postgres://u:hunter2@127.0.0.1/db", "x", 1, 2);
    env.push(("USER_CACHE_TTL_SECS".into(), "600".into()));
    let out = run_with(&env, &[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("USER_CACHE_TTL_SECS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_killed_mid_flight_leaves_the_user_and_its_event_together_or_neither() {
    let db = TestDb::create("userkill").await;
    let namespace = unique_name("t");
    let (http, internal) = (free_port(), free_port());
    let env = base_env(&db.url, &namespace, http, internal);
    let migrate = run_with(&env, &["migrate"]);
    assert!(migrate.status.success(), "migrate: {}", String::from_utf8_lossy(&migrate.stderr));

    let mut child =
        Command::new(BIN).env_clear().envs(env.iter().cloned()).stdout(Stdio::null()).spawn().expect("spawn");
    let client =
        Client::builder().timeout(Duration::from_secs(5)).build(&format!("http://127.0.0.1:{http}")).expect("client");
    let internal = client.at(&format!("http://127.0.0.1:{internal}")).expect("client");
    eventually("the service is ready", Duration::from_secs(20), || {
        let internal = internal.clone();
        async move { internal.get("/readyz").send().await.ok().filter(|r| r.status().is_success()) }
    })
    .await;

    // Keep registrations flowing from 8 clients; kill -9 once some landed.
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..8 {
        let (client, ok, failed) = (client.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            for i in 0..200 {
                let body =
                    json!({"email": format!("k{c}-{i}@example.com"), "password": "correct horse battery", "name": "K"});
                match client.post("/v1/users").json(&body).send().await {
                    Ok(res) if res.status() == 201 => ok.fetch_add(1, Ordering::SeqCst),
                    _ => {
                        failed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                };
            }
        }));
    }
    let ok_probe = ok.clone();
    eventually("a few registrations succeeded", Duration::from_secs(30), || {
        let n = ok_probe.load(Ordering::SeqCst);
        async move { (n >= 10).then_some(()) }
    })
    .await;
    child.kill().expect("kill -9");
    let _ = child.wait();
    for c in clients {
        let _ = c.await;
    }
    assert!(failed.load(Ordering::SeqCst) > 0, "the kill interrupted requests in flight");

    let mut conn = db.connect().await;
    let (users, orphans_without_event, events_without_user): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM users), \
         (SELECT count(*) FROM users u WHERE NOT EXISTS (SELECT 1 FROM outbox o \
             WHERE o.event_type = 'user.registered' AND o.body->'payload'->>'user_id' = u.id::text)), \
         (SELECT count(*) FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM users u \
             WHERE o.body->'payload'->>'user_id' = u.id::text))",
    )
    .fetch_one(&mut conn)
    .await
    .expect("invariant query");
    assert!(users >= ok.load(Ordering::SeqCst) as i64, "every acknowledged registration is stored");
    assert_eq!(orphans_without_event, 0, "no user without its user.registered event");
    assert_eq!(events_without_user, 0, "no event without its user");
    drop(conn);

    let queues: Vec<String> = twinshop_contracts::topology::Topology::new(&namespace)
        .queues()
        .into_iter()
        .flat_map(|q| [q.dead_letter_queue(), q.name])
        .collect();
    twinshop_testkit::delete_namespace(
        &namespace,
        &queues,
        &[format!("{namespace}.events"), format!("{namespace}.dlx")],
    )
    .await;
    db.drop_database().await;
}
