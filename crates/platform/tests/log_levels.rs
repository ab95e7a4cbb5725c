//! What the HTTP stack logs at ERROR: only what an operator must act on. A
//! documented 503 (a dependency or payment unavailable) is an expected
//! outcome and must not page anyone; an unexpected 500 must.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, routing::get};
use twinshop_platform::{
    http::{server, stack},
    problem::{self, ErrorCode, Problem},
    shutdown::Shutdown,
};

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_documented_503_is_not_logged_as_an_error_and_an_unexpected_500_is() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    // Global: the server spawns a task per connection. This binary has
    // this one test, so nothing else logs into it.
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    let router = Router::new()
        .route("/unavailable", get(|| async { Problem::new(ErrorCode::PaymentUnavailable) }))
        .route("/broken", get(|| async { problem::internal(&anyhow::anyhow!("a bug")) }));
    let router = stack::apply(router, Duration::from_secs(5));
    let listener = server::bind(([127, 0, 0, 1], 0).into()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = Shutdown::new();
    let serving = tokio::spawn(server::serve(listener, router, shutdown.clone()));

    let client = reqwest::Client::new();
    let unavailable = client.get(format!("http://{addr}/unavailable")).send().await.expect("answer");
    assert_eq!(unavailable.status(), 503);
    let errors = |text: &str| text.lines().filter(|l| l.contains("\"level\":\"ERROR\"")).count();
    let text = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf-8");
    assert_eq!(errors(&text), 0, "a documented 503 logged at ERROR: {text}");

    let broken = client.get(format!("http://{addr}/broken")).send().await.expect("answer");
    assert_eq!(broken.status(), 500);
    let text = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf-8");
    assert_eq!(errors(&text), 1, "the unexpected 500, once: {text}");
    shutdown.trigger();
    serving.await.expect("join").expect("served");
}
