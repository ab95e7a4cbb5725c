//! Wiring: from a [`Config`] to a running order service.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::Router;
use sqlx::PgPool;
use tokio::net::TcpListener;
use twinshop_contracts::topology::Topology;
use twinshop_platform::{
    amqp::{self, Amqp, AmqpProbe, AmqpPublisher, ConsumerSettings},
    db::{self, DbTarget},
    health::{self, Health, PostgresProbe},
    http::{auth::JwtVerifier, server, stack},
    outbox::{Relay, RelaySettings},
    shutdown::Shutdown,
};

use crate::{
    app::{OrderService, PlacementSettings},
    clients::{GrpcPaymentGateway, HttpUserDirectory},
    config::Config,
    events::PaymentRefundedHandler,
    http::{self as order_http, OrderState},
    store::{MIGRATOR, PgOrderRepository},
};

pub const SERVICE: &str = "order";

fn target(config: &Config) -> DbTarget {
    DbTarget::new(config.order.database_url.clone(), None)
}

pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    db::migrate(&target(config), &MIGRATOR).await?;
    let amqp = Amqp::new(config.order.amqp_url.clone(), format!("{SERVICE}-migrate"));
    amqp::declare_topology(&amqp, &Topology::new(&config.platform.events_namespace)).await?;
    amqp.close().await;
    tracing::info!("migrations applied and topology declared");
    Ok(())
}

pub struct App {
    public: TcpListener,
    internal: TcpListener,
    public_router: Router,
    internal_router: Router,
    orders: OrderService,
    relay: Relay,
    amqp: Arc<Amqp>,
    topology: Topology,
    pool: PgPool,
    shutdown: Shutdown,
    sweep_interval: Duration,
    drain_timeout: Duration,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("public", &self.public_addr()).field("internal", &self.internal_addr()).finish()
    }
}

impl App {
    pub async fn build(config: &Config, shutdown: Shutdown) -> anyhow::Result<Self> {
        let c = &config.order;
        if c.migrate_on_start {
            migrate(config).await?;
        }
        let target = target(config);
        let pool = db::pool(&target, SERVICE, c.db_max_connections)?;
        let amqp = Amqp::new(c.amqp_url.clone(), SERVICE);
        let topology = Topology::new(&config.platform.events_namespace);
        let settings = PlacementSettings {
            mode: c.consistency_mode,
            key_lease: Duration::from_millis(c.request_timeout_ms),
            pending_grace: c.payment_deadline() + Duration::from_secs(3),
        };
        let orders = OrderService::new(
            Arc::new(PgOrderRepository::new(pool.clone(), target.clone())),
            Arc::new(HttpUserDirectory::new(&c.user_service_url, Duration::from_millis(c.user_lookup_timeout_ms))?),
            Arc::new(GrpcPaymentGateway::new(&c.payment_grpc_url, c.payment_deadline())?),
            settings,
        );
        let state =
            OrderState { orders: orders.clone(), verifier: Arc::new(JwtVerifier::from_config(&config.jwt_verifier)?) };
        // Readiness: only our own dependencies, never the user or payment
        // service (their outage must not take order pods out of rotation).
        let health = Health::new(
            vec![Arc::new(PostgresProbe::new("postgres", pool.clone(), &MIGRATOR)), Arc::new(AmqpProbe(amqp.clone()))],
            shutdown.clone(),
        );
        let timeout = Duration::from_millis(c.request_timeout_ms);
        let public_router = stack::apply(order_http::public_routes(state), timeout);
        let internal_router = stack::apply(health::router(health), timeout);
        let relay = Relay::new(
            pool.clone(),
            target,
            Arc::new(AmqpPublisher::new(amqp.clone(), &topology)),
            RelaySettings::default(),
        );
        let bind = |port| SocketAddr::new(c.bind_address, port);
        let public = server::bind(bind(c.http_port)).await.context("binding the public port")?;
        let internal = server::bind(bind(c.internal_port)).await.context("binding the internal port")?;
        Ok(Self {
            public,
            internal,
            public_router,
            internal_router,
            orders,
            relay,
            amqp,
            topology,
            pool,
            shutdown,
            sweep_interval: Duration::from_millis(c.sweep_interval_ms),
            drain_timeout: config.platform.shutdown_timeout(),
        })
    }

    pub fn public_addr(&self) -> SocketAddr {
        self.public.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn internal_addr(&self) -> SocketAddr {
        self.internal.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub async fn run(self) -> anyhow::Result<()> {
        let s = self.shutdown.clone();
        tracing::info!(public = %self.public_addr(), internal = %self.internal_addr(), "order service listening");
        s.spawn(server::serve_logged("public http", self.public, self.public_router, s.clone()));
        s.spawn(server::serve_logged("internal http", self.internal, self.internal_router, s.clone()));
        s.spawn(amqp::declare_until_done(self.amqp.clone(), self.topology.clone(), s.clone()));
        s.spawn(self.relay.run(s.clone()));
        if let Some(queue) = self.topology.queue_of(SERVICE) {
            let handler = Arc::new(PaymentRefundedHandler::new(self.orders.clone()));
            s.spawn(amqp::consume(self.amqp.clone(), queue.name, handler, ConsumerSettings::default(), s.clone()));
        }
        s.spawn(sweep(self.orders.clone(), self.sweep_interval, s.clone()));
        s.cancelled().await;
        tracing::info!("draining");
        s.drain(self.drain_timeout).await;
        self.amqp.close().await;
        self.pool.close().await;
        Ok(())
    }
}

/// Runs the sweeper every `interval` until shutdown.
pub async fn sweep(orders: OrderService, interval: Duration, shutdown: Shutdown) {
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
