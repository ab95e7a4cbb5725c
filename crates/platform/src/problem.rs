//! The one error table: every stable error `code` twinshop answers with, and
//! what it means in HTTP and in gRPC.
//!
//! Why it exists: docs/api.md lists the codes; this is the only place that knows
//! their status. Use-case errors map to an [`ErrorCode`] in each area's edge
//! adapter; the edge turns that into `application/problem+json` (HTTP) or a
//! `tonic::Status` (gRPC). 5xx bodies are opaque: the cause goes to the log.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::validation::{FieldError, FieldErrors};

/// Every machine-readable error code of the public and internal APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    ValidationFailed,
    MalformedJson,
    Unauthorized,
    InvalidCredentials,
    NotFound,
    MethodNotAllowed,
    EmailTaken,
    IdempotencyKeyInUse,
    PayloadTooLarge,
    UnsupportedMediaType,
    IdempotencyKeyReused,
    OrderNotCancellable,
    UnknownProduct,
    AddressRequired,
    PaymentUnavailable,
    DependencyUnavailable,
    /// A client asked for too much of something expensive (logins for one
    /// account); answered with `Retry-After`.
    TooManyRequests,
    /// The process is at its bound of requests in flight
    /// ([`crate::http::shed`]); answered at once with `Retry-After`.
    Overloaded,
    /// Anything unexpected. Never carries detail to the client.
    Internal,
}

impl ErrorCode {
    /// Every code, in the table's order.
    pub const ALL: [Self; 19] = [
        Self::ValidationFailed,
        Self::MalformedJson,
        Self::Unauthorized,
        Self::InvalidCredentials,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::EmailTaken,
        Self::IdempotencyKeyInUse,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::IdempotencyKeyReused,
        Self::OrderNotCancellable,
        Self::UnknownProduct,
        Self::AddressRequired,
        Self::PaymentUnavailable,
        Self::DependencyUnavailable,
        Self::TooManyRequests,
        Self::Overloaded,
        Self::Internal,
    ];

    /// `(code, HTTP status, title, gRPC code)`: the table itself.
    const fn row(self) -> (&'static str, u16, &'static str, tonic::Code) {
        use tonic::Code as G;
        match self {
            Self::ValidationFailed => ("validation_failed", 400, "Request validation failed", G::InvalidArgument),
            Self::MalformedJson => ("malformed_json", 400, "Malformed JSON body", G::InvalidArgument),
            Self::Unauthorized => ("unauthorized", 401, "Authentication required", G::Unauthenticated),
            Self::InvalidCredentials => ("invalid_credentials", 401, "Invalid email or password", G::Unauthenticated),
            Self::NotFound => ("not_found", 404, "Not found", G::NotFound),
            Self::MethodNotAllowed => ("method_not_allowed", 405, "Method not allowed", G::Unimplemented),
            Self::EmailTaken => ("email_taken", 409, "Email already registered", G::AlreadyExists),
            Self::IdempotencyKeyInUse => ("idempotency_key_in_use", 409, "Idempotency key in use", G::Aborted),
            Self::PayloadTooLarge => ("payload_too_large", 413, "Payload too large", G::ResourceExhausted),
            Self::UnsupportedMediaType => ("unsupported_media_type", 415, "Unsupported media type", G::InvalidArgument),
            Self::IdempotencyKeyReused => {
                ("idempotency_key_reused", 422, "Idempotency key reused", G::FailedPrecondition)
            }
            Self::OrderNotCancellable => ("order_not_cancellable", 409, "Order not cancellable", G::FailedPrecondition),
            Self::UnknownProduct => ("unknown_product", 422, "Unknown product", G::InvalidArgument),
            Self::AddressRequired => ("address_required", 422, "Shipping address required", G::FailedPrecondition),
            Self::PaymentUnavailable => ("payment_unavailable", 503, "Payment unavailable", G::Unavailable),
            Self::DependencyUnavailable => ("dependency_unavailable", 503, "Dependency unavailable", G::Unavailable),
            // google.rpc.Code's own pairs: RESOURCE_EXHAUSTED is HTTP 429,
            // UNAVAILABLE is 503 (retry later, nothing was done).
            Self::TooManyRequests => ("too_many_requests", 429, "Too many requests", G::ResourceExhausted),
            Self::Overloaded => ("overloaded", 503, "Overloaded", G::Unavailable),
            Self::Internal => ("internal_error", 500, "Internal server error", G::Internal),
        }
    }

