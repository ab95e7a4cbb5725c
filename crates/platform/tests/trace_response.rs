//! Every answer names its trace: `traceresponse` (W3C Trace Context Level
//! 2) carries the trace id of the request's server span, the caller's own
//! when it sent a `traceparent`, so a client (the storefront) can link each
//! request to its trace in Jaeger. Errors included: they are the requests
//! people most want to look up.

use std::time::Duration;

use axum::{Router, routing::get};
use twinshop_platform::{
    http::{server, stack},
    shutdown::Shutdown,
    telemetry::{Telemetry, TelemetryConfig},
};

/// `00-{32 hex}-{16 hex}-{2 hex}` → (trace id, span id), or a panic naming what is wrong.
fn parse(value: &str) -> (String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    let hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    assert!(
        parts.len() == 4 && parts[0] == "00" && hex(parts[1], 32) && hex(parts[2], 16) && hex(parts[3], 2),
        "not a version-00 traceresponse: {value:?}"
    );
    assert_ne!(parts[1], "0".repeat(32), "an all-zero trace id is invalid");
    assert_ne!(parts[2], "0".repeat(16), "an all-zero span id is invalid");
    (parts[1].to_owned(), parts[2].to_owned())
}

#[tokio::test]
async fn every_answer_names_its_trace_and_continues_the_callers() {
    // The processes' own telemetry (W3C propagator, a tracer that assigns
    // ids without exporting); logs go nowhere. This binary has one test.
    let telemetry = Telemetry::init_with_writer("test", &TelemetryConfig::default(), std::io::sink).expect("telemetry");
    let router = stack::apply(Router::new().route("/ok", get(|| async { "ok" })), Duration::from_secs(5));
    let listener = server::bind(([127, 0, 0, 1], 0).into()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = Shutdown::new();
    let serving = tokio::spawn(server::serve(listener, router, shutdown.clone()));
    let client = reqwest::Client::new();
    let trace_of = |res: &reqwest::Response| {
        let value = res.headers().get("traceresponse").expect("a traceresponse header").to_str().expect("ASCII");
        parse(value)
    };

    // No traceparent: a new trace per request.
    let first = client.get(format!("http://{addr}/ok")).send().await.expect("answer");
    assert_eq!(first.status(), 200);
    let second = client.get(format!("http://{addr}/ok")).send().await.expect("answer");
    assert_ne!(trace_of(&first).0, trace_of(&second).0, "two requests, two traces");

    // The caller's trace continues; the span is the server's own.
    let caller = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let res = client
        .get(format!("http://{addr}/ok"))
        .header("traceparent", format!("00-{}-{}-01", caller.0, caller.1))
        .send()
        .await
        .expect("answer");
    let (trace, span) = trace_of(&res);
    assert_eq!(trace, caller.0, "the caller's trace id");
    assert_ne!(span, caller.1, "the server's span, a child of the caller's");

    // An error answer (the stack's own 404) names its trace too.
    let missing = client.get(format!("http://{addr}/missing")).send().await.expect("answer");
    assert_eq!(missing.status(), 404);
    trace_of(&missing);

    shutdown.trigger();
    serving.await.expect("join").expect("served");
    telemetry.shutdown().await;
}
