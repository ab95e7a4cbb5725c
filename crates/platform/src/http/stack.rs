//! The middleware stack of every public and internal router.
//!
//! Outermost first: sensitive-header marking, request id (`x-request-id`,
//! generated if absent and echoed back), a tracing span per request whose
//! parent is the caller's W3C `traceparent`, the span's ids echoed back as
//! `traceresponse` (so a client, such as the storefront, can name the trace
//! of each request), compression, the problem
//! guarantee ([`ensure_problem`]), panic catching, the request timeout,
//! the body size limit and the reading of the whole body ([`read_body_first`]);
//! innermost, per-route metrics.

use std::time::Duration;

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    compression::CompressionLayer,
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    sensitive_headers::SetSensitiveRequestHeadersLayer,
    timeout::TimeoutLayer,
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Level;

use crate::{
    metrics,
    problem::{ErrorCode, Problem},
    propagation,
};

/// Request bodies above this are `413 payload_too_large` (docs/api.md).
pub const BODY_LIMIT: usize = 64 * 1024;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static TRACE_RESPONSE: HeaderName = HeaderName::from_static("traceresponse");

/// Wraps `router` with the standard stack, a problem+json 404 fallback and
/// 405 answer. `timeout` is the service's request timeout: shorter than the
/// edge's, longer than any deadline of an outgoing call.
pub fn apply(router: Router, timeout: Duration) -> Router {
    metrics::init();
    router
        .fallback(no_such_route)
        .method_not_allowed_fallback(|| async { Problem::new(ErrorCode::MethodNotAllowed) })
        // Router::layer: the first call is the innermost.
        .layer(middleware::from_fn(metrics::track_http))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(read_body_first))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(CatchPanicLayer::new())
        .layer(middleware::from_fn(ensure_problem))
        .layer(CompressionLayer::new())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        // Inside the request's span, so it names that span.
        .layer(middleware::from_fn(trace_response))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(make_span)
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::DEBUG).latency_unit(tower_http::LatencyUnit::Micros))
                // Not tower-http's "response failed" at ERROR for every 5xx:
                // a documented 503 (payment or a dependency unavailable) is
                // an expected outcome, logged at WARN where it is decided;
                // what an operator must act on (an unexpected 500) is logged
                // at ERROR with its cause by `problem::internal`.
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::COOKIE]))
}

/// Reads a request's whole body (at most [`BODY_LIMIT`]) before anything
/// inside answers, so that an answer given without looking at the body (a
/// `401` from the bearer check, which runs before the JSON is parsed; a
/// `503 overloaded` from the in-flight bound) leaves no unread bytes on
/// the connection. hyper closes a connection whose request body is still
/// arriving when the response is done, and a proxy still sending that body
/// (the nginx edge streams a large body from its temporary file) then sees a
/// broken pipe and answers `502` in our place: the client would read
/// `dependency_unavailable` instead of `unauthorized`. Bodies are small
/// (64 KiB at most), so one copy is cheap; gRPC is left alone (its streams
/// must flow both ways at once), and so are requests without a body.
async fn read_body_first(req: Request, next: Next) -> Response {
    let grpc = is_grpc(req.headers());
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() != "0");
    if grpc || !has_body {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await,
        // Past the limit (a chunked body; a declared length past it never
        // gets here), or the client went away mid-body.
        Err(err) if is_too_large(&err) => Problem::new(ErrorCode::PayloadTooLarge).into_response(),
        Err(_) => {
            Problem::new(ErrorCode::MalformedJson).with_detail("The request body could not be read.").into_response()
        }
    }
}

/// Whether a request is a gRPC call (`application/grpc`, `+proto` and the like).
fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"))
}

/// Whether reading a body failed on the size limit.
fn is_too_large(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// `traceresponse: 00-{trace-id}-{span-id}-{flags}` on every answer, errors
/// included: the trace id is the caller's (from `traceparent`) or a new one,
/// the span id is this request's server span (docs/api.md).
async fn trace_response(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    if let Some(value) = propagation::trace_response().and_then(|v| HeaderValue::from_str(&v).ok()) {
        res.headers_mut().insert(TRACE_RESPONSE.clone(), value);
    }
    res
}

fn make_span(req: &Request) -> tracing::Span {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    let request_id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
    let span = tracing::info_span!(
        "http.request",
        otel.name = format!("{} {route}", req.method()),
        otel.kind = "server",
        http.request.method = %req.method(),
        http.route = route,
        request_id,
        user_id = tracing::field::Empty,
    );
    propagation::set_parent(&span, propagation::extract_http(req.headers()));
    span
}

/// An unknown route: `404 not_found`. A gRPC call of a service or method
/// nobody serves gets gRPC's own answer instead, `UNIMPLEMENTED` (an HTTP 404
/// is a protocol error to a gRPC client; grpcurl, for one, falls back from
/// reflection v1 to v1alpha only on `UNIMPLEMENTED`).
async fn no_such_route(req: Request) -> Response {
    if is_grpc(req.headers()) {
        return tonic::Status::unimplemented(format!("no such method: {}", req.uri().path())).into_http();
    }
    Problem::new(ErrorCode::NotFound).with_detail("No such route.").into_response()
}

/// Every error leaves as problem+json, including the ones produced by
/// layers and extractors we do not own (a body-limit 413, a timeout, a
/// caught panic, axum's own rejections).
async fn ensure_problem(req: Request, next: Next) -> Response {
    let mut res = as_problem(next.run(req).await);
    // A body refused for its size is left unread, and hyper then closes the
    // connection: say so, or a keep-alive client sends its next request
    // down a closed connection (RFC 9112 §9.6).
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE {
        res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

fn as_problem(res: Response) -> Response {
    let status = res.status();
    // Deliberate JSON answers (problems, the `/readyz` report) stay as
    // they are; plain-text and empty error bodies are replaced.
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/problem+json") || ct.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let code = match status {
        StatusCode::BAD_REQUEST => ErrorCode::MalformedJson,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        // The request ran past the service's timeout: something it waited
        // for (a store, a peer) is too slow.
        StatusCode::REQUEST_TIMEOUT => ErrorCode::DependencyUnavailable,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::ValidationFailed,
        _ => {
            if status.is_server_error() {
                tracing::error!(status = status.as_u16(), "server error without a problem body");
            }
            ErrorCode::Internal
        }
    };
    Problem::new(code).into_response()
}
