//! A gRPC call nobody serves is answered the gRPC way, `UNIMPLEMENTED`,
//! while any other unknown route stays a `404 not_found` problem: an HTTP
//! 404 is a protocol error to a gRPC client (grpcurl falls back from
//! reflection v1 to v1alpha only on `UNIMPLEMENTED`).

use std::time::Duration;

use axum::{
    Router,
    body::Body,
    http::{Request, header},
    routing::get,
};
use tower::ServiceExt as _;
use twinshop_platform::http::stack;

fn router() -> Router {
    stack::apply(Router::new().route("/livez", get(|| async { "alive" })), Duration::from_secs(5))
}

#[tokio::test]
async fn a_grpc_call_of_an_unknown_method_is_unimplemented_and_other_unknown_routes_are_404() {
    let call = Request::post("/no.such.Service/Call")
        .header(header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .body(Body::empty())
        .expect("a request");
    let res = router().oneshot(call).await.expect("an answer");
    assert_eq!(res.status(), 200, "gRPC errors travel in grpc-status");
    assert_eq!(res.headers().get("grpc-status").and_then(|v| v.to_str().ok()), Some("12"), "{:?}", res.headers());
    assert!(res.headers().get(header::CONTENT_TYPE).is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc")));

    let plain = Request::post("/no.such.Service/Call").body(Body::empty()).expect("a request");
    let res = router().oneshot(plain).await.expect("an answer");
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("application/problem+json"));
}
