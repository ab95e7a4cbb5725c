//! `twinshop.payment.v1.Payments` over gRPC (proto/twinshop/payment/v1).
//!
//! The server runs each call in a span whose parent is the caller's trace
//! context, bounds it by the caller's `grpc-timeout`, and maps the
//! contract's errors through the one error table (`problem`): malformed ids
//! are `INVALID_ARGUMENT`, a repeat with other details
//! `FAILED_PRECONDITION`. The client sends one request per call over one
//! lazily connected HTTP/2 channel, with the time it is given as
//! `grpc-timeout`.

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, anyhow};
use tonic::{Code, Request, Response, Status, transport::Channel};
use tracing::Instrument as _;
use twinshop_contracts::{
    internal::{CallError, Charge, ChargeOutcome, Payments, Refund, RefundOutcome},
    payment::v1::{
        self as pb, ChargeRequest, ChargeResponse, RefundRequest, RefundResponse, payments_client::PaymentsClient,
        payments_server::PaymentsServer,
    },
};
use uuid::Uuid;

use super::{InternalServer, Link, LinkSpec};
use crate::{
    discovery::Balancer,
    problem::{self, ErrorCode, Problem},
    propagation,
};

impl Link for dyn Payments {
    const SPEC: LinkSpec = LinkSpec { name: "payments", address_variable: "PAYMENT_GRPC_URL", service: "payment" };

    fn connect(address: &str) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(GrpcPayments::new(address)?))
    }

    fn balanced(balancer: Balancer<Self>) -> Arc<Self> {
        Arc::new(BalancedPayments(balancer))
    }

    fn serve(provider: Arc<Self>, internal: &mut InternalServer) {
        internal.grpc(PaymentsServer::new(PaymentsGrpcServer(provider)));
    }
}

// ---- server ----

/// Serves a [`Payments`] provider as the generated gRPC service.
#[derive(Clone)]
pub struct PaymentsGrpcServer(pub Arc<dyn Payments>);

impl std::fmt::Debug for PaymentsGrpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PaymentsGrpcServer")
    }
}

/// Without a `grpc-timeout` from the caller, a call may take this long.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

fn span_for<T>(req: &Request<T>, method: &'static str) -> tracing::Span {
    let span = tracing::info_span!(
        "grpc.request",
        otel.name = format!("twinshop.payment.v1.Payments/{method}"),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.method = method
    );
    propagation::set_parent(&span, propagation::extract_grpc(req.metadata()));
    span
}

/// The caller's deadline from `grpc-timeout` (`<digits><H|M|S|m|u|n>`).
fn caller_timeout<T>(req: &Request<T>) -> Duration {
    let parsed = req.metadata().get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(|raw| {
        let (digits, unit) = raw.split_at(raw.len().checked_sub(1)?);
        let n: u64 = digits.parse().ok()?;
        Some(match unit {
            "H" => Duration::from_secs(n.saturating_mul(3600)),
            "M" => Duration::from_secs(n.saturating_mul(60)),
            "S" => Duration::from_secs(n),
            "m" => Duration::from_millis(n),
            "u" => Duration::from_micros(n),
            "n" => Duration::from_nanos(n),
            _ => return None,
        })
    });
    parsed.unwrap_or(DEFAULT_TIMEOUT)
}

fn parse_uuid(field: &str, raw: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(raw)
        .map_err(|_| Status::new(ErrorCode::ValidationFailed.grpc_code(), format!("{field}: must be a UUID")))
}

/// `grpc_server_handled_total{grpc_service,grpc_method,grpc_code}`: the
/// calls this replica answered (the discovery lab counts the spread with it).
fn handled<T>(method: &'static str, result: &Result<T, Status>) {
    let code = match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    };
    metrics::counter!("grpc_server_handled_total", "grpc_service" => "twinshop.payment.v1.Payments",
        "grpc_method" => method, "grpc_code" => format!("{code:?}"))
    .increment(1);
}

