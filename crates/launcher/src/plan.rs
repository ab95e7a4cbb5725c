//! What to run: a [`Plan`] is plain data with a builder, so a test, a lab or
//! the `twinshop-launch` binary says *what* it wants and [`crate::System`]
//! decides *how*. Nothing here touches the machine.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{cgroups::Limits, logs::LogTarget, supervisor::RestartPolicy};

/// Which of the two builds (DESIGN.md section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Build {
    /// user, payment and order as separate processes.
    Microservices,
    /// The three areas in one process.
    Monolith,
}

impl Build {
    /// The services of this build, in start order.
    pub fn services(self) -> &'static [Service] {
        match self {
            Self::Microservices => &[Service::User, Service::Payment, Service::Order],
            Self::Monolith => &[Service::Monolith],
        }
    }

    /// `microservices` or `monolith`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Microservices => "microservices",
            Self::Monolith => "monolith",
        }
    }
}

/// One kind of process of a build; each may run as several replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// `user-service`.
    User,
    /// `payment-service`.
    Payment,
    /// `order-service`.
    Order,
    /// `monolith`.
    Monolith,
}

impl Service {
    /// Every service, both builds.
    pub const ALL: [Service; 4] = [Service::User, Service::Payment, Service::Order, Service::Monolith];

    /// Short name: `user`, `payment`, `order`, `monolith` (log prefixes, database names).
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Payment => "payment",
            Self::Order => "order",
            Self::Monolith => "monolith",
        }
    }

    /// The binary's file name in the binary directory.
    pub fn binary(self) -> &'static str {
        match self {
            Self::User => "user-service",
            Self::Payment => "payment-service",
            Self::Order => "order-service",
            Self::Monolith => "monolith",
        }
    }

    /// Prefix of the service's own variables (README, "Configuration").
    pub fn env_prefix(self) -> &'static str {
        match self {
            Self::User => "USER_",
            Self::Payment => "PAYMENT_",
            Self::Order => "ORDER_",
            Self::Monolith => "MONOLITH_",
        }
    }

    /// The README's default `(public, internal)` ports.
    pub fn classic_ports(self) -> (u16, u16) {
        match self {
            Self::User => (8081, 9081),
            Self::Payment => (8082, 9082),
            Self::Order => (8083, 9083),
            Self::Monolith => (8090, 9090),
        }
    }

    /// Parses `user`, `payment`, `order` or `monolith`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// One process of a running system: a service and its replica number (from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessId {
    /// Which service.
    pub service: Service,
    /// Which replica, counted from 1.
    pub replica: u16,
}

impl ProcessId {
    /// `service`'s replica number `replica` (from 1).
    pub fn new(service: Service, replica: u16) -> Self {
        Self { service, replica }
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.service.name(), self.replica)
    }
}

/// Where each service's database comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseMode {
    /// New databases with a unique suffix, dropped at the end unless kept
    /// (the default for tests and labs).
    Fresh {
        /// Keep them after [`crate::System::stop`] (for a post-mortem).
        keep: bool,
    },
    /// `twinshop_<area><suffix>`, created if missing, migrated, never dropped
    /// (`make run` uses the empty suffix: `twinshop_user` as always).
    Named {
        /// Appended to `twinshop_<area>`; only `a-z`, `0-9` and `_`.
        suffix: String,
    },
}

/// How ports are chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortChoice {
    /// Random free ports in [`crate::ports::RANGE`], checked free (tests, labs).
    Free,
    /// The README's ports (8081/9081, ...), the n-th replica 100 higher per
    /// replica, any of them overridden per variable (`USER_HTTP_PORT`, ...)
    /// for replica 1: what `make run` has always used.
    Classic {
        /// `(variable, port)` overrides, e.g. `("ORDER_INTERNAL_PORT", 9183)`.
        overrides: BTreeMap<String, u16>,
    },
}

/// Where the backing services are; the defaults are the machine's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backing {
    /// Postgres server URL without a database, e.g. `postgres://postgres@127.0.0.1:5432`.
    pub postgres: String,
    /// Parameters appended to every database URL (default `?sslmode=disable`:
    /// plain TCP on loopback, see `scripts/run-local`'s history).
    pub postgres_params: String,
    /// Redis URL.
    pub redis: String,
    /// RabbitMQ URL.
    pub amqp: String,
}

