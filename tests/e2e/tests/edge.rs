//! The edge: the real nginx, configured from the same routing template that
//! the local run, compose and Kubernetes use, in front of the three real
//! services. Needs nginx installed (CI installs it); without it the test
//! fails with a message saying so.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};
use twinshop_e2e::{Options, Stack, Svc};
use twinshop_testkit::eventually;

fn template(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/edge").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn render(text: &str, vars: &[(&str, String)]) -> String {
    vars.iter().fold(text.to_owned(), |acc, (k, v)| acc.replace(&format!("${{{k}}}"), v))
}

fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx is not installed: `sudo scripts/install-services` (or apt-get install nginx) provides it")
}

struct Edge {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Edge {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master then stops its workers too.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_edge(stack: &Stack, dir: &Path) -> Edge {
    std::fs::create_dir_all(dir).expect("edge dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port");
    let upstream = |svc| stack.url(svc).trim_start_matches("http://").to_owned();
    let vars = [
        ("EDGE_PORT", format!("127.0.0.1:{port}")),
        ("USER_UPSTREAM", upstream(Svc::User)),
        ("PAYMENT_UPSTREAM", upstream(Svc::Payment)),
        ("ORDER_UPSTREAM", upstream(Svc::Order)),
        ("EDGE_PREFIX", dir.display().to_string()),
    ];
    std::fs::write(dir.join("twinshop.conf"), render(&template("twinshop.conf.template"), &vars)).expect("write");
    std::fs::write(dir.join("nginx.conf"), render(&template("nginx-local.conf.template"), &vars)).expect("write");
    let child = Command::new(nginx_binary())
        .args([
            "-p",
            &dir.display().to_string(),
            "-c",
            &dir.join("nginx.conf").display().to_string(),
            "-g",
            "daemon off;",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    Edge { child, port, dir: dir.to_owned() }
}

async fn problem(res: reqwest::Response, status: u16, code: &str) {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/problem+json"));
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["code"], code, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_routes_by_path_and_answers_its_own_errors_as_problem_json() {
    let mut stack = Stack::start(Options::default()).await;
    let dir = std::env::temp_dir().join(twinshop_testkit::unique_name("edge"));
    let edge = start_edge(&stack, &dir);
    let base = format!("http://127.0.0.1:{}", edge.port);
    let client = stack.client.clone();
    eventually("the edge answers", Duration::from_secs(10), || {
        let (client, base) = (client.clone(), base.clone());
        async move { client.get(format!("{base}/v1/products")).send().await.ok().filter(|r| r.status() == 200).map(|_| ()) }
    })
    .await;

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
