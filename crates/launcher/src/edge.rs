//! The real nginx edge in front of the replicas, rendered from
//! `deploy/edge` (the one routing template compose and Kubernetes use too).
//!
//! Replicas: the template has one `server ${ORDER_UPSTREAM};` line per
//! upstream. The launcher fills the variable with `a:1;\n    server b:2`, so
//! the rendered file has one `server` line per replica while the template,
//! and what compose and Kubernetes get from it, stay unchanged. An upstream
//! whose replicas are all out gets a single `down` server: nginx then
//! answers 503 `dependency_unavailable`, as a Service without endpoints.
//!
//! Taking a replica out is what a Kubernetes endpoints controller does, as
//! nginx reads no `/readyz`: rewrite the upstreams, validate, SIGHUP the
//! master, then wait until every *old* worker has exited: an old worker
//! finishes its in-flight requests first, so once they are gone nothing is
//! on its way to the replica and it can be stopped without failing a request.
//!
//! One race remains, and no setting of this nginx (1.22) removes it: on a
//! reload the old workers close their *idle* keepalive client connections
//! at once, so a request a client writes in that very instant gets a reset
//! without having been read. Nothing was processed, so it is safe to send
//! again on a new connection, as browsers do (idempotent requests, and a
//! POST with the same `Idempotency-Key`); the tests do so and count it: 0
//! to 2 such resends per rollout of two replicas at about 250 requests/s.
//! twinshop-client does it for every caller, once and counted
//! (`Client::resends`), so a lab reports it beside its errors.
//!
//! Internal balancers: when user or payment run several replicas, the order
//! service reaches them through a second nginx (an HTTP upstream for the
//! user lookup, a `grpc_pass` one for payment), as kube-proxy serves a
//! Service; taking a replica out removes it there too. It is a process of
//! its own (`balancer`), so a lab that kills the edge does not also cut
//! order from payment.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    events::{EventKind, Events},
    logs::LogTarget,
    nginx::{Files, Nginx},
    plan::{Build, ProcessId, Service},
    processes::Readiness,
    supervisor::RestartPolicy,
};

/// One replica as the edge sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// `host:port` of its public API.
    pub public: String,
    /// `host:port` of its internal port (user lookup, payment gRPC).
    pub internal: String,
    /// In the upstreams now.
    pub in_edge: bool,
}

/// A balancer in front of a service's internal port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalBalancer {
    /// User (HTTP) or payment (gRPC).
    pub service: Service,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// What the rendered configuration depends on.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Which build (the monolith serves every route).
    pub build: Build,
    /// The port.
    pub port: u16,
    /// Listen on every address instead of 127.0.0.1.
    pub all_addresses: bool,
    /// Directory with the two templates.
    pub templates: PathBuf,
    /// The storefront's files (`SHOP_ROOT`).
    pub shop: PathBuf,
    /// Jaeger's UI for the storefront's trace links (`JAEGER_UI_URL`; empty: none).
    pub jaeger_ui: String,
    /// Internal balancers to add.
    pub internal: Vec<InternalBalancer>,
}

/// `${VAR}` → value for the listed variables only, as `envsubst "$vars"`
/// does; in comment lines a multi-line value stays on one line.
pub fn substitute(text: &str, vars: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let comment = line.trim_start().starts_with('#');
        out.push_str(&vars.iter().fold(line.to_owned(), |acc, (k, v)| {
            let value = if comment { v.replace('\n', " ") } else { v.clone() };
            acc.replace(&format!("${{{k}}}"), &value)
        }));
    }
    out
}

/// The value of an `*_UPSTREAM` variable for these addresses.
pub fn upstream_value(addresses: &[String]) -> String {
    if addresses.is_empty() {
        // Nothing to route to: nginx answers 502, the template turns it into 503.
        return "127.0.0.1:9 down".into();
    }
    addresses.join(";\n    server ")
}

fn servers(members: &BTreeMap<ProcessId, Member>, service: Service, internal: bool) -> Vec<String> {
    members
        .iter()
        .filter(|(id, m)| id.service == service && m.in_edge)
        .map(|(_, m)| if internal { m.internal.clone() } else { m.public.clone() })
        .collect()
}

