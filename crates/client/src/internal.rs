//! The internal contracts of the microservices build (API.md, "Internal
//! contracts"), served on a service's internal port and never routed by
//! the edge: the user lookup over HTTP ([`UserDirectory`]) and the payment
//! service's gRPC API with its health check ([`Payments`]).
//!
//! Why it exists: the order service makes these two calls for every order,
//! so they are what distribution costs; the load generator probes them
//! directly to measure one hop, and tests and labs check them as a port to
//! another language would have to serve them. The gRPC code is generated
//! from `proto/` by this crate's build script ([`pb`]); `grpc.health.v1`
//! comes ready-made from tonic-health, server reflection from
//! tonic-reflection ([`crate::reflection`]).

use std::{error::Error as _, time::Duration};

use http::StatusCode;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use uuid::Uuid;

use crate::{
    error::{ApiError, TransportError},
    raw::{BaseUrlError, Client},
    reflection::{Reflection, ReflectionVersion},
    types::UserLookup,
};

/// The code generated from `proto/twinshop/payment/v1/payments.proto`
/// (client side only).
pub mod pb {
    #![allow(missing_debug_implementations, unused_qualifications, clippy::all)]
    tonic::include_proto!("twinshop.payment.v1");
}

pub use pb::{ChargeOutcome, RefundOutcome};
/// tonic's status and code, as [`RpcError::Status`] carries them (so a
/// caller needs no tonic dependency of its own).
pub use tonic::{Code, Status};
pub use tonic_health::pb::health_check_response::ServingStatus as HealthStatus;

/// The user service's lookup, `GET /internal/v1/users/{id}`, on its
/// internal base URL.
#[derive(Debug, Clone)]
pub struct UserDirectory {
    http: Client,
}

impl UserDirectory {
    /// A lookup client for the internal base URL (e.g. `http://127.0.0.1:9101`).
    pub fn new(internal_base_url: &str) -> Result<Self, BaseUrlError> {
        Ok(Self { http: Client::new(internal_base_url)? })
    }

    /// A lookup client over an existing client (its pool, timeout and recorder).
    pub fn with_client(http: Client) -> Self {
        Self { http }
    }

    /// The raw client underneath.
    pub fn client(&self) -> &Client {
        &self.http
    }

    /// The user's name and address; `None` when the id is unknown (404).
    pub async fn user(&self, id: Uuid) -> Result<Option<UserLookup>, ApiError> {
        let what = format!("GET /internal/v1/users/{id}");
        let response = self.http.get(format!("/internal/v1/users/{id}")).send().await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::OK => response.json().map(Some).map_err(|e| {
                ApiError::Contract(Box::new(crate::ContractError {
                    request: what,
                    status: StatusCode::OK,
                    body: response.body().clone(),
                    reason: format!("not a user lookup ({e})"),
                }))
            }),
            status => Err(ApiError::Http(Box::new(crate::HttpError {
                request: what,
                expected: StatusCode::OK,
                status,
                headers: response.headers().clone(),
                problem: response.problem(),
                replayed: response.replayed(),
                body: response.into_body(),
            }))),
        }
    }
}

/// Why a gRPC call did not return its value.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// No gRPC answer: the call timed out, or the connection failed.
    #[error("{method}: no answer ({kind}): {detail}")]
    Transport {
        /// `Service/Method`.
        method: &'static str,
        /// Timeout or I/O.
        kind: TransportError,
        /// What the transport said.
        detail: String,
    },
    /// The server answered with a non-OK status (e.g. `FAILED_PRECONDITION`).
    #[error("{method}: {}", .status)]
    Status {
        /// `Service/Method`.
        method: &'static str,
        /// The server's status (code, message, details).
        status: Box<Status>,
    },
}

impl RpcError {
    /// The gRPC status code of a server's refusal.
    pub fn code(&self) -> Option<Code> {
        match self {
            Self::Status { status, .. } => Some(status.code()),
            Self::Transport { .. } => None,
        }
    }

    /// Why there was no answer, if there was none.
    pub fn transport(&self) -> Option<TransportError> {
        match self {
            Self::Transport { kind, .. } => Some(*kind),
            Self::Status { .. } => None,
        }
    }

    /// A status tonic made up on the client side (it carries the transport
    /// error as its source) is no answer; one from the server has no source.
    fn from_status(method: &'static str, status: Status) -> Self {
        if status.source().is_some() {
            let kind = if status.code() == Code::Cancelled || status.code() == Code::DeadlineExceeded {
                TransportError::Timeout
            } else {
                TransportError::Io
            };
            return Self::Transport { method, kind, detail: status.message().to_owned() };
        }
        Self::Status { method, status: Box::new(status) }
    }
}

/// What `Charge` decided for an order (its first outcome, replayed after).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charged {
    /// `CHARGED`, `INSUFFICIENT_FUNDS` or `VOIDED`.
    pub outcome: ChargeOutcome,
    /// The balance right after the charge was first decided (0 for `VOIDED`).
    pub balance_cents: i64,
}

