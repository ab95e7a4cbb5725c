//! Building and running a hosted process: from an [`Env`] and the areas'
//! assemblies to bound listeners, relays, consumers and background tasks,
//! and back down again on shutdown.

use std::{collections::HashSet, net::SocketAddr, sync::Arc};

use anyhow::{Context as _, anyhow};
use axum::Router;
use sqlx::PgPool;
use tokio::net::TcpListener;
use twinshop_contracts::{FILE_DESCRIPTOR_SET, topology::Topology};

use super::{
    Env, Process, Transport,
    area::{AreaContext, HostedArea, Links, Prepared, Task},
    inprocess::InProcessPublisher,
};
use crate::{
    amqp::{self, Amqp, AmqpProbe, AmqpPublisher},
    db::{self, DbTarget},
    faults::{self, Faults},
    health::{self, Health, PostgresProbe, Probe},
    http::{auth::JwtVerifier, server, shed::InFlightLimit, stack},
    inbox::EventHandler,
    links::{AddGrpc, LinkSpec},
    outbox::{Publisher, Relay},
    shutdown::Shutdown,
};

/// Where area `area` of `process` keeps its tables.
fn target(process: &Process, env: &Env, area: &dyn HostedArea) -> DbTarget {
    let schema = (process.areas.len() > 1).then(|| area.schema().to_owned());
    DbTarget::new(env.process.database_url.clone(), schema)
}

/// The `migrate` admin step: every area's migrations (each into its own
/// schema when there are several), then, for the network transport, the
/// broker topology.
pub async fn migrate(process: &Process, env: &Env) -> anyhow::Result<()> {
    for area in process.areas {
        db::migrate(&target(process, env, *area), area.migrator())
            .await
            .with_context(|| format!("migrating the {} area", area.name()))?;
    }
    if let Some(network) = &env.network {
        let amqp = Amqp::new(network.amqp_url.clone(), format!("{}-migrate", process.service));
        amqp::declare_topology(&amqp, &Topology::new(&env.platform.events_namespace)).await?;
        amqp.close().await;
    }
    tracing::info!("migrations applied");
    Ok(())
}

/// The areas in an order where every in-process provider comes before the
/// areas that need it.
fn assembly_order(process: &Process) -> anyhow::Result<Vec<usize>> {
    let mut order = Vec::new();
    let mut provided = HashSet::new();
    while order.len() < process.areas.len() {
        let before = order.len();
        for (i, area) in process.areas.iter().enumerate() {
            let ready = process.transport == Transport::Network
                || area.needs().iter().all(|need| provided.contains(&need.name));
            if !order.contains(&i) && ready {
                order.push(i);
                provided.extend(area.provides().iter().map(|p| p.name));
            }
        }
        if order.len() == before {
            let stuck: Vec<_> =
                process.areas.iter().enumerate().filter(|(i, _)| !order.contains(i)).map(|(_, a)| a.name()).collect();
            return Err(anyhow!("areas {stuck:?} need links that no area of this process provides"));
        }
    }
    Ok(order)
}

/// A built, bound, not yet running process.
pub struct Host {
    service: &'static str,
    public: TcpListener,
    internal: TcpListener,
    public_router: Router,
    internal_router: Router,
    relays: Vec<Relay>,
    consumers: Vec<(String, Arc<dyn EventHandler>)>,
    amqp: Option<(Arc<Amqp>, Topology)>,
    tasks: Vec<Task>,
    /// The links this process serves (registered in etcd when configured).
    provides: Vec<LinkSpec>,
    pools: Vec<PgPool>,
    shutdown: Shutdown,
    env: Env,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("service", &self.service)
            .field("public", &self.public_addr())
            .field("internal", &self.internal_addr())
            .finish_non_exhaustive()
    }
}

impl Host {
    /// Reads `vars` for `process` and builds it: what tests use (no
    /// process environment, no signals). Configuration errors are returned.
    pub async fn start(
        process: &'static Process,
        vars: impl IntoIterator<Item = (String, String)>,
        shutdown: Shutdown,
    ) -> anyhow::Result<Self> {
        let env = Env::load(process, vars)?;
        let prepared = prepare(process, &env)?;
        Self::build(process, env, prepared, shutdown).await
    }