/// Renders `(twinshop.conf, nginx.conf)` for `members`.
pub fn render(config: &EdgeConfig, prefix: &Path, members: &BTreeMap<ProcessId, Member>) -> Result<(String, String)> {
    let read = |name: &str| {
        let path = config.templates.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let up = |s| upstream_value(&servers(members, s, false));
    let (user, payment, order) = match config.build {
        Build::Monolith => (up(Service::Monolith), up(Service::Monolith), up(Service::Monolith)),
        Build::Microservices => (up(Service::User), up(Service::Payment), up(Service::Order)),
    };
    let listen = if config.all_addresses { config.port.to_string() } else { format!("127.0.0.1:{}", config.port) };
    let vars = [
        ("EDGE_PORT", listen),
        ("USER_UPSTREAM", user),
        ("PAYMENT_UPSTREAM", payment),
        ("ORDER_UPSTREAM", order),
        ("EDGE_PREFIX", prefix.display().to_string()),
        ("SHOP_ROOT", config.shop.display().to_string()),
        ("JAEGER_UI_URL", config.jaeger_ui.clone()),
    ];
    Ok((substitute(&read("twinshop.conf.template")?, &vars), substitute(&read("nginx-local.conf.template")?, &vars)))
}

/// The public edge's two files, for nginx in `prefix`.
fn render_public(config: &EdgeConfig, prefix: &Path, members: &BTreeMap<ProcessId, Member>) -> Result<Files> {
    let (twinshop, main) = match readable_copy(&config.shop, prefix)? {
        Some(shop) => render(&EdgeConfig { shop, ..config.clone() }, prefix, members)?,
        None => render(config, prefix, members)?,
    };
    Ok(vec![("twinshop.conf", twinshop), ("nginx.conf", main)])
}

/// Started as root, nginx runs its workers as `nobody` ([`crate::nginx`]),
/// who may not read a checkout in a private home directory (`/root`, or a
/// home of mode 0750): the storefront is then served from a world-readable
/// copy in the edge's own prefix, made once and removed with it. Other
/// users' workers run as themselves and read the checkout in place (`None`).
/// Public for the tests that start nginx from the same templates.
pub fn readable_copy(shop: &Path, prefix: &Path) -> Result<Option<PathBuf>> {
    if !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let copy = prefix.join("shop");
    if !copy.is_dir() {
        copy_tree(shop, &copy).with_context(|| format!("copying the storefront from {}", shop.display()))?;
    }
    Ok(Some(copy))
}

/// `from` into a new `to`: folders 0755, files 0644.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(to)?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644))?;
        }
    }
    Ok(())
}

/// The internal balancer's `nginx.conf`: one upstream and server per balanced service.
pub fn render_internal(config: &EdgeConfig, prefix: &Path, members: &BTreeMap<ProcessId, Member>) -> String {
    let p = prefix.display();
    let mut conf = format!(
        "# The launcher's internal balancer: order reaches several user or payment replicas here.\n\
         pid {p}/nginx.pid;\nerror_log stderr warn;\nworker_processes 1;\nworker_shutdown_timeout {shutdown}s;\n\n\
         events {{\n    worker_connections 1024;\n}}\n\n\
         http {{\n    access_log off;\n    client_body_temp_path {p}/client_body;\n    proxy_temp_path {p}/proxy;\n\
         \x20   fastcgi_temp_path {p}/fastcgi;\n    uwsgi_temp_path {p}/uwsgi;\n    scgi_temp_path {p}/scgi;\n",
        shutdown = crate::nginx::WORKER_SHUTDOWN_TIMEOUT.as_secs()
    );
    for balancer in &config.internal {
        conf.push_str(&internal_block(balancer, &upstream_value(&servers(members, balancer.service, true))));
    }
    conf.push_str("}\n");
    conf
}

fn internal_block(b: &InternalBalancer, servers: &str) -> String {
    let name = format!("twinshop_internal_{}", b.service.name());
    let (listen, location) = if b.service == Service::Payment {
        ("http2", format!("grpc_pass grpc://{name};\n            grpc_read_timeout 30s;"))
    } else {
        (
            "",
            format!(
                "proxy_pass http://{name};\n        proxy_http_version 1.1;\n        proxy_set_header Connection \"\";"
            ),
        )
    };
    format!(
        "\n    # the {svc} service's internal port behind one address\n\
         \x20   upstream {name} {{\n        server {servers};\n        keepalive 64;\n    }}\n\n\
         \x20   server {{\n        listen 127.0.0.1:{port} {listen};\n        location / {{\n            {location}\n        }}\n    }}\n",
        svc = b.service.name(),
        port = b.port,
        servers = servers.replace("\n    server ", "\n        server "),
    )
}

