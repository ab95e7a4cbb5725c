//! The network adapters of the order area's ports: the user directory over
//! HTTP (the user service's internal port) and the payment gateway over
//! gRPC (the payment service's internal port).
//!
//! Both calls carry the current trace context, have a hard timeout, and are
//! retried with backoff only because they are idempotent (a lookup; Charge
//! and Refund by order id), within the same overall deadline.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use serde::Deserialize;
use tonic::{Code, transport::Channel};
use twinshop_contracts::payment::v1::{
    ChargeOutcome as PbChargeOutcome, ChargeRequest, RefundRequest, payments_client::PaymentsClient,
};
use twinshop_platform::propagation;
use uuid::Uuid;

use crate::{
    app::{DirectoryError, GatewayError, PaymentGateway, Recipient, UserDirectory},
    domain::{ChargeOutcome, ShippingAddress},
};

/// Tries of an idempotent call (the first plus retries), within its deadline.
const TRIES: u32 = 3;

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(25 << attempt.min(4))
}

/// `GET {base}/internal/v1/users/{id}` on the user service.
#[derive(Debug, Clone)]
pub struct HttpUserDirectory {
    client: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl HttpUserDirectory {
    pub fn new(base: impl Into<String>, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { client, base: base.into().trim_end_matches('/').to_owned(), timeout })
    }
}

#[derive(Deserialize)]
struct UserJson {
    name: String,
    address: Option<AddressJson>,
}

#[derive(Deserialize)]
struct AddressJson {
    line1: String,
    city: String,
    postal_code: String,
    country: String,
}

#[async_trait::async_trait]
impl UserDirectory for HttpUserDirectory {
    async fn recipient(&self, user_id: Uuid) -> Result<Option<Recipient>, DirectoryError> {
        let span = tracing::info_span!("user.lookup", otel.name = "GET /internal/v1/users/{id}", otel.kind = "client", user_id = %user_id);
        let url = format!("{}/internal/v1/users/{user_id}", self.base);
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut last_error = anyhow!("no attempt made");
        for attempt in 0..TRIES {
            let mut headers = http::HeaderMap::new();
            span.in_scope(|| propagation::inject_http(&mut headers));
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                break;
            }
            let sent = tracing::Instrument::instrument(
                self.client.get(&url).headers(headers).timeout(remaining).send(),
                span.clone(),
            )
            .await;
            match sent {
                Ok(res) if res.status() == reqwest::StatusCode::NOT_FOUND => return Ok(None),
                Ok(res) if res.status().is_success() => {
                    let user: UserJson = res
                        .json()
                        .await
                        .map_err(|e| DirectoryError::Unavailable(anyhow!(e).context("malformed user")))?;
                    return Ok(Some(Recipient {
                        name: user.name,
                        address: user.address.map(|a| ShippingAddress {
                            line1: a.line1,
                            city: a.city,
                            postal_code: a.postal_code,
                            country: a.country,
                        }),
                    }));
                }
                Ok(res) => last_error = anyhow!("user service answered {}", res.status()),
                Err(err) => last_error = anyhow!(err).context("calling the user service"),
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
        Err(DirectoryError::Unavailable(last_error))
    }
}

/// `twinshop.payment.v1.Payments` over one lazily connected HTTP/2 channel.
#[derive(Debug, Clone)]
pub struct GrpcPaymentGateway {
    client: PaymentsClient<Channel>,
    deadline: Duration,
}

impl GrpcPaymentGateway {
    /// `url` like `http://payment:9082`; `deadline` bounds each call,
    /// retries included, and is sent to the server as `grpc-timeout`.
    pub fn new(url: &str, deadline: Duration) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(url.to_owned())
            .context("payment gRPC URL is malformed")?
            .connect_timeout(deadline)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .connect_lazy();
        Ok(Self { client: PaymentsClient::new(channel), deadline })
    }

    /// Runs `call` until it answers, fails for good, or the deadline passes.
    async fn with_retries<T, F, Fut>(&self, method: &'static str, mut call: F) -> Result<T, GatewayError>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let deadline = tokio::time::Instant::now() + self.deadline;
        let mut last = tonic::Status::unavailable("no attempt made");
        for attempt in 0..TRIES {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                break;
            }
            match tokio::time::timeout(remaining, call(remaining)).await {
                Ok(Ok(v)) => return Ok(v),
                // `Cancelled` is what tonic reports when the connection dies
                // mid-call (the server was killed): the outcome is unknown,
                // as after a timeout; it is no refusal.
                Ok(Err(status))
                    if matches!(
                        status.code(),
                        Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
                    ) =>
                {
                    last = status
                }
                Ok(Err(status)) if status.code() == Code::DeadlineExceeded => {
                    return Err(GatewayError::Unavailable(anyhow!("{method}: deadline exceeded")));
                }
                Ok(Err(status)) => return Err(GatewayError::Refused(anyhow!("{method}: {status}"))),
                Err(_) => return Err(GatewayError::Unavailable(anyhow!("{method}: deadline exceeded"))),
            }
            tokio::time::sleep(backoff(attempt).min(deadline.saturating_duration_since(tokio::time::Instant::now())))
                .await;
        }
        Err(GatewayError::Unavailable(anyhow!("{method}: {last}")))
    }
}

fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.set_timeout(timeout);
    propagation::inject_grpc(req.metadata_mut());
    req
}

#[async_trait::async_trait]
impl PaymentGateway for GrpcPaymentGateway {
    async fn charge(&self, order_id: Uuid, user_id: Uuid, amount_cents: i64) -> Result<ChargeOutcome, GatewayError> {
        let span = tracing::info_span!("payment.charge", otel.name = "twinshop.payment.v1.Payments/Charge", otel.kind = "client",
            rpc.system = "grpc", order_id = %order_id);
        let message = ChargeRequest { order_id: order_id.to_string(), user_id: user_id.to_string(), amount_cents };
        let response = tracing::Instrument::instrument(
            self.with_retries("Charge", |timeout| {
                let mut client = self.client.clone();
                let req = request(message.clone(), timeout);
                async move { client.charge(req).await }
            }),
            span,
        )
        .await?;
        match response.into_inner().outcome() {
            PbChargeOutcome::Charged => Ok(ChargeOutcome::Charged),
            PbChargeOutcome::InsufficientFunds => Ok(ChargeOutcome::InsufficientFunds),
            PbChargeOutcome::Voided => Ok(ChargeOutcome::Voided),
            PbChargeOutcome::Unspecified => Err(GatewayError::Refused(anyhow!("Charge answered without an outcome"))),
        }
    }

    async fn void(&self, order_id: Uuid) -> Result<(), GatewayError> {
        let span = tracing::info_span!("payment.refund", otel.name = "twinshop.payment.v1.Payments/Refund", otel.kind = "client",
            rpc.system = "grpc", order_id = %order_id);
        let message = RefundRequest { order_id: order_id.to_string() };
        tracing::Instrument::instrument(
            self.with_retries("Refund", |timeout| {
                let mut client = self.client.clone();
                let req = request(message.clone(), timeout);
                async move { client.refund(req).await }
            }),
            span,
        )
        .await?;
        Ok(())
    }
}
