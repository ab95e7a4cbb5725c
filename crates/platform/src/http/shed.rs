//! A bound on the requests in flight on one port, a short queue for
//! bursts, and the fast answer beyond them: `503 overloaded` with
//! `Retry-After` (docs/api.md).
//!
//! Why it exists: a process that queues whatever arrives serves everyone
//! late once arrivals pass what it can do. The queue, its memory and every
//! request's latency grow until clients time out, and the work done for
//! them is wasted. With a bound, the requests admitted are served at the
//! latency of a busy (not flooded) process, and the rest are refused at
//! once, before any work: no database touched, no `Idempotency-Key`
//! recorded. (The body, at most 64 KiB, has been read by then, so the
//! refusal does not cost the connection: see `stack::read_body_first`.)
//! A client may retry after `Retry-After`.
//!
//! # A queue for bursts, not for overload
//!
//! A bound alone cannot tell a burst from overload: fifty orders sent at
//! once by one careful client would find 16 permits (2 cores) and get 34
//! refusals, although the process is idle a moment later. So a request
//! that finds no permit free may wait in a short queue (`4 ×` the bound),
//! in arrival order, **unless the port refused a request within the last
//! second**. A burst fills the queue and drains; sustained overload fills
//! it once, the first refusal follows, and from then on every request
//! beyond the bound is refused at once, so the ones served wait for no
//! queue and stay within the SLO. One second without a refusal and the
//! queue opens again. This is the idea of adaptive queueing in Facebook's
//! "Fail at Scale" (queues that absorb bursts but never stand) in its
//! simplest form; a waiting request still counts against the request
//! timeout of the stack outside.
//!
//! tower has the pieces of a plain bound (`GlobalConcurrencyLimitLayer`
//! plus `LoadShedLayer`) but no queue that switches off under overload, so
//! this is a small middleware around tokio's semaphore (which hands a freed
//! permit to the longest waiter, so nobody overtakes the queue).
//!
//! Only the routes given to [`InFlightLimit::http`] or
//! [`InFlightLimit::grpc`] are bounded: HTTP gets problem+json
//! `overloaded`, gRPC status `UNAVAILABLE` with `grpc-retry-pushback-ms`. A
//! calling area sees either as any unavailable peer
//! (`CallError::Unavailable`, then its own `dependency_unavailable` or
//! `payment_unavailable`). The host gives it the public API and the
//! internal contracts, never `/livez`, `/readyz`, `/metrics`, gRPC health
//! or reflection: an overloaded process is still alive and ready (shedding
//! is its healthy answer to overload; taking it out of the balancer would
//! move its load onto the others) and is still scraped. A permit is held
//! from the moment the request is admitted until its response head is
//! ready.
//!
//! Metrics: `requests_shed_total{port}` counts refusals,
//! `requests_in_flight_max{port}` is the bound. A shed HTTP request also
//! counts in `http_requests_total{status="503",code="overloaded"}`, as the
//! metrics layer is outside this one.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::Request,
    http::HeaderValue,
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::problem::{ErrorCode, Problem};

/// What `Retry-After` says: the bound frees up within milliseconds, and a
/// second is the smallest delay the header can carry.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Requests that may wait for a permit, per permit.
pub const QUEUE_PER_PERMIT: usize = 4;

/// How long after a refusal the queue stays shut.
pub const CALM: Duration = Duration::from_secs(1);

/// The bound of one port: `max` permits and a queue, shared by every route
/// it is applied to. Cheap to clone.
#[derive(Debug, Clone)]
pub struct InFlightLimit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    port: &'static str,
    max: usize,
    queue: usize,
    permits: Semaphore,
    waiting: AtomicUsize,
    /// When the queue opens again: milliseconds after `epoch` (0: open).
    shut_until_ms: AtomicU64,
    epoch: Instant,
}

/// A place in the queue; given back however the wait ends (a permit, or
/// the request dropped by the timeout or the client).
struct InQueue<'a>(&'a AtomicUsize);

impl Drop for InQueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InFlightLimit {
    /// `max` requests at once on the routes it is applied to (at least 1),
    /// and [`QUEUE_PER_PERMIT`] × `max` waiting; `port` names it in metrics
    /// (`public`, `internal`).
    pub fn new(port: &'static str, max: usize) -> Self {
        let max = max.max(1);
        Self::with_queue(port, max, QUEUE_PER_PERMIT * max)
    }