/// The running edge, and the internal balancer when there is one.
#[derive(Debug)]
pub struct Edge {
    config: EdgeConfig,
    members: tokio::sync::Mutex<BTreeMap<ProcessId, Member>>,
    public: Nginx,
    internal: Option<Nginx>,
    events: Events,
}

impl Edge {
    /// Renders the configuration, starts nginx (and the internal balancer
    /// when `config.internal` is not empty) and waits until they answer.
    pub async fn start(
        config: EdgeConfig,
        members: BTreeMap<ProcessId, Member>,
        events: Events,
        logs: LogTarget,
        restart: RestartPolicy,
        within: Duration,
    ) -> Result<Self> {
        let internal = match config.internal.first() {
            Some(first) => {
                let render = |prefix: &Path| -> Result<Files> {
                    Ok(vec![("nginx.conf", render_internal(&config, prefix, &members))])
                };
                let ready = Readiness::Tcp(format!("127.0.0.1:{}", first.port));
                let (events, logs) = (events.clone(), logs.clone());
                Some(Nginx::start("balancer", render, ready, events, logs, restart, within).await?)
            }
            None => None,
        };
        let render = |prefix: &Path| render_public(&config, prefix, &members);
        let ready = Readiness::HttpAnswers(format!("http://127.0.0.1:{}/", config.port));
        let public = match Nginx::start("edge", render, ready, events.clone(), logs, restart, within).await {
            Ok(public) => public,
            Err(e) => {
                if let Some(internal) = internal {
                    let _ = internal.stop(Duration::from_secs(2)).await;
                }
                return Err(e);
            }
        };
        Ok(Self { config, members: tokio::sync::Mutex::new(members), public, internal, events })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.config.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.config.port
    }

    /// The edge's prefix directory (rendered configuration, temp folders).
    pub fn prefix(&self) -> &Path {
        self.public.prefix()
    }

    /// The edge's nginx.
    pub fn nginx(&self) -> &Nginx {
        &self.public
    }

    /// The internal balancer's nginx, when user or payment have several replicas.
    pub fn balancer(&self) -> Option<&Nginx> {
        self.internal.as_ref()
    }

    /// The edge's nginx master's supervisor.
    pub fn supervisor(&self) -> &crate::supervisor::Supervisor {
        self.public.supervisor()
    }

    /// The replicas and whether each is in the upstreams now.
    pub async fn members(&self) -> BTreeMap<ProcessId, Member> {
        self.members.lock().await.clone()
    }

    /// Takes `id` out of (or puts it into) the upstreams and reloads,
    /// returning once the old workers finished their requests.
    pub async fn set_in_edge(&self, id: ProcessId, in_edge: bool) -> Result<Duration> {
        let mut members = self.members.lock().await;
        let Some(member) = members.get_mut(&id) else { bail!("{id} is not behind the edge") };
        member.in_edge = in_edge;
        let files = render_public(&self.config, self.public.prefix(), &members)?;
        let public = self.public.reload(&files);
        let internal = async {
            match &self.internal {
                Some(nginx) if self.config.internal.iter().any(|b| b.service == id.service) => {
                    nginx.reload(&vec![("nginx.conf", render_internal(&self.config, nginx.prefix(), &members))]).await
                }
                _ => Ok(Duration::ZERO),
            }
        };
        let (public, internal) = tokio::join!(public, internal);
        let drained = public?.max(internal?);
        self.events.emit(&id.to_string(), if in_edge { EventKind::IntoEdge } else { EventKind::OutOfEdge });
        Ok(drained)
    }

    /// SIGKILL to the edge's master and workers (the balancer stays).
    pub async fn kill(&self) -> Result<()> {
        self.public.kill().await
    }

    /// Graceful stop of the edge and the balancer; their prefixes are removed.
    pub async fn stop(&self, grace: Duration) -> Result<()> {
        let internal = async {
            match &self.internal {
                Some(nginx) => nginx.stop(grace).await,
                None => Ok(()),
            }
        };
        let (public, internal) = tokio::join!(self.public.stop(grace), internal);
        public.and(internal)
    }

    /// SIGKILL to both instances and their workers, without waiting (for `Drop`).
    pub fn kill_now(&self) {
        self.public.kill_now();
        if let Some(internal) = &self.internal {
            internal.kill_now();
        }
    }

    /// Prefix directories of both instances.
    pub fn prefixes(&self) -> Vec<PathBuf> {
        [Some(&self.public), self.internal.as_ref()].into_iter().flatten().map(|n| n.prefix().to_path_buf()).collect()
    }
}

#[cfg(test)]
#[path = "edge_tests.rs"]
mod tests;
