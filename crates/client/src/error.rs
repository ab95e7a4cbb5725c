//! What can go wrong talking to twinshop, in three layers a caller can
//! tell apart: no answer at all ([`SendError`], with its
//! [`TransportError`] kind), an answer other than the one a call expects
//! ([`HttpError`], usually a problem+json), and an expected answer whose
//! body breaks the contract ([`ContractError`]). [`ApiError`] is any of
//! the three, as the typed calls return it.
//!
//! Why it exists: a load generator counts timeouts apart from refused
//! connections and both apart from HTTP errors; a test wants the problem
//! `code` of a refusal; a lab wants to know whether an answer was a replay.
//! One error type that carries all of it (status, parsed problem, raw body,
//! `Idempotent-Replayed`) serves all of them. Depends on `http` and serde
//! only.

use std::{error::Error as StdError, fmt};

use http::{HeaderMap, StatusCode};
use hyper::body::Bytes;

use crate::types::Problem;

/// A boxed error from the transport underneath.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a request got no HTTP answer. Counted apart from HTTP errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransportError {
    /// No complete answer within the request timeout.
    Timeout,
    /// Connecting, sending or reading failed (refused, reset, closed).
    Io,
    /// The request could not be sent as built (a path or header value that
    /// HTTP cannot carry, a body that would not serialize): nothing left.
    InvalidRequest,
}

impl TransportError {
    /// A stable name for reports (`timeout`, `transport`, `invalid_request`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Io => "transport",
            Self::InvalidRequest => "invalid_request",
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request that got no HTTP answer: which request, why, and the
/// transport's own error when there is one.
#[derive(Debug)]
pub struct SendError {
    /// `METHOD /path?query`, for messages.
    pub request: String,
    /// Timeout, I/O or a request that could not be built.
    pub kind: TransportError,
    /// What the transport said, if anything.
    pub source: Option<BoxError>,
}

impl SendError {
    pub(crate) fn new(request: String, kind: TransportError, source: Option<BoxError>) -> Self {
        Self { request, kind, source }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            TransportError::Timeout => "no answer within the timeout",
            TransportError::Io => "no answer",
            TransportError::InvalidRequest => "not sent",
        };
        write!(f, "{}: {what}", self.request)?;
        // The whole chain on one line: hyper's outer error alone ("client
        // error (Connect)") does not say what happened.
        let mut next: Option<&(dyn StdError + 'static)> = self.source.as_deref().map(|e| e as _);
        let mut sep = " (";
        while let Some(err) = next {
            write!(f, "{sep}{err}")?;
            sep = ": ";
            next = err.source();
        }
        if sep == ": " {
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl StdError for SendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// The first 300 characters of a body, for messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(300).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

/// An HTTP answer with another status than the call expects.
#[derive(Debug, Clone)]
pub struct HttpError {
    /// `METHOD /path?query`, for messages.
    pub request: String,
    /// The status the call expects on success.
    pub expected: StatusCode,
    /// The status it got.
    pub status: StatusCode,
    /// Its headers (e.g. `Retry-After` on `429` and `503 overloaded`).
    pub headers: HeaderMap,
    /// The whole body, as received.
    pub body: Bytes,
    /// The body as a problem (API.md: every error is problem+json), if it is one.
    pub problem: Option<Problem>,
    /// Whether the answer says `Idempotent-Replayed: true` (an error
    /// answer to a keyed request is replayed too).
    pub replayed: bool,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: expected {}, got {}", self.request, self.expected.as_u16(), self.status.as_u16())?;
        match &self.problem {
            Some(p) => write!(f, " {}", p.code)?,
            None => write!(f, ": {}", snippet(&self.body))?,
        }
        if let Some(detail) = self.problem.as_ref().and_then(|p| p.detail.as_deref()) {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

/// An answer with the expected status whose body breaks the contract: not
/// the JSON API.md describes, or cursors that loop.
#[derive(Debug, Clone)]
pub struct ContractError {
    /// `METHOD /path?query`, for messages.
    pub request: String,
    /// The status, which was the expected one.
    pub status: StatusCode,
    /// The whole body, as received.
    pub body: Bytes,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}: {}", self.request, self.status.as_u16(), self.reason, snippet(&self.body))
    }
}

/// Why a typed call did not return its value.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No HTTP answer (see [`TransportError`]).
    #[error(transparent)]
    Transport(#[from] SendError),
    /// Another status than the call expects: usually a problem (a 4xx the
    /// contract names, or a 5xx).
    #[error("{0}")]
    Http(Box<HttpError>),
    /// The expected status with a body that breaks the contract.
    #[error("{0}")]
    Contract(Box<ContractError>),
}

impl ApiError {
    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Transport(_) => None,
            Self::Http(e) => Some(e.status),
            Self::Contract(e) => Some(e.status),
        }
    }

    /// The parsed problem of an error answer.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::Http(e) => e.problem.as_ref(),
            Self::Transport(_) | Self::Contract(_) => None,
        }
    }

    /// The problem's machine-readable `code` (e.g. `email_taken`).
    pub fn code(&self) -> Option<&str> {
        self.problem().map(|p| p.code.as_str())
    }

    /// Whether this is an error answer with exactly this problem `code`.
    pub fn is_code(&self, code: &str) -> bool {
        self.code() == Some(code)
    }

    /// Whether the (error) answer says `Idempotent-Replayed: true`.
    pub fn replayed(&self) -> bool {
        matches!(self, Self::Http(e) if e.replayed)
    }

    /// Why there was no answer, if there was none.
    pub fn transport(&self) -> Option<TransportError> {
        match self {
            Self::Transport(e) => Some(e.kind),
            Self::Http(_) | Self::Contract(_) => None,
        }
    }

    /// The raw body of the answer, if there was one.
    pub fn body(&self) -> Option<&Bytes> {
        match self {
            Self::Transport(_) => None,
            Self::Http(e) => Some(&e.body),
            Self::Contract(e) => Some(&e.body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_error_names_the_request_and_the_whole_cause_chain() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let err = SendError::new("GET /v1/products".into(), TransportError::Io, Some(Box::new(inner)));
        assert_eq!(err.to_string(), "GET /v1/products: no answer (connection refused)");
        let timeout = SendError::new("POST /v1/orders".into(), TransportError::Timeout, None);
        assert_eq!(timeout.to_string(), "POST /v1/orders: no answer within the timeout");
        assert_eq!(ApiError::from(timeout).transport(), Some(TransportError::Timeout));
    }

    #[test]
    fn transport_kinds_have_stable_report_names() {
        let names: Vec<&str> =
            [TransportError::Timeout, TransportError::Io, TransportError::InvalidRequest].map(|k| k.as_str()).to_vec();
        assert_eq!(names, ["timeout", "transport", "invalid_request"]);
    }

    #[test]
    fn an_http_error_reads_as_status_and_code() {
        let problem = Problem {
            kind: "/problems/email_taken".into(),
            title: "Email already registered".into(),
            status: 409,
            code: "email_taken".into(),
            detail: None,
            errors: Vec::new(),
        };
        let err = ApiError::Http(Box::new(HttpError {
            request: "POST /v1/users".into(),
            expected: StatusCode::CREATED,
            status: StatusCode::CONFLICT,
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"{}"),
            problem: Some(problem),
            replayed: false,
        }));
        assert_eq!(err.to_string(), "POST /v1/users: expected 201, got 409 email_taken");
        assert!(err.is_code("email_taken") && !err.replayed());
        assert_eq!(err.status(), Some(StatusCode::CONFLICT));
    }
}
