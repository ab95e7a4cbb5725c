//! Graceful shutdown of an HTTP server built with the platform's stack: a
//! request in flight when shutdown begins is finished; new connections are
//! refused; the server then returns.

use std::{sync::Arc, time::Duration};

use axum::{Router, routing::get};
use tokio::sync::{Notify, oneshot};
use twinshop_platform::{
    http::{server, stack},
    shutdown::Shutdown,
};

#[tokio::test]
async fn a_request_in_flight_when_shutdown_begins_is_completed_and_new_connections_are_refused() {
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (s, r) = (started.clone(), release.clone());
    let router = Router::new().route(
        "/slow",
        get(move || {
            let (s, r) = (s.clone(), r.clone());
            async move {
                s.notify_one();
                r.notified().await;
                "done"
            }
        }),
    );
    let router = stack::apply(router, Duration::from_secs(10));
    let listener = server::bind(([127, 0, 0, 1], 0).into()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = Shutdown::new();
    let serving = tokio::spawn(server::serve(listener, router, shutdown.clone()));

    let client = reqwest::Client::new();
    let (tx, rx) = oneshot::channel();
    let in_flight = client.get(format!("http://{addr}/slow")).send();
    tokio::spawn(async move {
        let _ = tx.send(in_flight.await);
    });
    started.notified().await; // the handler is running
    shutdown.trigger();
    // Shutdown has begun; the server stops accepting before the handler ends.
    let refused = twinshop_testkit::eventually("new connections are refused", Duration::from_secs(5), || {
        let client = client.clone();
        async move {
            client
                .get(format!("http://{addr}/livez"))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_err()
                .then_some(())
        }
    });
    refused.await;
    release.notify_one();
    let res = rx.await.expect("sender").expect("the in-flight request completes");
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.expect("body"), "done");
    tokio::time::timeout(Duration::from_secs(5), serving).await.expect("server returns").expect("join").expect("serve");
}