fn status_of(err: CallError) -> Status {
    match err {
        CallError::Unavailable(err) => problem::internal(&err).to_status(),
        CallError::InvalidArgument(message) => Status::new(ErrorCode::ValidationFailed.grpc_code(), message),
        CallError::FailedPrecondition(message) => {
            Problem::new(ErrorCode::IdempotencyKeyReused).with_detail(message).to_status()
        }
    }
}

/// Runs `call` within the caller's deadline.
async fn bounded<T>(timeout: Duration, call: impl Future<Output = Result<T, CallError>>) -> Result<T, Status> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(status_of),
        Err(_) => Err(Status::deadline_exceeded("the caller's deadline passed")),
    }
}

#[tonic::async_trait]
impl pb::payments_server::Payments for PaymentsGrpcServer {
    async fn charge(&self, request: Request<ChargeRequest>) -> Result<Response<ChargeResponse>, Status> {
        let span = span_for(&request, "Charge");
        let timeout = caller_timeout(&request);
        let req = request.into_inner();
        let result = async move {
            let order_id = parse_uuid("order_id", &req.order_id)?;
            let user_id = parse_uuid("user_id", &req.user_id)?;
            let charge = bounded(timeout, self.0.charge(order_id, user_id, req.amount_cents, timeout)).await?;
            let outcome = match charge.outcome {
                ChargeOutcome::Charged => pb::ChargeOutcome::Charged,
                ChargeOutcome::InsufficientFunds => pb::ChargeOutcome::InsufficientFunds,
                ChargeOutcome::Voided => pb::ChargeOutcome::Voided,
            };
            Ok(Response::new(ChargeResponse { outcome: outcome.into(), balance_cents: charge.balance_cents }))
        }
        .instrument(span)
        .await;
        handled("Charge", &result);
        result
    }

    async fn refund(&self, request: Request<RefundRequest>) -> Result<Response<RefundResponse>, Status> {
        let span = span_for(&request, "Refund");
        let timeout = caller_timeout(&request);
        let req = request.into_inner();
        let result = async move {
            let order_id = parse_uuid("order_id", &req.order_id)?;
            let refund = bounded(timeout, self.0.refund(order_id, timeout)).await?;
            let outcome = match refund.outcome {
                RefundOutcome::Refunded => pb::RefundOutcome::Refunded,
                RefundOutcome::AlreadyRefunded => pb::RefundOutcome::AlreadyRefunded,
                RefundOutcome::NotCharged => pb::RefundOutcome::NotCharged,
            };
            Ok(Response::new(RefundResponse { outcome: outcome.into(), amount_cents: refund.amount_cents }))
        }
        .instrument(span)
        .await;
        handled("Refund", &result);
        result
    }
}

// ---- client ----

/// The client: one lazily connected HTTP/2 channel to the payment service.
#[derive(Debug, Clone)]
pub struct GrpcPayments {
    client: PaymentsClient<Channel>,
}

impl GrpcPayments {
    /// `url` like `http://payment:9082` (the internal port).
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(url.to_owned())
            .context("payment gRPC URL is malformed")?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .connect_lazy();
        Ok(Self { client: PaymentsClient::new(channel) })
    }
}

fn request<T>(message: T, timeout: Duration) -> Request<T> {
    let mut req = Request::new(message);
    req.set_timeout(timeout);
    propagation::inject_grpc(req.metadata_mut());
    req
}

/// A status as the contract's error. Everything but a refusal may have
/// taken effect (`Cancelled` is what tonic reports when the server died
/// mid-call), so it is `Unavailable`: safe to retry, outcome unknown.
fn call_error(method: &str, status: Status) -> CallError {
    match status.code() {
        Code::InvalidArgument => CallError::InvalidArgument(format!("{method}: {}", status.message())),
        Code::FailedPrecondition => CallError::FailedPrecondition(format!("{method}: {}", status.message())),
        _ => CallError::Unavailable(anyhow!("{method}: {status}")),
    }
}

