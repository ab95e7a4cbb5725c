//! The payment area, assembled: the one place that says how it is put
//! together, whichever process hosts it.
//!
//! It provides Charge/Refund to the other areas, serves the wallet API and
//! refunds cancelled orders (`order.cancelled`). It has no settings of its
//! own beyond what every process reads.

use std::sync::Arc;

use twinshop_contracts::{internal::Payments, topology};
use twinshop_platform::{
    host::{Area, AreaContext, AreaSpec},
    links::Link,
};

use crate::{
    app::PaymentService,
    events::OrderCancelledHandler,
    http,
    provider::PaymentsProvider,
    store::{MIGRATOR, PgPaymentRepository},
};

fn assemble(ctx: &mut AreaContext<'_>, (): ()) -> anyhow::Result<Area> {
    let payments = PaymentService::new(Arc::new(PgPaymentRepository::new(ctx.pool(), ctx.db_target())));
    ctx.provide::<dyn Payments>(Arc::new(PaymentsProvider(payments.clone())));
    Ok(Area {
        public: http::public_routes(payments.clone()),
        consumers: vec![(topology::PAYMENT_ORDER_CANCELLED, Arc::new(OrderCancelledHandler::new(payments)))],
        ..Area::default()
    })
}

/// The payment area.
pub static AREA: AreaSpec<()> = AreaSpec {
    name: "payment",
    schema: "payments",
    migrator: &MIGRATOR,
    needs: &[],
    provides: &[<dyn Payments as Link>::SPEC],
    // No settings of its own.
    settings: |_| Ok(()),
    variables: |_| Ok(Vec::new()),
    assemble,
};
