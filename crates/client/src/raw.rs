//! The raw layer: any request to a base URL, and the whole answer back
//! (status, headers, every byte of the body).
//!
//! Why it exists: the conformance suite must send what a typed client never
//! would (bodies that are not JSON, no or the wrong content type, header
//! values that are not UTF-8, forged tokens) and judge the raw answer; the
//! load generator must send as cheaply as possible, because it shares two
//! cores with the system it measures. Both are served by one thin layer
//! over hyper-util's pooled HTTP/1.1 client, used directly rather than
//! through reqwest (which wraps the same client): no URL re-parsing or
//! redirect policy per request, no header-map merging, no boxed bodies;
//! header values can be built once ([`Bearer`]) and the body is read into
//! one buffer. Connections are kept alive with `TCP_NODELAY` set (small
//! request/response pairs would otherwise wait on Nagle and delayed ACKs).
//!
//! It is also what keeps traffic where it is meant to go: every request is
//! the base URL plus a path, redirects are never followed (a 3xx is an
//! answer like any other), and only `http://` is spoken.
//!
//! One thing it does beyond sending once: a request that a *reused*
//! keep-alive connection lost before any answer byte arrived (a server
//! closing idle connections, as nginx does on every reload) is sent once
//! more on a new connection when that is safe, and counted
//! ([`Client::resends`]); [`crate::resend`] says exactly when.

use std::{
    borrow::Cow,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::{
    client::legacy::{Client as Pool, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::Serialize;

pub use crate::response::Response;
use crate::{
    error::{BoxError, SendError, TransportError},
    record::{Exchange, Recorder},
    resend::{self, Connector},
};

/// How long a request may take, connecting and reading the whole answer
/// included, unless the builder says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A base URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the base URL {url:?} {why}")]
pub struct BaseUrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// How to build a [`Client`].
#[derive(Clone)]
#[must_use]
pub struct ClientBuilder {
    timeout: Duration,
    recorder: Option<Recorder>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("timeout", &self.timeout)
            .field("recorder", &self.recorder.is_some())
            .finish()
    }
}

impl ClientBuilder {
    /// The request timeout (connecting and reading the whole answer
    /// included); [`DEFAULT_TIMEOUT`] by default.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Calls `recorder` with every exchange (see [`crate::ExchangeLog`]).
    pub fn recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// A client for `base_url`: `http://host:port`, optionally with a path
    /// prefix, no query; a trailing `/` is dropped.
    pub fn build(self, base_url: &str) -> Result<Client, BaseUrlError> {
        let base = parse_base(base_url)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(self.timeout));
        connector.enforce_http(true);
        let connector = Connector::new(connector);
        // hyper-util's own resend of unwritten requests is off: crate::resend
        // does it, with the rest, and counts every resend.
        let pool = Pool::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(usize::MAX)
            .retry_canceled_requests(false)
            .build(connector.clone());
        // No idle connections: every request over it gets a new one.
        let fresh = Pool::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .retry_canceled_requests(false)
            .build(connector);
        let shared = Shared { pool, fresh, recorder: self.recorder, resends: AtomicU64::new(0) };
        Ok(Client { base, timeout: self.timeout, shared: Arc::new(shared) })
    }
}

fn parse_base(base_url: &str) -> Result<Arc<str>, BaseUrlError> {
    let error = |why| BaseUrlError { url: base_url.to_owned(), why };
    let base = base_url.trim_end_matches('/');
    let uri: Uri = base.parse().map_err(|_| error("is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        return Err(error("must start with http:// (plain HTTP only)"));
    }
    if uri.host().is_none() {
        return Err(error("has no host"));
    }
    if uri.query().is_some() {
        return Err(error("must not have a query"));
    }
    Ok(Arc::from(base))
}

/// A base URL and a keep-alive connection pool. Cheap to clone (clones
/// share the pool).
#[derive(Clone)]
pub struct Client {
    /// `http://host:port` plus an optional path prefix, without a trailing `/`.
    base: Arc<str>,
    timeout: Duration,
    shared: Arc<Shared>,
}

/// What every clone of a client shares.
struct Shared {
    /// Keep-alive connections, reused.
    pool: Pool<Connector, Full<Bytes>>,
    /// A new connection per request: for resends only.
    fresh: Pool<Connector, Full<Bytes>>,
    recorder: Option<Recorder>,
    /// Requests sent a second time (see [`Client::resends`]).
    resends: AtomicU64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .field("recorder", &self.shared.recorder.is_some())
            .field("resends", &self.resends())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `base_url` with the default settings.
    pub fn new(base_url: &str) -> Result<Self, BaseUrlError> {
        Self::builder().build(base_url)
    }

    /// Settings first: timeout, recorder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder { timeout: DEFAULT_TIMEOUT, recorder: None }
    }

    /// The same pool, timeout and recorder for another base URL (e.g. a
    /// service's internal port next to the edge).
    pub fn at(&self, base_url: &str) -> Result<Self, BaseUrlError> {
        Ok(Self { base: parse_base(base_url)?, ..self.clone() })
    }

    /// The base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How many requests this client and its clones (they share one pool)
    /// have sent a second time, on a new connection, because a reused
    /// keep-alive connection died under them before any answer byte came
    /// back: `GET`, `HEAD`, `OPTIONS` or keyed requests that were written,
    /// and any request that was not (see [`crate::resend`]). A lab reports
    /// it beside its error counts: such a request succeeded, but only at
    /// the second attempt.
    pub fn resends(&self) -> u64 {
        self.shared.resends.load(Ordering::Relaxed)
    }

    /// A request to `base URL + path` (`path` starts with `/` and may carry
    /// a query; bytes HTTP cannot carry are percent-encoded).
    pub fn request(&self, method: Method, path: impl Into<String>) -> RequestBuilder<'_> {
        RequestBuilder {
            client: self,
            method,
            path: path.into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            timeout: self.timeout,
            invalid: None,
        }
    }

    /// `GET path`.
    pub fn get(&self, path: impl Into<String>) -> RequestBuilder<'_> {
        self.request(Method::GET, path)
    }

    /// `POST path`.
    pub fn post(&self, path: impl Into<String>) -> RequestBuilder<'_> {
        self.request(Method::POST, path)
    }

    /// `PATCH path`.
    pub fn patch(&self, path: impl Into<String>) -> RequestBuilder<'_> {
        self.request(Method::PATCH, path)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: impl Into<String>) -> RequestBuilder<'_> {
        self.request(Method::DELETE, path)
    }
}

