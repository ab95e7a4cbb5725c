//! gRPC health and reflection on the payment service's internal port
//! (docs/design.md §4: "with gRPC health and reflection, so `grpcurl`
//! works").

use anyhow::{Context as _, Result, bail, ensure};
use twinshop_client::{
    ReflectionVersion,
    internal::{Code, HealthStatus},
};

use super::InternalCtx;

const PAYMENTS: &str = "twinshop.payment.v1.Payments";
const HEALTH: &str = "grpc.health.v1.Health";

pub async fn grpc_health_reports_the_server_and_payments_serving(ctx: &InternalCtx) -> Result<()> {
    let payments = ctx.payments()?;
    for service in ["", PAYMENTS] {
        let status = payments.health(service).await.with_context(|| format!("Health/Check({service:?})"))?;
        ensure!(status == HealthStatus::Serving, "Health/Check({service:?}): expected SERVING, got {status:?}");
    }
    match payments.health("no.such.Service").await {
        Err(err) if err.code() == Some(Code::NotFound) => Ok(()),
        answer => bail!("Health/Check of a service the server does not have: expected NOT_FOUND, got {answer:?}"),
    }
}

pub async fn reflection_lists_payments_and_health_and_describes_charge_and_refund(ctx: &InternalCtx) -> Result<()> {
    let payments = ctx.payments()?;
    // grpcurl speaks v1 and falls back to v1alpha; one of them must answer.
    let mut unanswered = Vec::new();
    let mut answered = 0;
    for version in [ReflectionVersion::V1, ReflectionVersion::V1Alpha] {
        let reflection = match payments.reflect(version, PAYMENTS).await {
            Ok(reflection) => reflection,
            Err(err) if err.code() == Some(Code::Unimplemented) => {
                unanswered.push(version.service());
                continue;
            }
            Err(err) => return Err(err).with_context(|| format!("{} answered with an error", version.service())),
        };
        answered += 1;
        let what = version.service();
        for service in [PAYMENTS, HEALTH] {
            ensure!(
                reflection.services.iter().any(|s| s == service),
                "{what} does not list {service}: {:?}",
                reflection.services
            );
        }
        let methods = reflection.methods.with_context(|| format!("{what} does not describe {PAYMENTS}"))?;
        for (method, input, output) in [
            ("Charge", ".twinshop.payment.v1.ChargeRequest", ".twinshop.payment.v1.ChargeResponse"),
            ("Refund", ".twinshop.payment.v1.RefundRequest", ".twinshop.payment.v1.RefundResponse"),
        ] {
            let found = methods.iter().find(|m| m.name == method);
            ensure!(
                found.is_some_and(|m| m.input_type == input && m.output_type == output),
                "{what}: {PAYMENTS}/{method} should take {input} and answer {output}, described as {found:?}"
            );
        }
    }
    ensure!(answered > 0, "no reflection service answers (UNIMPLEMENTED: {unanswered:?})");
    Ok(())
}