/// What `Refund` did for an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refunded {
    /// `REFUNDED`, `ALREADY_REFUNDED` or `NOT_CHARGED`.
    pub outcome: RefundOutcome,
    /// What was given back (0 when nothing was).
    pub amount_cents: i64,
}

/// `twinshop.payment.v1.Payments` and `grpc.health.v1.Health` on the
/// payment service's internal port, over one HTTP/2 connection (opened on
/// first use, re-opened when lost). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Payments {
    channel: Channel,
    timeout: Duration,
}

/// How long a gRPC call may take unless [`Payments::with_timeout`] says otherwise.
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(5);

impl Payments {
    /// A client for `url` (`http://host:port`); connects on the first call.
    pub fn new(url: &str) -> Result<Self, BaseUrlError> {
        let error = |why| BaseUrlError { url: url.to_owned(), why };
        if !url.starts_with("http://") {
            return Err(error("must start with http:// (plain HTTP/2 only)"));
        }
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|_| error("is not a URL"))?
            .tcp_nodelay(true)
            .connect_timeout(DEFAULT_RPC_TIMEOUT);
        Ok(Self { channel: endpoint.connect_lazy(), timeout: DEFAULT_RPC_TIMEOUT })
    }

    /// The same client with another per-call timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The generated client, for calls the typed methods do not cover (ids
    /// that are not UUIDs, metadata).
    pub fn raw(&self) -> pb::payments_client::PaymentsClient<Channel> {
        pb::payments_client::PaymentsClient::new(self.channel.clone())
    }

    async fn within<T>(
        &self,
        method: &'static str,
        call: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, RpcError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(RpcError::from_status(method, status)),
            Err(_) => Err(RpcError::Transport {
                method,
                kind: TransportError::Timeout,
                detail: format!("no answer within {:?}", self.timeout),
            }),
        }
    }

    /// `Charge(order_id, user_id, amount_cents)`: idempotent by `order_id`.
    pub async fn charge(&self, order_id: Uuid, user_id: Uuid, amount_cents: i64) -> Result<Charged, RpcError> {
        let request = pb::ChargeRequest { order_id: order_id.to_string(), user_id: user_id.to_string(), amount_cents };
        let mut client = self.raw();
        let answer = self.within("Payments/Charge", client.charge(request)).await?;
        Ok(Charged { outcome: answer.outcome(), balance_cents: answer.balance_cents })
    }

    /// `Refund(order_id)`: idempotent; before any Charge it leaves a tombstone.
    pub async fn refund(&self, order_id: Uuid) -> Result<Refunded, RpcError> {
        let mut client = self.raw();
        let request = pb::RefundRequest { order_id: order_id.to_string() };
        let answer = self.within("Payments/Refund", client.refund(request)).await?;
        Ok(Refunded { outcome: answer.outcome(), amount_cents: answer.amount_cents })
    }

    /// gRPC server reflection in `version`: the services the server lists
    /// and its description of `service` (e.g. `twinshop.payment.v1.Payments`).
    pub async fn reflect(&self, version: ReflectionVersion, service: &str) -> Result<Reflection, RpcError> {
        let call = async {
            crate::reflection::reflect(self.channel.clone(), version, service).await.map(tonic::Response::new)
        };
        self.within("ServerReflection/ServerReflectionInfo", call).await
    }

    /// `grpc.health.v1.Health/Check` for `service` (`""`: the whole server).
    pub async fn health(&self, service: &str) -> Result<ServingStatus, RpcError> {
        let mut client = HealthClient::new(self.channel.clone());
        let request = HealthCheckRequest { service: service.to_owned() };
        let answer = self.within("Health/Check", client.check(request)).await?;
        Ok(answer.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_from_the_server_are_refusals_and_made_up_ones_are_no_answer() {
        let refused = RpcError::from_status("Payments/Charge", Status::failed_precondition("another amount"));
        assert_eq!(refused.code(), Some(Code::FailedPrecondition));
        assert_eq!(refused.transport(), None);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let lost = RpcError::from_status("Payments/Charge", Status::from_error(Box::new(io)));
        assert_eq!(lost.transport(), Some(TransportError::Io), "{lost:?}");
    }

    #[test]
    fn only_plain_http_urls_make_a_payments_client() {
        assert!(Payments::new("https://example.com").is_err());
        assert!(Payments::new("127.0.0.1:1").is_err());
    }

    #[tokio::test]
    async fn a_closed_port_is_no_answer_not_a_refusal() {
        // Port 9 on loopback: nothing listens there on these machines.
        let payments = Payments::new("http://127.0.0.1:9").expect("client");
        let err = payments.health("").await.expect_err("nothing listens");
        assert_eq!(err.transport(), Some(TransportError::Io), "{err:?}");
    }
}
