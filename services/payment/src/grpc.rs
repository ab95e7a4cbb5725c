//! The payment area's internal gRPC adapter: `twinshop.payment.v1.Payments`.
//!
//! Each call runs in a span whose parent is the caller's trace context
//! (from the request metadata); the deadline the caller set arrives as
//! `grpc-timeout` and tonic enforces it. Argument errors are
//! `INVALID_ARGUMENT`, a mismatched repeat is `FAILED_PRECONDITION`
//! (the error table in `twinshop_platform::problem` maps the codes).

use tonic::{Request, Response, Status};
use tracing::Instrument as _;
use twinshop_contracts::payment::v1::{
    ChargeOutcome as PbChargeOutcome, ChargeRequest, ChargeResponse, RefundOutcome as PbRefundOutcome, RefundRequest,
    RefundResponse, payments_server::Payments,
};
use twinshop_platform::{
    problem::{self, ErrorCode, Problem},
    propagation,
};
use uuid::Uuid;

use crate::{
    app::{ChargeError, PaymentService, RefundError},
    domain::{Amount, ChargeOutcome, RefundOutcome},
};

#[derive(Debug, Clone)]
pub struct PaymentsGrpc {
    payments: PaymentService,
}

impl PaymentsGrpc {
    pub fn new(payments: PaymentService) -> Self {
        Self { payments }
    }
}

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

fn invalid(field: &str, message: &str) -> Status {
    Status::new(ErrorCode::ValidationFailed.grpc_code(), format!("{field}: {message}"))
}

fn parse_uuid(field: &str, raw: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(raw).map_err(|_| invalid(field, "must be a UUID"))
}

fn unexpected(err: &anyhow::Error) -> Status {
    problem::internal(err).to_status()
}

#[tonic::async_trait]
impl Payments for PaymentsGrpc {
    async fn charge(&self, request: Request<ChargeRequest>) -> Result<Response<ChargeResponse>, Status> {
        let span = span_for(&request, "Charge");
        let req = request.into_inner();
        async move {
            let order_id = parse_uuid("order_id", &req.order_id)?;
            let user_id = parse_uuid("user_id", &req.user_id)?;
            let amount = Amount::charge(req.amount_cents).map_err(|e| invalid("amount_cents", &e.to_string()))?;
            match self.payments.charge(order_id, user_id, amount).await {
                Ok((outcome, balance_cents)) => {
                    let outcome = match outcome {
                        ChargeOutcome::Charged => PbChargeOutcome::Charged,
                        ChargeOutcome::InsufficientFunds => PbChargeOutcome::InsufficientFunds,
                        ChargeOutcome::Voided => PbChargeOutcome::Voided,
                    };
                    Ok(Response::new(ChargeResponse { outcome: outcome.into(), balance_cents }))
                }
                Err(ChargeError::Mismatch) => Err(Problem::new(ErrorCode::IdempotencyKeyReused)
                    .with_detail("order_id was charged before with another user_id or amount_cents")
                    .to_status()),
                Err(ChargeError::Unexpected(e)) => Err(unexpected(&e)),
            }
        }
        .instrument(span)
        .await
    }

    async fn refund(&self, request: Request<RefundRequest>) -> Result<Response<RefundResponse>, Status> {
        let span = span_for(&request, "Refund");
        let req = request.into_inner();
        async move {
            let order_id = parse_uuid("order_id", &req.order_id)?;
            match self.payments.refund(order_id).await {
                Ok((outcome, amount_cents)) => {
                    let outcome = match outcome {
                        RefundOutcome::Refunded => PbRefundOutcome::Refunded,
                        RefundOutcome::AlreadyRefunded => PbRefundOutcome::AlreadyRefunded,
                        RefundOutcome::NotCharged => PbRefundOutcome::NotCharged,
                    };
                    Ok(Response::new(RefundResponse { outcome: outcome.into(), amount_cents }))
                }
                Err(RefundError::Unexpected(e)) => Err(unexpected(&e)),
            }
        }
        .instrument(span)
        .await
    }
}