/// A ready `Authorization: Bearer <token>` value, built once and cheap to
/// clone (the load generator sends it with every request of a user).
#[derive(Clone, PartialEq, Eq)]
pub struct Bearer {
    token: Arc<str>,
    /// `None` when the token cannot be a header value: requests with it
    /// then fail as [`TransportError::InvalidRequest`] without being sent.
    header: Option<HeaderValue>,
}

impl Bearer {
    /// The header value for `token`.
    pub fn new(token: &str) -> Self {
        let header = HeaderValue::from_str(&format!("Bearer {token}")).ok().map(|mut v| {
            v.set_sensitive(true);
            v
        });
        Self { token: Arc::from(token), header }
    }

    /// The token itself.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The whole header value, if the token can be one.
    pub fn header_value(&self) -> Option<&HeaderValue> {
        self.header.as_ref()
    }
}

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A token is a credential: never in a log.
        f.write_str("Bearer(…)")
    }
}

impl From<&str> for Bearer {
    fn from(token: &str) -> Self {
        Self::new(token)
    }
}

impl From<String> for Bearer {
    fn from(token: String) -> Self {
        Self::new(&token)
    }
}

impl From<&String> for Bearer {
    fn from(token: &String) -> Self {
        Self::new(token)
    }
}

impl From<&Bearer> for Bearer {
    fn from(bearer: &Bearer) -> Self {
        bearer.clone()
    }
}

/// A request under construction. Nothing is sent until [`send`](Self::send);
/// a header or body that cannot be sent is reported there, as
/// [`TransportError::InvalidRequest`].
#[must_use]
pub struct RequestBuilder<'c> {
    client: &'c Client,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    timeout: Duration,
    /// The first reason the request cannot be sent.
    invalid: Option<String>,
}