impl Default for Backing {
    fn default() -> Self {
        Self {
            postgres: "postgres://postgres@127.0.0.1:5432".into(),
            postgres_params: "?sslmode=disable".into(),
            redis: "redis://127.0.0.1:6379".into(),
            amqp: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
        }
    }
}

/// The edge (nginx) in front of the replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgePlan {
    /// Port to listen on; `None`: a free one.
    pub port: Option<u16>,
    /// Listen on every address (`make run`) instead of 127.0.0.1 only.
    pub all_addresses: bool,
    /// Where `twinshop.conf.template` and `nginx-local.conf.template` are.
    pub templates: PathBuf,
    /// The storefront's files, served under `/shop/` (the repository's `web/shop`).
    pub shop: PathBuf,
    /// Jaeger's UI as a browser reaches it, for the storefront's trace
    /// links; empty: no links.
    pub jaeger_ui: String,
}

impl EdgePlan {
    /// An edge on a free port of 127.0.0.1 with the templates and the
    /// storefront of the repository at `root`, without trace links.
    pub fn at(root: &Path) -> Self {
        let shop = root.join("web/shop");
        Self {
            port: None,
            all_addresses: false,
            templates: root.join("deploy/edge"),
            // Absolute: nginx would read a relative one from its own prefix.
            shop: shop.canonicalize().unwrap_or(shop),
            jaeger_ui: String::new(),
        }
    }
}

/// Everything [`crate::System::start`] needs to know.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Which build.
    pub build: Build,
    /// Replicas per service (missing: 1).
    pub replicas: BTreeMap<Service, u16>,
    /// Where the service binaries are (`target/debug` or `target/release`).
    pub bin_dir: PathBuf,
    /// Where the backing services are.
    pub backing: Backing,
    /// Extra environment for every process (after the launcher's own, so it wins).
    pub env_all: BTreeMap<String, String>,
    /// Extra environment per service (after `env_all`).
    pub env: BTreeMap<Service, BTreeMap<String, String>>,
    /// Extra environment for one process (after its service's).
    pub process_env: BTreeMap<ProcessId, BTreeMap<String, String>>,
    /// Fresh throwaway databases or named ones.
    pub databases: DatabaseMode,
    /// `EVENTS_NAMESPACE`: `None` gives a unique one, deleted from RabbitMQ at the end.
    pub events_namespace: Option<String>,
    /// How ports are chosen.
    pub ports: PortChoice,
    /// The edge; `None` runs without one.
    pub edge: Option<EdgePlan>,
    /// Each process in its own network namespace with its own address (the
    /// replicas of a service on the same ports, as pods).
    pub namespaces: bool,
    /// cgroup limits per service (every replica gets its own cgroup with these).
    pub limits: BTreeMap<Service, Limits>,
    /// cgroup limits for one process, overriding its service's.
    pub process_limits: BTreeMap<ProcessId, Limits>,
    /// What happens when a process exits without being asked to.
    pub restart: RestartPolicy,
    /// Where the processes' output goes.
    pub logs: LogTarget,
    /// How long a stopping process may drain before SIGKILL.
    pub drain: Duration,
    /// How long a process may take to become ready.
    pub ready_timeout: Duration,
    /// Directory with `jwt-private.pem` and `jwt-public.pem` (default: the repository's `dev/keys`).
    pub keys_dir: PathBuf,
}

/// The repository this crate was built in (for `dev/keys`, `deploy/edge`, `target/`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().and_then(Path::parent).map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

impl Plan {
    /// The microservices build with test-and-lab defaults: debug binaries,
    /// one replica each, fresh databases and namespace, free ports, an edge
    /// on 127.0.0.1, no namespaces or limits, no restarts, logs on stdout.
    pub fn microservices() -> Self {
        Self::new(Build::Microservices)
    }

    /// The monolith build with the same defaults as [`Plan::microservices`].
    pub fn monolith() -> Self {
        Self::new(Build::Monolith)
    }

