//! Wiring the three areas into one process.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::Router;
use sqlx::{PgPool, migrate::Migrator};
use tokio::net::TcpListener;
use twinshop_contracts::topology::Topology;
use twinshop_platform::{
    db::{self, DbTarget},
    health::{self, Health, PostgresProbe, RedisProbe},
    http::{auth::JwtVerifier, server, stack},
    inbox::EventHandler,
    outbox::{Relay, RelaySettings},
    shutdown::Shutdown,
};

use crate::{
    adapters::{InProcessPaymentGateway, InProcessUserDirectory},
    config::Config,
    dispatch::InProcessPublisher,
};

pub const SERVICE: &str = "monolith";

/// Each area's schema in the one database, and its migrations.
const AREAS: [(&str, &Migrator); 3] = [
    ("users", &twinshop_user::store::MIGRATOR),
    ("payments", &twinshop_payment::store::MIGRATOR),
    ("orders", &twinshop_order::store::MIGRATOR),
];

fn target(config: &Config, schema: &str) -> DbTarget {
    DbTarget::new(config.monolith.database_url.clone(), Some(schema.to_owned()))
}

/// `monolith migrate`: every area's migrations into its own schema (each
/// keeps its own history table there, so versions never collide).
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    for (schema, migrator) in AREAS {
        db::migrate(&target(config, schema), migrator).await.with_context(|| format!("migrating {schema}"))?;
    }
    tracing::info!("migrations applied");
    Ok(())
}

pub struct App {
    public: TcpListener,
    internal: TcpListener,
    public_router: Router,
    internal_router: Router,
    relays: Vec<Relay>,
    orders: twinshop_order::app::OrderService,
    pools: Vec<PgPool>,
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
        let c = &config.monolith;
        if c.migrate_on_start {
            migrate(config).await?;
        }
        let [user_db, payment_db, order_db] = AREAS.map(|(schema, _)| target(config, schema));
        let user_pool = db::pool(&user_db, "monolith-users", c.db_max_connections)?;
        let payment_pool = db::pool(&payment_db, "monolith-payments", c.db_max_connections)?;
        let order_pool = db::pool(&order_db, "monolith-orders", c.db_max_connections)?;
        let redis = twinshop_user::cache::connect(c.redis_url.expose())?;
        let timeout = Duration::from_millis(c.request_timeout_ms);

        // The areas' application services, exactly as their services build them.
        let users = twinshop_user::app::UserService::new(
            Arc::new(twinshop_user::store::PgUserRepository::new(user_pool.clone(), user_db.clone())),
            Arc::new(twinshop_user::cache::RedisUserCache::new(
                redis.clone(),
                Duration::from_secs(c.cache_ttl_secs),
                "",
            )),
            twinshop_user::app::passwords::PasswordHasher::new(c.hash_concurrency)?,
            twinshop_user::app::tokens::TokenIssuer::from_config(&config.jwt_issuer)?,
        );
        let payments = twinshop_payment::app::PaymentService::new(Arc::new(
            twinshop_payment::store::PgPaymentRepository::new(payment_pool.clone(), payment_db.clone()),
        ));
        let deadline = Duration::from_millis(c.payment_deadline_ms);
        let orders = twinshop_order::app::OrderService::new(
            Arc::new(twinshop_order::store::PgOrderRepository::new(order_pool.clone(), order_db.clone())),
            // The only difference from the order service: in-process adapters.
            Arc::new(InProcessUserDirectory(users.clone())),
            Arc::new(InProcessPaymentGateway { payments: payments.clone(), deadline }),
            twinshop_order::app::PlacementSettings {
                mode: c.consistency_mode,
                key_lease: timeout,
                pending_grace: deadline + Duration::from_secs(3),
            },
        );

        // Events: the broker topology's bindings, delivered in-process.
        let handlers: [(&str, Arc<dyn EventHandler>); 3] = [
            ("user", Arc::new(twinshop_user::events::OrderEventsHandler::new(users.clone()))),
            ("payment", Arc::new(twinshop_payment::events::OrderCancelledHandler::new(payments.clone()))),
            ("order", Arc::new(twinshop_order::events::PaymentRefundedHandler::new(orders.clone()))),
        ];
        let topology = Topology::new(&config.platform.events_namespace);
        let mut publisher = InProcessPublisher::new();
        for (area, handler) in handlers {
            for event_type in topology.queue_of(area).map(|q| q.bindings).unwrap_or_default() {
                publisher = publisher.subscribe(event_type, handler.clone());
            }
        }
        let publisher = Arc::new(publisher);
        let relays = [(user_pool.clone(), user_db), (payment_pool.clone(), payment_db), (order_pool.clone(), order_db)]
            .into_iter()
            .map(|(pool, target)| Relay::new(pool, target, publisher.clone(), RelaySettings::default()))
            .collect();

        let verifier = Arc::new(JwtVerifier::from_config(&config.jwt_verifier)?);
        let public =
            twinshop_user::http::public_routes(twinshop_user::http::UserState { users, verifier: verifier.clone() })
                .merge(twinshop_payment::http::public_routes(twinshop_payment::http::PaymentState {
                    payments,
                    verifier: verifier.clone(),
                }))
                .merge(twinshop_order::http::public_routes(twinshop_order::http::OrderState {
                    orders: orders.clone(),
                    verifier,
                }));
        let health = Health::new(
            vec![
                Arc::new(PostgresProbe::new("postgres-users", user_pool.clone(), &twinshop_user::store::MIGRATOR)),
                Arc::new(PostgresProbe::new(
                    "postgres-payments",
                    payment_pool.clone(),
                    &twinshop_payment::store::MIGRATOR,
                )),
                Arc::new(PostgresProbe::new("postgres-orders", order_pool.clone(), &twinshop_order::store::MIGRATOR)),
                Arc::new(RedisProbe(redis)),
            ],
            shutdown.clone(),
        );

        let bind = |port| SocketAddr::new(c.bind_address, port);
        Ok(Self {
            public: server::bind(bind(c.http_port)).await.context("binding the public port")?,
            internal: server::bind(bind(c.internal_port)).await.context("binding the internal port")?,
            public_router: stack::apply(public, timeout),
            internal_router: stack::apply(health::router(health), timeout),
            relays,
            orders,
            pools: vec![user_pool, payment_pool, order_pool],
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
        tracing::info!(public = %self.public_addr(), internal = %self.internal_addr(), "monolith listening");
        s.spawn(server::serve_logged("public http", self.public, self.public_router, s.clone()));
        s.spawn(server::serve_logged("internal http", self.internal, self.internal_router, s.clone()));
        for relay in self.relays {
            s.spawn(relay.run(s.clone()));
        }
        s.spawn(twinshop_order::startup::sweep(self.orders, self.sweep_interval, s.clone()));
        s.cancelled().await;
        tracing::info!("draining");
        s.drain(self.drain_timeout).await;
        for pool in self.pools {
            pool.close().await;
        }
        Ok(())
    }
}
