//! Wiring: from a [`Config`] to a running process.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::Router;
use sqlx::PgPool;
use tokio::net::TcpListener;
use twinshop_contracts::topology::Topology;
use twinshop_platform::{
    amqp::{self, Amqp, AmqpProbe, AmqpPublisher, ConsumerSettings},
    db::{self, DbTarget},
    health::{self, Health, PostgresProbe, RedisProbe},
    http::{auth::JwtVerifier, server, stack},
    outbox::{Relay, RelaySettings},
    shutdown::Shutdown,
};

use crate::{
    app::{UserService, passwords::PasswordHasher, tokens::TokenIssuer},
    cache::{self, RedisUserCache},
    config::Config,
    events::OrderEventsHandler,
    http::{self as user_http, UserState},
    store::{MIGRATOR, PgUserRepository},
};

/// The name in logs, traces and broker connections.
pub const SERVICE: &str = "user";

fn target(config: &Config) -> DbTarget {
    DbTarget::new(config.user.database_url.clone(), None)
}

/// The admin step: database migrations, then the broker topology.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    db::migrate(&target(config), &MIGRATOR).await?;
    let amqp = Amqp::new(config.user.amqp_url.clone(), format!("{SERVICE}-migrate"));
    amqp::declare_topology(&amqp, &Topology::new(&config.platform.events_namespace)).await?;
    amqp.close().await;
    tracing::info!("migrations applied and topology declared");
    Ok(())
}

/// A built, bound, not yet running user service.
pub struct App {
    public: TcpListener,
    internal: TcpListener,
    public_router: Router,
    internal_router: Router,
    relay: Relay,
    consumer: Arc<OrderEventsHandler>,
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
    /// Connects (lazily) to every backing service and binds both ports.
    /// Nothing is served until [`App::run`].
    pub async fn build(config: &Config, shutdown: Shutdown) -> anyhow::Result<Self> {
        if config.user.migrate_on_start {
            migrate(config).await?;
        }
        let target = target(config);
        let pool = db::pool(&target, SERVICE, config.user.db_max_connections)?;
        let redis = cache::connect(config.user.redis_url.expose())?;
        let amqp = Amqp::new(config.user.amqp_url.clone(), SERVICE);
        let topology = Topology::new(&config.platform.events_namespace);

        let users = UserService::new(
            Arc::new(PgUserRepository::new(pool.clone(), target.clone())),
            Arc::new(RedisUserCache::new(redis.clone(), Duration::from_secs(config.user.cache_ttl_secs), "")),
            PasswordHasher::new(config.user.hash_concurrency)?,
            TokenIssuer::from_config(&config.jwt_issuer)?,
        );
        let consumer = Arc::new(OrderEventsHandler::new(users.clone()));
        let state = UserState { users, verifier: Arc::new(JwtVerifier::from_config(&config.jwt_verifier)?) };
        let health = Health::new(
            vec![
                Arc::new(PostgresProbe::new("postgres", pool.clone(), &MIGRATOR)),
                Arc::new(RedisProbe(redis)),
                Arc::new(AmqpProbe(amqp.clone())),
            ],
            shutdown.clone(),
        );
        let timeout = Duration::from_millis(config.user.request_timeout_ms);
        let public_router = stack::apply(user_http::public_routes(state.clone()), timeout);
        let internal_router = stack::apply(user_http::internal_routes(state).merge(health::router(health)), timeout);

        let relay = Relay::new(
            pool.clone(),
            target,
            Arc::new(AmqpPublisher::new(amqp.clone(), &topology)),
            RelaySettings::default(),
        );
        let bind = |port| SocketAddr::new(config.user.bind_address, port);
        let public = server::bind(bind(config.user.http_port)).await.context("binding the public port")?;
        let internal = server::bind(bind(config.user.internal_port)).await.context("binding the internal port")?;
        Ok(Self {
            public,
            internal,
            public_router,
            internal_router,
            relay,
            consumer,
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

    /// Serves until shutdown is triggered, then drains within the timeout.
    pub async fn run(self) -> anyhow::Result<()> {
        let s = self.shutdown.clone();
        tracing::info!(public = %self.public_addr(), internal = %self.internal_addr(), "user service listening");
        s.spawn(server::serve_logged("public http", self.public, self.public_router, s.clone()));
        s.spawn(server::serve_logged("internal http", self.internal, self.internal_router, s.clone()));
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