    /// `build` with the defaults described at [`Plan::microservices`].
    pub fn new(build: Build) -> Self {
        let root = workspace_root();
        Self {
            build,
            replicas: BTreeMap::new(),
            bin_dir: root.join("target/debug"),
            backing: Backing::default(),
            env_all: BTreeMap::new(),
            env: BTreeMap::new(),
            process_env: BTreeMap::new(),
            databases: DatabaseMode::Fresh { keep: false },
            events_namespace: None,
            ports: PortChoice::Free,
            edge: Some(EdgePlan::at(&root)),
            namespaces: false,
            limits: BTreeMap::new(),
            process_limits: BTreeMap::new(),
            restart: RestartPolicy::Never,
            logs: LogTarget::Stdout,
            drain: Duration::from_secs(25),
            ready_timeout: Duration::from_secs(60),
            keys_dir: root.join("dev/keys"),
        }
    }

    /// `n` replicas of `service`.
    pub fn replicas(mut self, service: Service, n: u16) -> Self {
        self.replicas.insert(service, n.max(1));
        self
    }

    /// Where the binaries are.
    pub fn bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = dir.into();
        self
    }

    /// An extra variable for every process.
    pub fn env_all(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env_all.insert(key.into(), value.into());
        self
    }

    /// An extra variable for every replica of `service`.
    pub fn env(mut self, service: Service, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.entry(service).or_default().insert(key.into(), value.into());
        self
    }

    /// An extra variable for one process (e.g. one order replica that
    /// finds payment another way than the others).
    pub fn process_env(mut self, id: ProcessId, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.process_env.entry(id).or_default().insert(key.into(), value.into());
        self
    }

    /// Each process in its own network namespace with its own address; the
    /// replicas of a service then listen on the same ports, as pods do.
    pub fn namespaces(mut self, on: bool) -> Self {
        self.namespaces = on;
        self
    }

    /// cgroup limits for every replica of `service`.
    pub fn limits(mut self, service: Service, limits: Limits) -> Self {
        self.limits.insert(service, limits);
        self
    }

    /// cgroup limits for one process.
    pub fn process_limits(mut self, id: ProcessId, limits: Limits) -> Self {
        self.process_limits.insert(id, limits);
        self
    }

    /// The restart policy of every process.
    pub fn restart(mut self, policy: RestartPolicy) -> Self {
        self.restart = policy;
        self
    }

    /// Where the logs go.
    pub fn logs(mut self, target: LogTarget) -> Self {
        self.logs = target;
        self
    }

    /// Drain time before SIGKILL.
    pub fn drain(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// Run without the edge.
    pub fn without_edge(mut self) -> Self {
        self.edge = None;
        self
    }

    /// How databases are chosen.
    pub fn databases(mut self, mode: DatabaseMode) -> Self {
        self.databases = mode;
        self
    }

    /// Replicas of `service` (1 when not set; 0 when it is not in the build).
    pub fn replicas_of(&self, service: Service) -> u16 {
        if self.build.services().contains(&service) { self.replicas.get(&service).copied().unwrap_or(1) } else { 0 }
    }

    /// Every process of the plan, in start order.
    pub fn processes(&self) -> Vec<ProcessId> {
        self.build
            .services()
            .iter()
            .flat_map(|&s| (1..=self.replicas_of(s)).map(move |r| ProcessId::new(s, r)))
            .collect()
    }

    /// The limits of one process, if any.
    pub fn limits_of(&self, id: ProcessId) -> Option<Limits> {
        self.process_limits.get(&id).or_else(|| self.limits.get(&id.service)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_follow_the_build_and_replicas() {
        let plan = Plan::microservices().replicas(Service::Order, 2).replicas(Service::Monolith, 3);
        let names: Vec<String> = plan.processes().iter().map(ToString::to_string).collect();
        assert_eq!(names, ["user-1", "payment-1", "order-1", "order-2"]);
        assert_eq!(Plan::monolith().processes(), [ProcessId::new(Service::Monolith, 1)]);
    }

    #[test]
    fn a_process_limit_overrides_its_services() {
        let plan = Plan::microservices()
            .limits(Service::Order, Limits::cpu(0.5))
            .process_limits(ProcessId::new(Service::Order, 2), Limits::memory(1 << 20));
        assert_eq!(plan.limits_of(ProcessId::new(Service::Order, 1)), Some(Limits::cpu(0.5)));
        assert_eq!(plan.limits_of(ProcessId::new(Service::Order, 2)), Some(Limits::memory(1 << 20)));
        assert_eq!(plan.limits_of(ProcessId::new(Service::User, 1)), None);
    }
}
