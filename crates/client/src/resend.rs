//! Resending, once, a request a reused keep-alive connection lost before
//! any answer came back.
//!
//! Why it exists: a server may close an idle keep-alive connection at any
//! moment (nginx's old workers close theirs at once on every reload, which
//! is how a replica leaves the edge). A request written in that instant is
//! reset without having been read, and the client sees no answer at all.
//! Nothing was processed, so a careful client sends it again on a new
//! connection, as browsers do, and counts it.
//!
//! hyper-util's pooled client resends by itself only a request that was
//! *never written*: one handed a pooled connection that turned out to be
//! closed before the first byte went out (`retry_canceled_requests`). It
//! does not resend a request that was written (wholly or partly) when the
//! connection died before any response byte, since the server may have
//! seen it. That is the reload race above, and this module adds it, for
//! requests that are safe to send twice: `GET`, `HEAD`, `OPTIONS`, any
//! request with an `Idempotency-Key` (the server answers a repeat with the
//! first answer), and a cancellation (cancelling a cancelled order returns
//! it unchanged). hyper-util's own retry is turned off and done here too,
//! so that every resend is counted in one place ([`crate::Client::resends`]).
//!
//! How a failure is judged: every connection is a `TrackedStream` that
//! notes, as hyper reads and writes, how many requests began on it and
//! whether any byte came back since the last one did; hyper-util hands that
//! note back with a failed request (as the connection's `Connected` extra).
//! A connection counts as reused when an earlier request went over it.
//! A fresh connection's failure is never resent (the server itself is
//! refusing or dying), nor is a failure after part of an answer arrived.
//! The resend always goes over a new connection, never another pooled
//! one: the reload that closed one idle connection closed its neighbours too.

use std::{
    error::Error as StdError,
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use http::{Method, Uri};
use hyper_util::{
    client::legacy::{
        Error as PoolError,
        connect::{Connected, Connection, HttpConnector},
    },
    rt::TokioIo,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

use crate::error::BoxError;

/// What one connection has carried so far.
///
/// Written only by the connection's own task (through [`TrackedStream`]);
/// read by a caller after hyper reported a failure on that connection,
/// which reaches the caller through hyper's channels, after the task's last
/// read or write, so relaxed atomics suffice.
#[derive(Debug, Default)]
struct Track {
    /// Requests begun: writes that started after an answer (or the first write).
    requests: AtomicU64,
    /// Whether any byte arrived since the last request began.
    answered: AtomicBool,
}

impl Track {
    fn wrote(&self) {
        if self.answered.load(Ordering::Relaxed) || self.requests.load(Ordering::Relaxed) == 0 {
            self.requests.fetch_add(1, Ordering::Relaxed);
            self.answered.store(false, Ordering::Relaxed);
        }
    }

    fn read(&self) {
        self.answered.store(true, Ordering::Relaxed);
    }
}

/// The note a connection carries in its `Connected` extras.
#[derive(Debug, Clone)]
struct Note(Arc<Track>);

/// A TCP connection that keeps a [`Track`] of its traffic.
#[derive(Debug)]
pub(crate) struct TrackedStream {
    inner: TcpStream,
    track: Arc<Track>,
}

impl AsyncRead for TrackedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.track.read();
        }
        polled
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.track.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.track.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Connection for TrackedStream {
    fn connected(&self) -> Connected {
        Connected::new().extra(Note(self.track.clone()))
    }
}

/// hyper-util's HTTP connector, handing out [`TrackedStream`]s.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    http: HttpConnector,
}

impl Connector {
    /// Wraps `http` (its settings: no-delay, connect timeout, http only).
    pub(crate) fn new(http: HttpConnector) -> Self {
        Self { http }
    }
}

/// A connection being made (boxed: one allocation per new connection).
type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<TrackedStream>, BoxError>> + Send>>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<TrackedStream>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        let connecting = self.http.call(uri);
        Box::pin(async move {
            let stream = connecting.await?.into_inner();
            Ok(TokioIo::new(TrackedStream { inner: stream, track: Arc::default() }))
        })
    }
}

