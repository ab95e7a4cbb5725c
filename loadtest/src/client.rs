//! The one HTTP client every request of a run goes through: a [`Target`]
//! is a base URL plus a keep-alive connection pool.
//!
//! Why it exists: the generator shares a 2-core machine with the system
//! under test, so every microsecond it spends per request is stolen from
//! what it measures. We use hyper-util's connection-pooling client
//! directly rather than reqwest (which wraps the same client): no URL
//! re-parsing and redirect policy per request, no per-request header-map
//! merging, no boxed body and response wrappers; the request is built from
//! pre-computed header values and the response body is read into one
//! buffer. Both are already in the tree, so this adds no crate.
//!
//! It is also what keeps a run honest about *where* it sends traffic:
//! every request is `base URL + a fixed API path`, and redirects are never
//! followed (hyper has no redirect logic; a 3xx is recorded as a status).
//! Only `http://` is supported: the tool measures loopback deployments.

use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::Deserialize;

/// Why a request got no HTTP answer. Counted apart from HTTP errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransportError {
    /// No complete answer within the request timeout.
    Timeout,
    /// Connecting, sending or reading failed (refused, reset, closed).
    Io,
}

impl TransportError {
    /// A stable name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Io => "transport",
        }
    }
}

/// One answer, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Reply {
    /// The problem `code` of an error answer (docs/api.md: every error is
    /// `application/problem+json` with a `code`), if it has one.
    pub fn problem_code(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Problem {
            code: Option<String>,
        }
        if self.status.is_success() {
            return None;
        }
        serde_json::from_slice::<Problem>(&self.body).ok().and_then(|p| p.code)
    }

    /// The body as JSON of type `T`, when the status is `expected`.
    pub fn json<T: for<'de> Deserialize<'de>>(&self, expected: u16, what: &str) -> Result<T> {
        ensure!(
            self.status.as_u16() == expected,
            "{what}: expected {expected}, got {}: {}",
            self.status,
            String::from_utf8_lossy(&self.body.slice(..self.body.len().min(300)))
        );
        serde_json::from_slice(&self.body).with_context(|| format!("{what}: unexpected body"))
    }
}

/// A base URL and the pooled client that talks to it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port` plus an optional path prefix, without a trailing `/`.
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Target {
    /// A client for `base_url` (`http://host:port[/prefix]`) whose requests
    /// give up after `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self> {
        let base = base_url.trim_end_matches('/').to_owned();
        let uri: Uri = base.parse().with_context(|| format!("the base URL {base_url:?} is not a URL"))?;
        if uri.scheme_str() != Some("http") {
            bail!("the base URL must be http:// (the generator measures plain-HTTP deployments), got {base_url:?}");
        }
        ensure!(uri.host().is_some(), "the base URL {base_url:?} has no host");
        ensure!(uri.query().is_none(), "the base URL {base_url:?} must not have a query");
        let mut connector = HttpConnector::new();
        // Small request/response pairs: Nagle would hold a segment back
        // waiting for an ACK and add up to 40 ms of delayed-ACK latency.
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(usize::MAX)
            .build(connector);
        Ok(Self { base, client, timeout })
    }

    /// The base URL, as given (without a trailing `/`).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends one request to `base URL + path_and_query` and reads the whole
    /// answer, within the request timeout. `auth` is a ready
    /// `Bearer …` header value; `body` is sent as `application/json`.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        auth: Option<&HeaderValue>,
        idempotency_key: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, TransportError> {
        let mut builder = Request::builder().method(method).uri(format!("{}{path_and_query}", self.base));
        if let Some(auth) = auth {
            builder = builder.header(header::AUTHORIZATION, auth.clone());
        }
        if let Some(key) = idempotency_key {
            builder = builder.header("idempotency-key", key);
        }
        let body = match body {
            Some(bytes) => {
                builder = builder.header(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Full::new(Bytes::from(bytes))
            }
            None => Full::new(Bytes::new()),
        };
        // Only a malformed path could fail here, and every path is ours.
        let request = builder.body(body).map_err(|_| TransportError::Io)?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|_| TransportError::Io)?;
            let status = response.status();
            let body = response.into_body().collect().await.map_err(|_| TransportError::Io)?.to_bytes();
            Ok(Reply { status, body })
        };
        tokio::time::timeout(self.timeout, exchange).await.unwrap_or(Err(TransportError::Timeout))
    }

    /// A `GET`, for setup and checks.
    pub async fn get(&self, path: &str, auth: Option<&HeaderValue>) -> Result<Reply> {
        self.send(Method::GET, path, auth, None, None)
            .await
            .map_err(|e| anyhow::anyhow!("GET {path}: no answer ({})", e.as_str()))
    }

    /// A `POST` with a JSON body, for setup and checks.
    pub async fn post(&self, path: &str, auth: Option<&HeaderValue>, body: &serde_json::Value) -> Result<Reply> {
        let bytes = serde_json::to_vec(body).context("encoding a request body")?;
        self.send(Method::POST, path, auth, None, Some(bytes))
            .await
            .map_err(|e| anyhow::anyhow!("POST {path}: no answer ({})", e.as_str()))
    }
}

/// The `Authorization` value for a token.
pub fn bearer(token: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(&format!("Bearer {token}")).context("the access token is not a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_base_urls_are_accepted() {
        assert!(Target::new("http://127.0.0.1:8080/", Duration::from_secs(1)).is_ok());
        assert!(Target::new("https://example.com", Duration::from_secs(1)).is_err());
        assert!(Target::new("127.0.0.1:8080", Duration::from_secs(1)).is_err());
        assert!(Target::new("http://127.0.0.1:8080/?a=b", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn a_problem_code_is_read_from_error_answers_only() {
        let problem = Reply { status: StatusCode::CONFLICT, body: Bytes::from_static(br#"{"code":"email_taken"}"#) };
        assert_eq!(problem.problem_code().as_deref(), Some("email_taken"));
        let ok = Reply { status: StatusCode::OK, body: Bytes::from_static(br#"{"code":"x"}"#) };
        assert_eq!(ok.problem_code(), None);
        let html = Reply { status: StatusCode::BAD_GATEWAY, body: Bytes::from_static(b"<html>") };
        assert_eq!(html.problem_code(), None);
    }
}
