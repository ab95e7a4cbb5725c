//! An area as a value: what an area crate exports ([`AreaSpec`]) and what
//! its assembly returns ([`Area`]).
//!
//! An area crate writes one assembly function, `fn(&mut AreaContext,
//! Settings) -> anyhow::Result<Area>`: from its database, its settings and
//! the other areas' contracts it builds its application service, its
//! routes, its event handlers, its probes and its background tasks, and
//! hands the contracts it provides to the host. Every rule about how the
//! area is put together lives there; the host only runs the result, in
//! whichever process and over whichever transport the binary chose.

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    sync::Arc,
    time::Duration,
};

use anyhow::anyhow;
use axum::Router;
use futures_util::future::BoxFuture;
use sqlx::{PgPool, migrate::Migrator};
use twinshop_contracts::topology::Subscription;

use super::{Env, Transport};
use crate::{
    config::{ConfigError, Variable},
    db::DbTarget,
    discovery::{self, DiscoveryConfig},
    health::Probe,
    inbox::EventHandler,
    links::{InternalServer, Link, LinkSpec},
    shutdown::Shutdown,
};

/// A background task: runs until the shutdown it is given begins.
pub type Task = Box<dyn FnOnce(Shutdown) -> BoxFuture<'static, ()> + Send>;

/// An assembled area: everything the host runs for it.
#[derive(Default)]
pub struct Area {
    /// Its public API (the host adds the middleware stack and merges the
    /// areas of one process).
    pub public: Router,
    /// Routes for the internal port beyond the contracts it provides.
    pub internal: Router,
    /// Its event handlers, each with the subscription (queue) it serves.
    pub consumers: Vec<(Subscription, Arc<dyn EventHandler>)>,
    /// Readiness probes of its own backing services (the host adds its
    /// database, and RabbitMQ in the network transport).
    pub probes: Vec<Arc<dyn Probe>>,
    /// Background tasks, such as the order sweeper.
    pub tasks: Vec<Task>,
}

impl std::fmt::Debug for Area {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Area")
            .field("consumers", &self.consumers.iter().map(|(s, _)| s.consumer).collect::<Vec<_>>())
            .field("probes", &self.probes.iter().map(|p| p.name()).collect::<Vec<_>>())
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

/// What an area crate exports: its name, its schema and migrations, the
/// links it needs and provides, how to read its settings, and its assembly.
#[derive(Debug)]
pub struct AreaSpec<S> {
    /// e.g. `order`.
    pub name: &'static str,
    /// Its Postgres schema when it shares a database with other areas.
    pub schema: &'static str,
    pub migrator: &'static Migrator,
    /// The contracts of other areas it calls.
    pub needs: &'static [LinkSpec],
    /// The contracts it serves to other areas.
    pub provides: &'static [LinkSpec],
    /// Reads and checks its settings (under the process's prefix).
    pub settings: fn(&Env) -> Result<S, ConfigError>,
    /// The variables `settings` reads, derived from its structs.
    pub variables: fn(&str) -> Result<Vec<Variable>, String>,
    /// Builds the area.
    pub assemble: fn(&mut AreaContext<'_>, S) -> anyhow::Result<Area>,
}

/// An area's assembly with its settings already read.
pub(crate) type Prepared = Box<dyn FnOnce(&mut AreaContext<'_>) -> anyhow::Result<Area> + Send>;

/// [`AreaSpec`] with its settings type erased, so one process can list
/// areas of different kinds.
pub trait HostedArea: Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    fn schema(&self) -> &'static str;
    fn migrator(&self) -> &'static Migrator;
    fn needs(&self) -> &'static [LinkSpec];
    fn provides(&self) -> &'static [LinkSpec];
    fn variables(&self, prefix: &str) -> Result<Vec<Variable>, String>;
    /// Reads the settings and returns the assembly to run.
    fn prepare(&self, env: &Env) -> Result<Prepared, ConfigError>;
}

impl<S: Send + 'static> HostedArea for AreaSpec<S>
where
    AreaSpec<S>: Sync + std::fmt::Debug,
{
    fn name(&self) -> &'static str {
        self.name
    }
    fn schema(&self) -> &'static str {
        self.schema
    }
    fn migrator(&self) -> &'static Migrator {
        self.migrator
    }
    fn needs(&self) -> &'static [LinkSpec] {
        self.needs
    }
    fn provides(&self) -> &'static [LinkSpec] {
        self.provides
    }
    fn variables(&self, prefix: &str) -> Result<Vec<Variable>, String> {
        (self.variables)(prefix)
    }
    fn prepare(&self, env: &Env) -> Result<Prepared, ConfigError> {
        let settings = (self.settings)(env)?;
        let assemble = self.assemble;
        Ok(Box::new(move |ctx| assemble(ctx, settings)))
    }
}