/// Whether a request with this method, path and these headers may be sent
/// twice after it was written: `GET`, `HEAD`, `OPTIONS`, one that carries an
/// `Idempotency-Key`, or a cancellation (`POST /v1/orders/{id}/cancel`),
/// which the API makes idempotent by itself: cancelling a cancelled order
/// returns it unchanged (docs/api.md).
pub(crate) fn safe_to_repeat(method: &Method, path: &str, headers: &http::HeaderMap) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || headers.contains_key("idempotency-key")
        || (*method == Method::POST && is_cancellation(path))
}

/// `/v1/orders/{id}/cancel`, nothing else.
fn is_cancellation(path: &str) -> bool {
    path.strip_prefix("/v1/orders/")
        .and_then(|rest| rest.strip_suffix("/cancel"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// Whether a request that failed with `error` may be sent again on a new
/// connection (`safe`: see [`safe_to_repeat`]).
pub(crate) fn may_resend(error: &PoolError, safe: bool) -> bool {
    let Some(track) = track_of(error) else {
        // No connection at all: connecting failed.
        return false;
    };
    let requests = track.requests.load(Ordering::Relaxed);
    if is_canceled(error) {
        // Never written: whatever the method, provided the connection had
        // carried a request before (a fresh one failing is the server's answer).
        return requests >= 1;
    }
    // Written on a connection that carried an earlier request, and not a
    // byte of an answer since.
    safe && requests >= 2 && !track.answered.load(Ordering::Relaxed)
}

fn track_of(error: &PoolError) -> Option<Arc<Track>> {
    let mut extensions = http::Extensions::new();
    error.connect_info()?.get_extras(&mut extensions);
    extensions.get::<Note>().map(|note| note.0.clone())
}

/// hyper's own "canceled": the request was handed back unsent.
fn is_canceled(error: &PoolError) -> bool {
    let mut next: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(err) = next {
        if let Some(hyper) = err.downcast_ref::<hyper::Error>() {
            return hyper.is_canceled();
        }
        next = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_counts_requests_by_the_turns_of_its_traffic() {
        let track = Track::default();
        track.wrote();
        track.wrote(); // the same request, a second write
        assert_eq!(track.requests.load(Ordering::Relaxed), 1);
        track.read();
        track.read();
        track.wrote();
        assert_eq!(track.requests.load(Ordering::Relaxed), 2);
        assert!(!track.answered.load(Ordering::Relaxed));
    }

    #[test]
    fn only_safe_or_keyed_requests_may_be_repeated() {
        let mut headers = http::HeaderMap::new();
        let orders = "/v1/orders";
        assert!(safe_to_repeat(&Method::GET, orders, &headers));
        assert!(safe_to_repeat(&Method::HEAD, orders, &headers));
        assert!(safe_to_repeat(&Method::OPTIONS, orders, &headers));
        assert!(!safe_to_repeat(&Method::POST, orders, &headers));
        assert!(!safe_to_repeat(&Method::PATCH, orders, &headers));
        // A cancellation is idempotent by the API's own rule; nothing else
        // that merely looks like one is.
        assert!(safe_to_repeat(&Method::POST, "/v1/orders/0192-ab/cancel", &headers));
        assert!(!safe_to_repeat(&Method::POST, "/v1/orders//cancel", &headers));
        assert!(!safe_to_repeat(&Method::POST, "/v1/orders/a/b/cancel", &headers));
        assert!(!safe_to_repeat(&Method::POST, "/v1/wallet/cancel", &headers));
        assert!(!safe_to_repeat(&Method::DELETE, "/v1/orders/0192-ab/cancel", &headers));
        headers.insert("idempotency-key", http::HeaderValue::from_static("k1"));
        assert!(safe_to_repeat(&Method::POST, orders, &headers));
    }
}