    /// Assembles every area, wires the transport and binds both ports.
    /// Nothing is served until [`Host::run`].
    pub(crate) async fn build(
        process: &'static Process,
        env: Env,
        mut prepared: Vec<Option<Prepared>>,
        shutdown: Shutdown,
    ) -> anyhow::Result<Self> {
        if env.process.migrate_on_start {
            migrate(process, &env).await?;
        }
        let verifier = Arc::new(JwtVerifier::from_config(&env.jwt)?);
        let pool_size = env.process.db_max_connections.unwrap_or(process.db_max_connections);
        let mut links = Links::new(process.transport);
        let faults = env.process.faults_enabled.then(|| Faults::new(process.areas.iter().map(|a| a.name())));
        if faults.is_some() {
            tracing::warn!("fault flags enabled: the internal port serves /faults (labs only)");
        }
        let (mut public, mut internal) = (Router::new(), Router::new());
        let (mut probes, mut consumers, mut tasks, mut relays_of) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut pools = Vec::new();
        // Each area's pool with the area's name, for /metrics.
        let mut area_pools = Vec::new();
        for i in assembly_order(process)? {
            let spec = process.areas[i];
            let target = target(process, &env, spec);
            let application = match &target.schema {
                Some(schema) => format!("{}-{schema}", process.service),
                None => process.service.to_owned(),
            };
            let pool = db::pool(&target, &application, pool_size)?;
            let probe_name =
                if process.areas.len() > 1 { leak(format!("postgres-{}", spec.schema())) } else { "postgres" };
            probes.push(Arc::new(PostgresProbe::new(probe_name, pool.clone(), spec.migrator())) as Arc<dyn Probe>);
            let assemble = prepared[i].take().ok_or_else(|| anyhow!("area {} assembled twice", spec.name()))?;
            let mut ctx = AreaContext {
                area: spec,
                env: &env,
                pool: pool.clone(),
                target: target.clone(),
                shutdown: shutdown.clone(),
                links: &mut links,
            };
            let mut area = assemble(&mut ctx).with_context(|| format!("assembling the {} area", spec.name()))?;
            if let Some(switch) = faults.as_ref().and_then(|f| f.area(spec.name())) {
                area.public = faults::apply(area.public, switch.clone());
                area.consumers =
                    area.consumers.into_iter().map(|(s, h)| (s, faults::leaky(h, switch.clone()))).collect();
            }
            public = public.merge(area.public);
            internal = internal.merge(area.internal);
            probes.extend(area.probes);
            consumers.extend(area.consumers);
            tasks.extend(area.tasks);
            relays_of.push((spec.name(), pool.clone(), target));
            area_pools.push((spec.name(), pool.clone()));
            pools.push(pool);
        }

        for (_, handler) in &consumers {
            crate::metrics::consumer(handler.consumer());
        }
        // Events: through the broker, or in-process to the same handlers.
        let topology = Topology::new(&env.platform.events_namespace);
        let (publisher, amqp, consumers): (Arc<dyn Publisher>, _, _) = match &env.network {
            Some(network) => {
                let amqp = Amqp::new(network.amqp_url.clone(), process.service);
                probes.push(Arc::new(AmqpProbe(amqp.clone())));
                let consumers = consumers
                    .into_iter()
                    .map(|(subscription, handler)| (topology.queue(&subscription).name, handler))
                    .collect();
                let publisher = Arc::new(AmqpPublisher::new(amqp.clone(), &topology));
                (publisher, Some((amqp, topology)), consumers)
            }
            None => {
                let mut publisher = InProcessPublisher::default();
                for (subscription, handler) in &consumers {
                    publisher.subscribe(subscription, handler.clone());
                }
                (Arc::new(publisher), None, Vec::new())
            }
        };
        let relays = relays_of
            .into_iter()
            .map(|(area, pool, target)| Relay::new(area, pool, target, publisher.clone(), env.relay_settings()))
            .collect();

        let timeout = env.request_timeout();
        // The public API and the internal contracts are bounded, each port
        // on its own (a flood of public requests never refuses a peer's
        // call); the probes, metrics and fault flags never are.
        let limits = Limits::of(&env);
        let health = Health::new(probes, shutdown.clone());
        let (link_routes, grpc) = std::mem::take(&mut links.internal).into_parts();
        let mut internal = health::router(health).merge(limits.internal.http(internal.merge(link_routes)));
        if let Some(faults) = faults {
            internal = internal.merge(faults::router(faults));
        }
        internal = internal.merge(crate::metrics::router(crate::metrics::Scrape::new(area_pools)));
        let ops = stack::apply(internal, timeout);
        let internal_router = if grpc.is_empty() { ops } else { with_grpc(ops, grpc, &limits.internal).await? };

        let bind = |port| SocketAddr::new(env.process.bind_address, port);
        let (public_port, internal_port) = env.ports(process);
        Ok(Self {
            service: process.service,
            public: server::bind(bind(public_port)).await.context("binding the public port")?,
            internal: server::bind(bind(internal_port)).await.context("binding the internal port")?,
            public_router: stack::apply(limits.public.http(public.layer(axum::Extension(verifier))), timeout),
            internal_router,
            relays,
            consumers,
            amqp,
            tasks,
            provides: process.areas.iter().flat_map(|a| a.provides()).copied().collect(),
            pools,
            shutdown,
            env,
        })
    }

