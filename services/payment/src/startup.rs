//! Wiring: from a [`Config`] to a running payment service.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::Router;
use sqlx::PgPool;
use tokio::net::TcpListener;
use twinshop_contracts::{FILE_DESCRIPTOR_SET, payment::v1::payments_server::PaymentsServer, topology::Topology};
use twinshop_platform::{
    amqp::{self, Amqp, AmqpProbe, AmqpPublisher, ConsumerSettings},
    db::{self, DbTarget},
    health::{self, Health, PostgresProbe},
    http::{auth::JwtVerifier, server, stack},
    outbox::{Relay, RelaySettings},
    shutdown::Shutdown,
};

use crate::{
    app::PaymentService,
    config::Config,
    events::OrderCancelledHandler,
    grpc::PaymentsGrpc,
    http::{self as payment_http, PaymentState},
    store::{MIGRATOR, PgPaymentRepository},
};

pub const SERVICE: &str = "payment";

fn target(config: &Config) -> DbTarget {
    DbTarget::new(config.payment.database_url.clone(), None)
}

/// The admin step: migrations, then the broker topology.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    db::migrate(&target(config), &MIGRATOR).await?;
    let amqp = Amqp::new(config.payment.amqp_url.clone(), format!("{SERVICE}-migrate"));
    amqp::declare_topology(&amqp, &Topology::new(&config.platform.events_namespace)).await?;
    amqp.close().await;
    tracing::info!("migrations applied and topology declared");
    Ok(())
}

/// The internal port's router: gRPC `Payments`, health and reflection,
/// plus the operational HTTP endpoints.
async fn internal_router(payments: PaymentService, health: Health, timeout: Duration) -> anyhow::Result<Router> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<PaymentsServer<PaymentsGrpc>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building gRPC reflection")?;
    let ops = stack::apply(health::router(health), timeout);
    Ok(tonic::service::Routes::from(ops)
        .add_service(PaymentsServer::new(PaymentsGrpc::new(payments)))
        .add_service(health_service)
        .add_service(reflection)
        .into_axum_router())
}

pub struct App {
    public: TcpListener,
    internal: TcpListener,
    public_router: Router,
    internal_router: Router,
    relay: Relay,
    consumer: Arc<OrderCancelledHandler>,
    amqp: Arc<Amqp>,
    topology: Topology,
    pool: PgPool,
    shutdown: Shutdown,
    drain_timeout: Duration,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("public", &self.public_addr()).field("internal", &self.internal_addr()).finish()
    }
}

impl App {
    pub async fn build(config: &Config, shutdown: Shutdown) -> anyhow::Result<Self> {
        if config.payment.migrate_on_start {
            migrate(config).await?;
        }
        let target = target(config);
        let pool = db::pool(&target, SERVICE, config.payment.db_max_connections)?;
        let amqp = Amqp::new(config.payment.amqp_url.clone(), SERVICE);
        let topology = Topology::new(&config.platform.events_namespace);
        let payments = PaymentService::new(Arc::new(PgPaymentRepository::new(pool.clone(), target.clone())));
        let state = PaymentState {
            payments: payments.clone(),
            verifier: Arc::new(JwtVerifier::from_config(&config.jwt_verifier)?),
        };
        let health = Health::new(
            vec![Arc::new(PostgresProbe::new("postgres", pool.clone(), &MIGRATOR)), Arc::new(AmqpProbe(amqp.clone()))],
            shutdown.clone(),
        );
        let timeout = Duration::from_millis(config.payment.request_timeout_ms);
        let public_router = stack::apply(payment_http::public_routes(state), timeout);
        let internal_router = internal_router(payments.clone(), health, timeout).await?;
        let relay = Relay::new(
            pool.clone(),
            target,
            Arc::new(AmqpPublisher::new(amqp.clone(), &topology)),
            RelaySettings::default(),
        );
        let bind = |port| SocketAddr::new(config.payment.bind_address, port);
        let public = server::bind(bind(config.payment.http_port)).await.context("binding the public port")?;
        let internal = server::bind(bind(config.payment.internal_port)).await.context("binding the internal port")?;
        Ok(Self {
            public,
            internal,
            public_router,
            internal_router,
            relay,
            consumer: Arc::new(OrderCancelledHandler::new(payments)),
            amqp,
            topology,
            pool,
            shutdown,
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
        tracing::info!(public = %self.public_addr(), internal = %self.internal_addr(), "payment service listening");
        s.spawn(server::serve_logged("public http", self.public, self.public_router, s.clone()));
        s.spawn(server::serve_logged("internal http+grpc", self.internal, self.internal_router, s.clone()));
        s.spawn(amqp::declare_until_done(self.amqp.clone(), self.topology.clone(), s.clone()));
        s.spawn(self.relay.run(s.clone()));
        if let Some(queue) = self.topology.queue_of(SERVICE) {
            s.spawn(amqp::consume(
                self.amqp.clone(),
                queue.name,
                self.consumer,
                ConsumerSettings::default(),
                s.clone(),
            ));
        }
        s.cancelled().await;
        tracing::info!("draining");
        s.drain(self.drain_timeout).await;
        self.amqp.close().await;
        self.pool.close().await;
        Ok(())
    }
}