/// The contracts of one process: providers handed over directly
/// (in-process) or served on the internal port and called over the network.
pub(crate) struct Links {
    transport: Transport,
    providers: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    pub(crate) internal: InternalServer,
}

impl Links {
    pub(crate) fn new(transport: Transport) -> Self {
        Self { transport, providers: HashMap::new(), internal: InternalServer::default() }
    }
}

/// What an area's assembly gets from the host.
pub struct AreaContext<'a> {
    pub(crate) area: &'static dyn HostedArea,
    pub(crate) env: &'a Env,
    pub(crate) pool: PgPool,
    pub(crate) target: DbTarget,
    pub(crate) shutdown: Shutdown,
    pub(crate) links: &'a mut Links,
}

impl std::fmt::Debug for AreaContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AreaContext").field("area", &self.area.name()).field("target", &self.target).finish()
    }
}

impl AreaContext<'_> {
    /// The area's database pool (lazy: connects on first use).
    pub fn pool(&self) -> PgPool {
        self.pool.clone()
    }

    /// Where the area's tables live (its schema, the outbox's channel).
    pub fn db_target(&self) -> DbTarget {
        self.target.clone()
    }

    /// The process's shutdown (for the area's own long-running work).
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// The process's per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.env.request_timeout()
    }

    /// The process's environment (for settings read late, rarely needed).
    pub fn env(&self) -> &Env {
        self.env
    }

    /// Another area's contract: its provider in this process (in-process
    /// transport) or a client of the provider found as configured for it
    /// (network: one address, or every replica by DNS or in etcd).
    /// The area must list the link in its spec's `needs`.
    pub fn require<L: Link + ?Sized>(&mut self) -> anyhow::Result<Arc<L>> {
        if !self.area.needs().contains(&L::SPEC) {
            return Err(anyhow!(
                "area {} uses the {} link without declaring it in `needs`",
                self.area.name(),
                L::SPEC.name
            ));
        }
        match self.links.transport {
            Transport::InProcess => self
                .links
                .providers
                .get(&TypeId::of::<L>())
                .and_then(|p| p.downcast_ref::<Arc<L>>())
                .cloned()
                .ok_or_else(|| anyhow!("no area in this process provides the {} link", L::SPEC.name)),
            Transport::Network => {
                let discovery = DiscoveryConfig::read(self.env, self.area.needs())?;
                discovery::connect::<L>(self.env, &discovery, &self.shutdown)
            }
        }
    }

    /// Serves this area's `provider` of a contract to the other areas.
    pub fn provide<L: Link + ?Sized>(&mut self, provider: Arc<L>) {
        debug_assert!(self.area.provides().contains(&L::SPEC), "undeclared provided link {}", L::SPEC.name);
        match self.links.transport {
            Transport::InProcess => {
                self.links.providers.insert(TypeId::of::<L>(), Box::new(provider));
            }
            Transport::Network => L::serve(provider, &mut self.links.internal),
        }
    }
}