    pub fn public_addr(&self) -> SocketAddr {
        self.public.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn internal_addr(&self) -> SocketAddr {
        self.internal.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until shutdown is triggered, then drains within
    /// `SHUTDOWN_TIMEOUT` and closes the connections to backing services.
    pub async fn run(self) -> anyhow::Result<()> {
        let s = self.shutdown.clone();
        let internal_port = self.internal_addr().port();
        tracing::info!(public = %self.public_addr(), internal = %self.internal_addr(), "{} listening", self.service);
        s.spawn(server::serve_logged("public", self.public, self.public_router, s.clone()));
        s.spawn(server::serve_logged("internal", self.internal, self.internal_router, s.clone()));
        for relay in self.relays {
            s.spawn(relay.run(s.clone()));
        }
        if let Some((amqp, topology)) = &self.amqp {
            s.spawn(amqp::declare_until_done(amqp.clone(), topology.clone(), s.clone()));
            for (queue, handler) in self.consumers {
                s.spawn(amqp::consume(amqp.clone(), queue, handler, self.env.consumer_settings(), s.clone()));
            }
        }
        for task in self.tasks {
            s.spawn(task(s.clone()));
        }
        if self.env.network.is_some() {
            // Registered once the internal port serves; revoked first thing on shutdown.
            let provided: Vec<&'static str> = self.provides.iter().map(|l| l.service).collect();
            let discovery = crate::discovery::DiscoveryConfig::read(&self.env, &[])?;
            crate::discovery::register(discovery, provided, internal_port, s.clone()).await?;
        }
        s.cancelled().await;
        tracing::info!("draining");
        s.drain(self.env.platform.shutdown_timeout()).await;
        if let Some((amqp, _)) = self.amqp {
            amqp.close().await;
        }
        for pool in self.pools {
            pool.close().await;
        }
        Ok(())
    }
}

/// Reads and checks everything `process` would read from `vars`, as it
/// would at start, without starting anything: what the deployment checks
/// hold compose files and manifests to.
pub fn check(
    process: &Process,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Env, crate::config::ConfigError> {
    let env = Env::load(process, vars)?;
    prepare(process, &env)?;
    Ok(env)
}

/// Reads every area's settings (so a bad one stops the start before
/// anything is bound or logged).
pub(crate) fn prepare(process: &Process, env: &Env) -> Result<Vec<Option<Prepared>>, crate::config::ConfigError> {
    if process.transport == Transport::Network {
        for need in process.areas.iter().flat_map(|a| a.needs()) {
            env.address(need.address_variable)?;
        }
        let needs: Vec<_> = process.areas.iter().flat_map(|a| a.needs()).copied().collect();
        crate::discovery::DiscoveryConfig::read(env, &needs)?;
    }
    process.areas.iter().map(|area| area.prepare(env).map(Some)).collect()
}

/// The bounds on requests in flight of a process's two ports.
struct Limits {
    public: InFlightLimit,
    internal: InFlightLimit,
}

impl Limits {
    fn of(env: &Env) -> Self {
        let (public, internal) = env.max_in_flight();
        tracing::debug!(public, internal, "bounds on requests in flight");
        Self { public: InFlightLimit::new("public", public), internal: InFlightLimit::new("internal", internal) }
    }
}

/// Adds the gRPC services, bounded by `limit`, with gRPC health (each
/// reported serving) and reflection (never bounded), to the internal port's
/// router.
async fn with_grpc(ops: Router, grpc: Vec<(&'static str, AddGrpc)>, limit: &InFlightLimit) -> anyhow::Result<Router> {
    let mut contracts = tonic::service::Routes::from(Router::new());
    let (reporter, health_service) = tonic_health::server::health_reporter();
    // Reflection in both versions: v1 is the standard, v1alpha is all that
    // grpcurl before 1.8.8, evans and Postman ask for (as grpc-go serves both).
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().context("building gRPC reflection")?;
    let reflection_v1alpha = reflection().build_v1alpha().context("building gRPC reflection (v1alpha)")?;
    let routes = tonic::service::Routes::from(ops)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    for (name, add) in grpc {
        reporter.set_service_status(name, tonic_health::ServingStatus::Serving).await;
        contracts = add(contracts);
    }
    Ok(routes.into_axum_router().merge(limit.grpc(contracts.into_axum_router())))
}

/// Probe names are `&'static str`; a process has a handful, made once.
fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}
