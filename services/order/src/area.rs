//! The order area, assembled: the one place that says how it is put
//! together, whichever process hosts it.
//!
//! It needs the user area's lookup and the payment area's Charge/Refund
//! (over the network or in-process, the host decides), consumes
//! `payment.refunded`, and runs the sweeper.

use std::{sync::Arc, time::Duration};

use serde::Deserialize;
use twinshop_contracts::{
    internal::{Payments, UserLookup},
    topology,
};
use twinshop_platform::{
    config::{self, ConfigError},
    host::{Area, AreaContext, AreaSpec, Env},
    links::Link,
    shutdown::Shutdown,
};

use crate::{
    app::{OrderService, PlacementSettings},
    domain::ConsistencyMode,
    events::PaymentRefundedHandler,
    http,
    peers::{Directory, Gateway},
    store::{MIGRATOR, PgOrderRepository},
};

/// The order area's own settings, under the process's prefix (`ORDER_`
/// in the order service, `MONOLITH_` in the monolith).
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `CONSISTENCY_MODE` | `strict` | `strict` (CP) or `available` (AP) when payment is unreachable |
/// | `PAYMENT_DEADLINE_MS` | `2000` | deadline of one Charge/Refund, retries included |
/// | `USER_LOOKUP_TIMEOUT_MS` | `1000` | deadline of one user lookup, retries included |
/// | `SWEEP_INTERVAL_MS` | `1000` | how often the sweeper runs |
#[derive(Debug, Clone, Deserialize)]
pub struct OrderSettings {
    #[serde(default)]
    pub consistency_mode: ConsistencyMode,
    #[serde(default = "default_payment_deadline")]
    pub payment_deadline_ms: u64,
    #[serde(default = "default_lookup_timeout")]
    pub user_lookup_timeout_ms: u64,
    #[serde(default = "default_sweep")]
    pub sweep_interval_ms: u64,
}

fn default_payment_deadline() -> u64 {
    2_000
}
fn default_lookup_timeout() -> u64 {
    1_000
}
fn default_sweep() -> u64 {
    1_000
}

/// How long past its payment deadline an order may stay pending before
/// the sweeper settles it: the request that placed it has surely given up.
const PENDING_MARGIN: Duration = Duration::from_secs(3);

/// A placement's hold on its idempotency key, renewed four times per lease
/// while it works: when its process dies, a retry with the same key may
/// take over (and gets the order's final answer) at most this long after.
const KEY_LEASE: Duration = Duration::from_secs(1);

fn settings(env: &Env) -> Result<OrderSettings, ConfigError> {
    let s: OrderSettings = env.read()?;
    // Timeouts nest (docs/design.md §4): a request outlives its calls.
    if s.payment_deadline_ms + s.user_lookup_timeout_ms >= env.process.request_timeout_ms {
        return Err(ConfigError {
            variable: format!("{}REQUEST_TIMEOUT_MS", env.prefix()),
            problem: format!(
                "must exceed {p}PAYMENT_DEADLINE_MS and {p}USER_LOOKUP_TIMEOUT_MS together",
                p = env.prefix()
            ),
        });
    }
    Ok(s)
}

fn assemble(ctx: &mut AreaContext<'_>, s: OrderSettings) -> anyhow::Result<Area> {
    let deadline = Duration::from_millis(s.payment_deadline_ms);
    let users = Directory {
        lookup: ctx.require::<dyn UserLookup>()?,
        timeout: Duration::from_millis(s.user_lookup_timeout_ms),
    };
    let payments = Gateway { payments: ctx.require::<dyn Payments>()?, deadline };
    let orders = OrderService::new(
        Arc::new(PgOrderRepository::new(ctx.pool(), ctx.db_target())),
        Arc::new(users),
        Arc::new(payments),
        PlacementSettings { mode: s.consistency_mode, key_lease: KEY_LEASE, pending_grace: deadline + PENDING_MARGIN },
    );
    let sweeper = orders.clone();
    let interval = Duration::from_millis(s.sweep_interval_ms);
    Ok(Area {
        public: http::public_routes(orders.clone()),
        consumers: vec![(topology::ORDER_PAYMENT_REFUNDED, Arc::new(PaymentRefundedHandler::new(orders)))],
        tasks: vec![Box::new(move |shutdown| Box::pin(sweep(sweeper, interval, shutdown)))],
        ..Area::default()
    })
}

/// The order area.
pub static AREA: AreaSpec<OrderSettings> = AreaSpec {
    name: "order",
    schema: "orders",
    migrator: &MIGRATOR,
    needs: &[<dyn UserLookup as Link>::SPEC, <dyn Payments as Link>::SPEC],
    provides: &[],
    settings,
    variables: config::variables::<OrderSettings>,
    assemble,
};

/// Runs the sweeper every `interval` until shutdown.
async fn sweep(orders: OrderService, interval: Duration, shutdown: Shutdown) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
        if let Err(err) = orders.sweep().await {
            tracing::warn!(error = format!("{err:#}"), "sweep failed");
        }
    }
}