impl fmt::Debug for RequestBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl RequestBuilder<'_> {
    fn invalid(mut self, why: String) -> Self {
        self.invalid.get_or_insert(why);
        self
    }

    /// Adds a header (kept beside any other of the same name).
    pub fn header(self, name: &str, value: &str) -> Self {
        self.header_bytes(name, value.as_bytes())
    }

    /// Adds a header whose value need not be UTF-8 or visible ASCII (only
    /// what HTTP cannot carry at all, such as a line break, is refused).
    pub fn header_bytes(self, name: &str, value: &[u8]) -> Self {
        match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value)) {
            (Ok(name), Ok(value)) => self.header_value(name, value),
            (Err(_), _) => self.invalid(format!("{name:?} is not a header name")),
            (_, Err(_)) => self.invalid(format!("the value of {name} cannot be sent in a header")),
        }
    }

    /// Adds a prebuilt header.
    pub fn header_value(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// `Authorization: Bearer <token>`, from a prebuilt [`Bearer`].
    pub fn bearer(mut self, bearer: &Bearer) -> Self {
        match &bearer.header {
            Some(value) => {
                self.headers.insert(header::AUTHORIZATION, value.clone());
                self
            }
            None => self.invalid("the access token cannot be sent in a header".to_owned()),
        }
    }

    /// `Authorization: Bearer <token>`.
    pub fn token(self, token: &str) -> Self {
        self.bearer(&Bearer::new(token))
    }

    /// `Idempotency-Key: key`, when there is one.
    pub fn idempotency_key(self, key: Option<&str>) -> Self {
        match key {
            Some(key) => match HeaderValue::from_str(key) {
                Ok(value) => self.header_value(HeaderName::from_static("idempotency-key"), value),
                Err(_) => self.header_bytes("idempotency-key", key.as_bytes()),
            },
            None => self,
        }
    }

    /// `body` as JSON, with `Content-Type: application/json`.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                self.body = Bytes::from(bytes);
                self
            }
            Err(e) => self.invalid(format!("the body does not serialize: {e}")),
        }
    }

    /// `body` as is, with this `Content-Type` (none when `None`).
    pub fn body(mut self, content_type: Option<&str>, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        match content_type {
            Some(ct) => match HeaderValue::from_str(ct) {
                Ok(value) => {
                    self.headers.insert(header::CONTENT_TYPE, value);
                    self
                }
                Err(_) => self.invalid(format!("{ct:?} cannot be a Content-Type")),
            },
            None => {
                self.headers.remove(header::CONTENT_TYPE);
                self
            }
        }
    }

    /// Another timeout for this request only.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `METHOD /path?query`, as messages name this request.
    pub fn describe(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Sends the request and reads the whole answer, within the timeout.
    pub async fn send(self) -> Result<Response, SendError> {
        let Self { client, method, path, headers, body, timeout, invalid } = self;
        // Named only on failure: the load generator's hot path allocates no message.
        let fail = |kind, source| SendError::new(format!("{method} {path}"), kind, source);
        if let Some(why) = invalid {
            return Err(fail(TransportError::InvalidRequest, Some(why.into())));
        }
        let uri = match target_uri(&client.base, &path) {
            Ok(uri) => uri,
            Err(why) => return Err(fail(TransportError::InvalidRequest, Some(why))),
        };
        let recorded_path = client.shared.recorder.as_ref().map(|_| uri.path().to_owned());
        let safe = resend::safe_to_repeat(&method, uri.path(), &headers);
        // Kept for a resend: a request is consumed by sending it.
        let again = (uri.clone(), headers.clone(), body.clone());
        let request = |uri, headers, body| {
            let mut http_request = http::Request::new(Full::new(body));
            *http_request.method_mut() = method.clone();
            *http_request.uri_mut() = uri;
            *http_request.headers_mut() = headers;
            http_request
        };
        let shared = &client.shared;
        let exchange = async {
            let response = match shared.pool.request(request(uri, headers, body)).await {
                Ok(response) => response,
                Err(e) if resend::may_resend(&e, safe) => {
                    shared.resends.fetch_add(1, Ordering::Relaxed);
                    let (uri, headers, body) = again;
                    shared.fresh.request(request(uri, headers, body)).await.map_err(BoxError::from)?
                }
                Err(e) => return Err(BoxError::from(e)),
            };
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(BoxError::from)?.to_bytes();
            Ok::<_, BoxError>(Response { status: parts.status, headers: parts.headers, body })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(response)) => {
                if let (Some(record), Some(path)) = (&client.shared.recorder, recorded_path) {
                    record(Exchange::of(&method, &path, &response));
                }
                Ok(response)
            }
            Ok(Err(e)) => Err(fail(TransportError::Io, Some(e))),
            Err(_) => Err(fail(TransportError::Timeout, None)),
        }
    }
}