    /// [`Self::new`] with a queue of `queue` (0: a plain bound).
    pub fn with_queue(port: &'static str, max: usize, queue: usize) -> Self {
        let max = max.max(1);
        metrics::gauge!("requests_in_flight_max", "port" => port).set(max as f64);
        let inner = Inner {
            port,
            max,
            queue,
            permits: Semaphore::new(max),
            waiting: AtomicUsize::new(0),
            shut_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        };
        Self { inner: Arc::new(inner) }
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// Requests holding a permit right now.
    pub fn in_flight(&self) -> usize {
        self.inner.max - self.inner.permits.available_permits()
    }

    /// Requests waiting for a permit right now.
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::Acquire)
    }

    /// Bounds every route of `router` so far (routes merged into it later
    /// are not bounded); beyond the bound and the queue, `503 overloaded`
    /// problem+json with `Retry-After`.
    pub fn http(&self, router: Router) -> Router {
        self.layer(router, http_overloaded)
    }

    /// [`Self::http`] for gRPC services: beyond the bound and the queue,
    /// status `UNAVAILABLE` with `grpc-retry-pushback-ms`.
    pub fn grpc(&self, router: Router) -> Router {
        self.layer(router, grpc_overloaded)
    }

    fn layer(&self, router: Router, refusal: fn() -> Response) -> Router {
        let limit = self.clone();
        router.layer(middleware::from_fn(move |req: Request, next: Next| {
            let limit = limit.clone();
            async move {
                match limit.inner.admit().await {
                    Some(_permit) => next.run(req).await,
                    None => {
                        metrics::counter!("requests_shed_total", "port" => limit.inner.port).increment(1);
                        refusal()
                    }
                }
            }
        }))
    }
}

impl Inner {
    /// A permit, at once or after a wait in the queue; `None`: refused.
    async fn admit(&self) -> Option<SemaphorePermit<'_>> {
        if let Ok(permit) = self.permits.try_acquire() {
            return Some(permit);
        }
        let queued = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _place = InQueue(&self.waiting);
        if queued >= self.queue || self.now_ms() < self.shut_until_ms.load(Ordering::Acquire) {
            self.shut();
            return None;
        }
        self.permits.acquire().await.ok()
    }

    /// A refusal: the queue shuts, or stays shut, for [`CALM`] from now.
    fn shut(&self) {
        let until = self.now_ms() + CALM.as_millis() as u64;
        self.shut_until_ms.fetch_max(until, Ordering::AcqRel);
    }

    fn now_ms(&self) -> u64 {
        // At least 1, so that 0 always means "open".
        self.epoch.elapsed().as_millis() as u64 + 1
    }
}

fn http_overloaded() -> Response {
    Problem::new(ErrorCode::Overloaded)
        .with_detail("The service is at its limit of requests in flight; nothing was done. Try again shortly.")
        .with_retry_after(RETRY_AFTER)
        .into_response()
}

fn grpc_overloaded() -> Response {
    let mut res = tonic::Status::unavailable("overloaded: at the limit of requests in flight; nothing was done")
        .into_http::<Body>();
    // gRPC's retry design (A6): the server's pushback, in milliseconds.
    res.headers_mut().insert("grpc-retry-pushback-ms", HeaderValue::from(RETRY_AFTER.as_millis() as u64));
    res
}

#[cfg(test)]
mod tests {
    use axum::{
        http::{StatusCode, header},
        routing::{get, post},
    };
    use tower::ServiceExt as _;

    use super::*;

