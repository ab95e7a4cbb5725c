//! One answer, read whole: status, headers and every byte of the body,
//! with the readings every user of the raw layer needs (JSON, media type,
//! `Idempotent-Replayed`, the problem of an error answer).
//!
//! Why it exists: the raw layer returns answers as they came, so callers
//! can judge them (the conformance suite) or count them cheaply (the load
//! generator reads only a problem's `code`); the typed layer reads its
//! values from the same type.

use std::borrow::Cow;

use http::{HeaderMap, StatusCode};
use hyper::body::Bytes;
use serde::{Deserialize, de::DeserializeOwned};

use crate::types::Problem;

/// One answer, read whole.
#[derive(Debug, Clone)]
pub struct Response {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Response {
    /// An answer as if received (for tests of code that reads answers).
    pub fn new(status: StatusCode, headers: HeaderMap, body: impl Into<Bytes>) -> Self {
        Self { status, headers, body: body.into() }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Every header, values as received.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// A header's value, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The whole body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The whole body, taken.
    pub fn into_body(self) -> Bytes {
        self.body
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The body as JSON of type `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The media type, lowercase, without parameters (`""` when none).
    pub fn media_type(&self) -> String {
        let ct = self.header("content-type").unwrap_or_default();
        ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
    }

    /// Whether the answer says `Idempotent-Replayed: true`.
    pub fn replayed(&self) -> bool {
        self.header("idempotent-replayed").is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// The body as a problem, for an error answer that is one.
    pub fn problem(&self) -> Option<Problem> {
        if self.status.is_success() {
            return None;
        }
        self.json().ok()
    }

    /// Only the problem `code` of an error answer: cheaper than
    /// [`problem`](Self::problem), for counting.
    pub fn problem_code(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Code {
            code: Option<String>,
        }
        if self.status.is_success() {
            return None;
        }
        serde_json::from_slice::<Code>(&self.body).ok().and_then(|c| c.code)
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, header};

    use super::*;

    #[test]
    fn a_problem_code_is_read_from_error_answers_only() {
        let answer = |status, body: &'static [u8]| Response::new(status, HeaderMap::new(), Bytes::from_static(body));
        assert_eq!(
            answer(StatusCode::CONFLICT, br#"{"code":"email_taken"}"#).problem_code().as_deref(),
            Some("email_taken")
        );
        assert_eq!(answer(StatusCode::OK, br#"{"code":"x"}"#).problem_code(), None);
        assert_eq!(answer(StatusCode::BAD_GATEWAY, b"<html>").problem_code(), None);
        assert_eq!(
            answer(StatusCode::CONFLICT, br#"{"code":"email_taken"}"#).problem().map(|p| p.code),
            Some("email_taken".into())
        );
    }

    #[test]
    fn media_type_and_replay_are_read_from_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("Application/Problem+JSON; charset=utf-8"));
        headers.insert("idempotent-replayed", HeaderValue::from_static("TRUE"));
        let r = Response::new(StatusCode::CREATED, headers, Bytes::new());
        assert_eq!(r.media_type(), "application/problem+json");
        assert!(r.replayed());
        assert!(!Response::new(StatusCode::CREATED, HeaderMap::new(), Bytes::new()).replayed());
    }
}