    pub const fn as_str(self) -> &'static str {
        self.row().0
    }

    pub fn status(self) -> StatusCode {
        StatusCode::from_u16(self.row().1).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub const fn title(self) -> &'static str {
        self.row().2
    }

    pub const fn grpc_code(self) -> tonic::Code {
        self.row().3
    }
}

/// An API error on its way out: a code, an optional safe detail, for
/// `validation_failed` the field list, and for a refusal that says when to
/// come back (`too_many_requests`, `overloaded`) the `Retry-After` seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: ErrorCode,
    pub detail: Option<String>,
    pub errors: Vec<FieldError>,
    /// `Retry-After` in whole seconds (at least 1), sent as a header.
    pub retry_after: Option<u64>,
}

/// The response extension that carries the error code to the metrics layer.
#[derive(Debug, Clone, Copy)]
pub struct ProblemCode(pub &'static str);

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'static str,
    status: u16,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

impl Problem {
    pub fn new(code: ErrorCode) -> Self {
        Self { code, detail: None, errors: Vec::new(), retry_after: None }
    }

    /// A client-safe sentence. Never pass an error's `to_string()` here.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn validation(errors: FieldErrors) -> Self {
        Self {
            code: ErrorCode::ValidationFailed,
            detail: Some("One or more fields are invalid.".into()),
            errors: errors.into_vec(),
            retry_after: None,
        }
    }

    /// Says when to try again: `Retry-After` in whole seconds, rounded up,
    /// at least 1 (RFC 9110 §10.2.3, the delay-seconds form).
    pub fn with_retry_after(mut self, after: std::time::Duration) -> Self {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        self.retry_after = Some(secs.max(1));
        self
    }

    /// A single-field validation problem.
    pub fn invalid_field(field: &str, message: &str) -> Self {
        let mut errors = FieldErrors::new();
        errors.push(field, message);
        Self::validation(errors)
    }

    /// The JSON body, as served. Public so the edge config and tests can
    /// produce byte-identical bodies.
    pub fn to_json(&self) -> String {
        let body = Body {
            type_: format!("/problems/{}", self.code.as_str()),
            title: self.code.title(),
            status: self.code.status().as_u16(),
            code: self.code.as_str(),
            detail: self.detail.as_deref(),
            errors: (self.code == ErrorCode::ValidationFailed).then_some(self.errors.as_slice()),
        };
        serde_json::to_string(&body).unwrap_or_else(|_| String::from(r#"{"code":"internal_error","status":500}"#))
    }

    /// For gRPC edges: the same code as a `tonic::Status`.
    pub fn to_status(&self) -> tonic::Status {
        let message = self.detail.clone().unwrap_or_else(|| self.code.title().to_owned());
        tonic::Status::new(self.code.grpc_code(), message)
    }
}

impl From<ErrorCode> for Problem {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut res = (self.code.status(), self.to_json()).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res.extensions_mut().insert(ProblemCode(self.code.as_str()));
        res
    }
}

/// Logs an unexpected error with its whole cause chain and answers an
/// opaque 500, or 503 `dependency_unavailable` when the cause is a store
/// this request needed being unreachable (the client may retry later).
pub fn internal(err: &anyhow::Error) -> Problem {
    if is_unavailable(err) {
        tracing::warn!(error = format!("{err:#}"), "dependency unavailable");
        return Problem::new(ErrorCode::DependencyUnavailable);
    }
    tracing::error!(error = format!("{err:#}"), "unexpected error");
    Problem::new(ErrorCode::Internal)
}

/// `true` if the error chain says a backing store could not be reached
/// (as opposed to a bug or a bad query): no connection, or the server
/// ending the session. PostgreSQL says the latter with SQLSTATE class
/// `57P` (shut down, crashed, killed by an administrator, not accepting
/// connections yet) or `08` (connection exception), or with `53300` (too
/// many connections); the fault lab saw `57P` when it crashed PostgreSQL
/// under a placement, which used to be answered 500.
pub fn is_unavailable(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| match cause.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::Tls(_)) => true,
        Some(sqlx::Error::Database(db)) => {
            db.code().is_some_and(|code| code.starts_with("57P") || code.starts_with("08") || code == "53300")
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_code_once() {
        // The match has no wildcard: a new variant does not compile until
        // it is placed here, and then the position check asks for it in ALL.
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            let position = match code {
                ErrorCode::ValidationFailed => 0,
                ErrorCode::MalformedJson => 1,
                ErrorCode::Unauthorized => 2,
                ErrorCode::InvalidCredentials => 3,
                ErrorCode::NotFound => 4,
                ErrorCode::MethodNotAllowed => 5,
                ErrorCode::EmailTaken => 6,
                ErrorCode::IdempotencyKeyInUse => 7,
                ErrorCode::PayloadTooLarge => 8,
                ErrorCode::UnsupportedMediaType => 9,
                ErrorCode::IdempotencyKeyReused => 10,
                ErrorCode::OrderNotCancellable => 11,
                ErrorCode::UnknownProduct => 12,
                ErrorCode::AddressRequired => 13,
                ErrorCode::PaymentUnavailable => 14,
                ErrorCode::DependencyUnavailable => 15,
                ErrorCode::TooManyRequests => 16,
                ErrorCode::Overloaded => 17,
                ErrorCode::Internal => 18,
            };
            assert_eq!(i, position, "{code:?}");
        }
    }

    #[test]
    fn validation_problems_list_their_fields_and_others_do_not() {
        let json: serde_json::Value =
            serde_json::from_str(&Problem::invalid_field("email", "bad").to_json()).expect("json");
        assert_eq!(json["status"], 400);
        assert_eq!(json["code"], "validation_failed");
        assert_eq!(json["type"], "/problems/validation_failed");
        assert_eq!(json["errors"][0]["field"], "email");
        let json: serde_json::Value =
            serde_json::from_str(&Problem::new(ErrorCode::EmailTaken).to_json()).expect("json");
        assert_eq!(json["status"], 409);
        assert!(json.get("errors").is_none());
    }

    #[test]
    fn a_refusal_says_when_to_come_back_in_whole_seconds() {
        use std::time::Duration;
        let header = |p: Problem| {
            let res = p.into_response();
            res.headers().get(header::RETRY_AFTER).map(|v| v.to_str().unwrap_or("").to_owned())
        };
        let p = Problem::new(ErrorCode::TooManyRequests);
        assert_eq!(header(p.clone().with_retry_after(Duration::from_millis(1500))).as_deref(), Some("2"));
        assert_eq!(header(p.clone().with_retry_after(Duration::ZERO)).as_deref(), Some("1"));
        assert_eq!(header(p.clone().with_retry_after(Duration::from_secs(60))).as_deref(), Some("60"));
        assert_eq!(header(p), None);
        assert_eq!(ErrorCode::TooManyRequests.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(ErrorCode::Overloaded.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ErrorCode::Overloaded.grpc_code(), tonic::Code::Unavailable);
    }

    #[test]
    fn the_table_gives_each_code_one_status_and_grpc_code() {
        assert_eq!(ErrorCode::UnknownProduct.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(ErrorCode::PaymentUnavailable.grpc_code(), tonic::Code::Unavailable);
        assert_eq!(ErrorCode::NotFound.to_owned().as_str(), "not_found");
    }
}