/// `base + path` as a URI, percent-encoding what a request target cannot
/// hold (spaces, quotes, non-ASCII, ...) the way a browser would.
fn target_uri(base: &str, path: &str) -> Result<Uri, BoxError> {
    if !(path.is_empty() || path.starts_with('/')) {
        return Err(format!("the path {path:?} must start with /").into());
    }
    let path = percent_encode_target(path);
    let path = if path.is_empty() { Cow::Borrowed("/") } else { path };
    Ok(format!("{base}{path}").parse::<Uri>()?)
}

fn needs_encoding(b: u8) -> bool {
    !(0x21..=0x7e).contains(&b) || matches!(b, b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}')
}

fn percent_encode_target(path: &str) -> Cow<'_, str> {
    if !path.bytes().any(needs_encoding) {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len() + 16);
    for b in path.bytes() {
        if needs_encoding(b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    Cow::Owned(out)
}

/// Percent-encodes everything but RFC 3986's unreserved characters: for a
/// value in a query (e.g. an opaque cursor).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_base_urls_without_a_query_are_accepted() {
        assert_eq!(
            Client::new("http://127.0.0.1:8080/").map(|c| c.base_url().to_owned()),
            Ok("http://127.0.0.1:8080".to_owned())
        );
        assert!(Client::new("http://127.0.0.1:8080/prefix").is_ok());
        assert!(Client::new("https://example.com").is_err());
        assert!(Client::new("127.0.0.1:8080").is_err());
        assert!(Client::new("http://127.0.0.1:8080/?a=b").is_err());
    }

    #[test]
    fn targets_keep_what_http_carries_and_encode_the_rest() {
        let uri = target_uri("http://h:1", "/v1/payments?limit=2&cursor=a+b/c==").expect("uri");
        assert_eq!(uri.to_string(), "http://h:1/v1/payments?limit=2&cursor=a+b/c==");
        let uri = target_uri("http://h:1", "/v1/a b/é?x=\"y\"").expect("uri");
        assert_eq!(uri.path_and_query().map(|p| p.as_str()), Some("/v1/a%20b/%C3%A9?x=%22y%22"));
        assert_eq!(target_uri("http://h:1/p", "").expect("uri").path(), "/p/");
        assert!(target_uri("http://h:1", "v1/users").is_err());
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query_value("a+b/c=="), "a%2Bb%2Fc%3D%3D");
        assert_eq!(encode_query_value("AZaz09-._~"), "AZaz09-._~");
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_sent_fails_before_the_network() {
        // Port 9 (discard) on a documentation address: never contacted.
        let client = Client::new("http://192.0.2.1:9").expect("client");
        let err = client.get("/x").header("bad header", "v").send().await.expect_err("invalid");
        assert_eq!(err.kind, TransportError::InvalidRequest);
        let err = client.get("/x").header_bytes("x-a", b"line\nbreak").send().await.expect_err("invalid");
        assert_eq!(err.kind, TransportError::InvalidRequest);
        let err = client.get("/x").bearer(&Bearer::new("a\nb")).send().await.expect_err("invalid");
        assert!(err.to_string().starts_with("GET /x: not sent (the access token"), "{err}");
        assert_eq!(format!("{:?}", Bearer::new("secret")), "Bearer(…)");
    }
}