/// Runs one call, bounded locally as well (a stuck connection must not
/// outlive the deadline the server was told).
async fn bounded_call<T>(
    method: &str,
    timeout: Duration,
    call: impl Future<Output = Result<Response<T>, Status>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(call_error(method, status)),
        Err(_) => Err(CallError::Unavailable(anyhow!("{method}: deadline exceeded"))),
    }
}

#[async_trait::async_trait]
impl Payments for GrpcPayments {
    async fn charge(
        &self,
        order_id: Uuid,
        user_id: Uuid,
        amount_cents: i64,
        timeout: Duration,
    ) -> Result<Charge, CallError> {
        let span = tracing::info_span!("payment.charge", otel.name = "twinshop.payment.v1.Payments/Charge", otel.kind = "client",
            rpc.system = "grpc", order_id = %order_id);
        let message = ChargeRequest { order_id: order_id.to_string(), user_id: user_id.to_string(), amount_cents };
        let req = span.in_scope(|| request(message, timeout));
        let mut client = self.client.clone();
        let response = bounded_call("Charge", timeout, client.charge(req)).instrument(span).await?;
        let outcome = match response.outcome() {
            pb::ChargeOutcome::Charged => ChargeOutcome::Charged,
            pb::ChargeOutcome::InsufficientFunds => ChargeOutcome::InsufficientFunds,
            pb::ChargeOutcome::Voided => ChargeOutcome::Voided,
            pb::ChargeOutcome::Unspecified => {
                return Err(CallError::FailedPrecondition("Charge answered without an outcome".into()));
            }
        };
        Ok(Charge { outcome, balance_cents: response.balance_cents })
    }

    async fn refund(&self, order_id: Uuid, timeout: Duration) -> Result<Refund, CallError> {
        let span = tracing::info_span!("payment.refund", otel.name = "twinshop.payment.v1.Payments/Refund", otel.kind = "client",
            rpc.system = "grpc", order_id = %order_id);
        let req = span.in_scope(|| request(RefundRequest { order_id: order_id.to_string() }, timeout));
        let mut client = self.client.clone();
        let response = bounded_call("Refund", timeout, client.refund(req)).instrument(span).await?;
        let outcome = match response.outcome() {
            pb::RefundOutcome::Refunded => RefundOutcome::Refunded,
            pb::RefundOutcome::AlreadyRefunded => RefundOutcome::AlreadyRefunded,
            pb::RefundOutcome::NotCharged => RefundOutcome::NotCharged,
            pb::RefundOutcome::Unspecified => {
                return Err(CallError::FailedPrecondition("Refund answered without an outcome".into()));
            }
        };
        Ok(Refund { outcome, amount_cents: response.amount_cents })
    }
}

/// [`Payments`] over every endpoint discovery found, one picked per call.
#[derive(Debug)]
pub struct BalancedPayments(pub Balancer<dyn Payments>);

#[async_trait::async_trait]
impl Payments for BalancedPayments {
    async fn charge(
        &self,
        order_id: Uuid,
        user_id: Uuid,
        amount_cents: i64,
        timeout: Duration,
    ) -> Result<Charge, CallError> {
        self.0.call(|p| async move { p.charge(order_id, user_id, amount_cents, timeout).await }).await
    }

    async fn refund(&self, order_id: Uuid, timeout: Duration) -> Result<Refund, CallError> {
        self.0.call(|p| async move { p.refund(order_id, timeout).await }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_grpc_timeout_bounds_the_call() {
        let with = |raw: &str| {
            let mut req = Request::new(());
            req.metadata_mut().insert("grpc-timeout", raw.parse().expect("ascii"));
            caller_timeout(&req)
        };
        assert_eq!(with("1500m"), Duration::from_millis(1500));
        assert_eq!(with("2S"), Duration::from_secs(2));
        assert_eq!(with("250000u"), Duration::from_millis(250));
        assert_eq!(with("nonsense"), DEFAULT_TIMEOUT);
        assert_eq!(caller_timeout(&Request::new(())), DEFAULT_TIMEOUT);
    }
}