    /// A handler that waits for a permit of `gate` and uses it up: each
    /// permit added lets one request through.
    async fn wait_for(gate: Arc<Semaphore>) -> &'static str {
        if let Ok(permit) = gate.acquire().await {
            permit.forget();
        }
        "done"
    }

    async fn status_of(app: Router, req: Request) -> StatusCode {
        app.oneshot(req).await.map_or(StatusCode::INTERNAL_SERVER_ERROR, |r| r.status())
    }

    async fn until(limit: &InFlightLimit, in_flight: usize, waiting: usize) {
        while limit.in_flight() < in_flight || limit.waiting() < waiting {
            tokio::task::yield_now().await;
        }
    }

    /// `/slow` (bounded, waits for the gate) and `/livez` (not bounded).
    fn app(limit: &InFlightLimit, gate: &Arc<Semaphore>) -> Router {
        let gate = gate.clone();
        let slow = Router::new().route("/slow", get(move || wait_for(gate.clone())));
        limit.http(slow).merge(Router::new().route("/livez", get(|| async { "alive" })))
    }

    fn get_(path: &str) -> Request {
        Request::get(path).body(Body::empty()).expect("request")
    }

    #[tokio::test]
    async fn beyond_the_bound_and_the_queue_a_request_is_refused_at_once_and_probes_never_are() {
        let limit = InFlightLimit::with_queue("test", 2, 1);
        let gate = Arc::new(Semaphore::new(0));
        let app = app(&limit, &gate);
        let held: Vec<_> = (0..3).map(|_| tokio::spawn(status_of(app.clone(), get_("/slow")))).collect();
        until(&limit, 2, 1).await;

        let refused = app.clone().oneshot(get_("/slow")).await.expect("infallible");
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers().get(header::RETRY_AFTER).map(HeaderValue::as_bytes), Some(&b"1"[..]));
        assert_eq!(
            refused.headers().get(header::CONTENT_TYPE).map(HeaderValue::as_bytes),
            Some(&b"application/problem+json"[..])
        );
        let body = axum::body::to_bytes(refused.into_body(), 4096).await.expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!((json["status"].as_u64(), json["code"].as_str()), (Some(503), Some("overloaded")));
        assert_eq!(status_of(app.clone(), get_("/livez")).await, StatusCode::OK, "probes are not bounded");

        gate.add_permits(3 + 1);
        for h in held {
            assert_eq!(h.await.expect("task"), StatusCode::OK, "the admitted and the queued are served");
        }
        assert_eq!((limit.in_flight(), limit.waiting()), (0, 0), "permits and places come back");
        assert_eq!(status_of(app, get_("/slow")).await, StatusCode::OK, "a free permit is taken even while shut");
    }

    #[tokio::test]
    async fn a_burst_within_the_queue_waits_and_is_served_in_full() {
        let limit = InFlightLimit::new("test-burst", 2);
        let gate = Arc::new(Semaphore::new(0));
        let app = app(&limit, &gate);
        let burst = 2 + QUEUE_PER_PERMIT * 2;
        let held: Vec<_> = (0..burst).map(|_| tokio::spawn(status_of(app.clone(), get_("/slow")))).collect();
        until(&limit, 2, burst - 2).await;
        gate.add_permits(burst);
        for h in held {
            assert_eq!(h.await.expect("task"), StatusCode::OK);
        }
    }

    #[tokio::test]
    async fn after_a_refusal_the_queue_stays_shut_until_a_calm_second_has_passed() {
        let limit = InFlightLimit::with_queue("test-calm", 1, 1);
        let gate = Arc::new(Semaphore::new(0));
        let app = app(&limit, &gate);
        let first = tokio::spawn(status_of(app.clone(), get_("/slow")));
        let queued = tokio::spawn(status_of(app.clone(), get_("/slow")));
        until(&limit, 1, 1).await;
        assert_eq!(status_of(app.clone(), get_("/slow")).await, StatusCode::SERVICE_UNAVAILABLE, "queue full");

        // The queue has room again, but it is shut: overload, not a burst.
        gate.add_permits(1);
        assert_eq!(first.await.expect("task"), StatusCode::OK);
        until(&limit, 1, 0).await;
        assert_eq!(status_of(app.clone(), get_("/slow")).await, StatusCode::SERVICE_UNAVAILABLE, "shut");

        // A calm second later, a request beyond the bound may wait again.
        std::thread::sleep(CALM + Duration::from_millis(50));
        let waits = tokio::spawn(status_of(app.clone(), get_("/slow")));
        until(&limit, 1, 1).await;
        gate.add_permits(2);
        assert_eq!(queued.await.expect("task"), StatusCode::OK);
        assert_eq!(waits.await.expect("task"), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_grpc_call_beyond_the_bound_is_unavailable_with_a_pushback() {
        let limit = InFlightLimit::with_queue("test-grpc", 1, 0);
        let gate = Arc::new(Semaphore::new(0));
        let slow = Router::new().route(
            "/twinshop.test.v1.Test/{*rest}",
            post({
                let gate = gate.clone();
                move || wait_for(gate.clone())
            }),
        );
        let app = limit.grpc(slow);
        let call = || {
            Request::post("/twinshop.test.v1.Test/Call")
                .header(header::CONTENT_TYPE, "application/grpc")
                .body(Body::empty())
                .expect("request")
        };
        let held = tokio::spawn(status_of(app.clone(), call()));
        until(&limit, 1, 0).await;

        let refused = app.oneshot(call()).await.expect("infallible");
        assert_eq!(refused.status(), StatusCode::OK, "gRPC carries its status in the trailers-only head");
        let status = tonic::Status::from_header_map(refused.headers()).expect("a gRPC status in the head");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(refused.headers().get("grpc-retry-pushback-ms").map(HeaderValue::as_bytes), Some(&b"1000"[..]));
        gate.add_permits(1);
        assert_eq!(held.await.expect("task"), StatusCode::OK);
    }
}
