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
//! Internal balancers: when user or payment run several replicas, the order
//! service reaches them through the same nginx (an HTTP upstream for the
//! user lookup, a `grpc_pass` one for payment), appended to the rendered
//! file, so taking a replica out removes it there too.
//!
//! The prefix directory is world-traversable and the temp folders belong to
//! the worker user: with a 0700 prefix, bodies between 16 and 64 KiB (which
//! nginx buffers to disk) failed with a 500 because the worker (`nobody`)
//! could not reach its `client_body` folder.

use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    events::{EventKind, Events},
    logs::LogTarget,
    plan::{Build, ProcessId, Service},
    processes::{ProcessSpec, Readiness, Signal, children, is_alive, signal},
    supervisor::{RestartPolicy, Supervisor},
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
    ];
    let mut twinshop = substitute(&read("twinshop.conf.template")?, &vars);
    for balancer in &config.internal {
        twinshop.push_str(&internal_block(balancer, &upstream_value(&servers(members, balancer.service, true))));
    }
    Ok((twinshop, substitute(&read("nginx-local.conf.template")?, &vars)))
}

fn internal_block(b: &InternalBalancer, servers: &str) -> String {
    let name = format!("twinshop_internal_{}", b.service.name());
    let (listen, location) = if b.service == Service::Payment {
        ("http2", format!("grpc_pass grpc://{name};\n        grpc_read_timeout 30s;"))
    } else {
        (
            "",
            format!(
                "proxy_pass http://{name};\n        proxy_http_version 1.1;\n        proxy_set_header Connection \"\";"
            ),
        )
    };
    format!(
        "\n# Added by the launcher: the {svc} service's internal port behind one address\n\
         upstream {name} {{\n    server {servers};\n    keepalive 64;\n}}\n\n\
         server {{\n    listen 127.0.0.1:{port} {listen};\n    location / {{\n        {location}\n    }}\n}}\n",
        svc = b.service.name(),
        port = b.port,
    )
}

/// A running edge.
#[derive(Debug)]
pub struct Edge {
    config: EdgeConfig,
    prefix: PathBuf,
    nginx: PathBuf,
    members: tokio::sync::Mutex<BTreeMap<ProcessId, Member>>,
    supervisor: Supervisor,
    events: Events,
}

fn nobody_uid() -> Option<u32> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find(|l| l.starts_with("nobody:"))?.split(':').nth(2)?.parse().ok()
}

impl Edge {
    /// Renders the configuration into a fresh prefix, starts nginx and
    /// waits until it answers.
    pub async fn start(
        config: EdgeConfig,
        members: BTreeMap<ProcessId, Member>,
        events: Events,
        logs: LogTarget,
        restart: RestartPolicy,
        within: Duration,
    ) -> Result<Self> {
        let nginx = crate::prereq::nginx().context("nginx (the edge) is missing: apt-get install -y nginx")?;
        let prefix =
            std::env::temp_dir().join(format!("twinshop-edge-l{}-{:08x}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&prefix).with_context(|| format!("creating {}", prefix.display()))?;
        std::fs::set_permissions(&prefix, std::fs::Permissions::from_mode(0o755)).context("opening the edge prefix")?;
        let worker = rustix::process::geteuid().is_root().then(nobody_uid).flatten();
        for dir in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"] {
            let path = prefix.join(dir);
            std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
            if let Some(uid) = worker {
                std::os::unix::fs::chown(&path, Some(uid), None)
                    .with_context(|| format!("chown {}", path.display()))?;
            }
        }
        let written = match Self::write(&config, &prefix, &members) {
            Ok(()) => validate(&nginx, &prefix).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&prefix);
            return Err(e);
        }
        let conf = prefix.join("nginx.conf").display().to_string();
        let spec = ProcessSpec {
            stop_signal: Signal::QUIT,
            ready: Readiness::HttpAnswers(format!("http://127.0.0.1:{}/", config.port)),
            ..ProcessSpec::new("edge", &nginx).args([
                "-p",
                &prefix.display().to_string(),
                "-c",
                &conf,
                "-e",
                "stderr",
                "-g",
                "daemon off;",
            ])
        };
        let supervisor = Supervisor::start(spec, restart, events.clone(), logs);
        let edge = Self { config, prefix, nginx, members: tokio::sync::Mutex::new(members), supervisor, events };
        if let Err(e) = edge.supervisor.wait_ready(within).await {
            let _ = edge.stop(Duration::from_secs(2)).await;
            return Err(e);
        }
        Ok(edge)
    }

    fn write(config: &EdgeConfig, prefix: &Path, members: &BTreeMap<ProcessId, Member>) -> Result<()> {
        let (twinshop, nginx) = render(config, prefix, members)?;
        std::fs::write(prefix.join("twinshop.conf"), twinshop).context("writing twinshop.conf")?;
        std::fs::write(prefix.join("nginx.conf"), nginx).context("writing nginx.conf")?;
        Ok(())
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.config.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.config.port
    }

    /// The prefix directory (rendered configuration, temp folders).
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The nginx master's supervisor.
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// The replicas in the upstreams now.
    pub async fn members(&self) -> BTreeMap<ProcessId, Member> {
        self.members.lock().await.clone()
    }

    /// Takes `id` out of (or puts it into) the upstreams and reloads,
    /// returning once the old workers finished their requests.
    pub async fn set_in_edge(&self, id: ProcessId, in_edge: bool) -> Result<Duration> {
        let mut members = self.members.lock().await;
        let Some(member) = members.get_mut(&id) else { bail!("{id} is not behind the edge") };
        member.in_edge = in_edge;
        let drained = self.reload_locked(&members).await?;
        self.events.emit(&id.to_string(), if in_edge { EventKind::IntoEdge } else { EventKind::OutOfEdge });
        Ok(drained)
    }

    /// Changes a member's addresses (a replacement elsewhere) without reloading.
    pub async fn set_addresses(&self, id: ProcessId, public: String, internal: String) {
        if let Some(m) = self.members.lock().await.get_mut(&id) {
            m.public = public;
            m.internal = internal;
        }
    }

    async fn reload_locked(&self, members: &BTreeMap<ProcessId, Member>) -> Result<Duration> {
        Self::write(&self.config, &self.prefix, members)?;
        validate(&self.nginx, &self.prefix).await?;
        let master = self.supervisor.pid().context("the edge is not running")?;
        let old = children(master);
        signal(master, Signal::HUP).context("signalling nginx to reload")?;
        let started = Instant::now();
        // New workers first, then the old ones leave once their requests are done.
        while old.iter().any(|&pid| is_alive(pid)) {
            if started.elapsed() > Duration::from_secs(60) {
                bail!("nginx's old workers still run 60 s after the reload");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let drained = started.elapsed();
        self.events.emit("edge", EventKind::EdgeReloaded { drained_in: drained });
        Ok(drained)
    }

    /// SIGKILL to the master *and* its workers (a killed container takes
    /// its whole process tree; orphaned workers would keep the port).
    pub async fn kill(&self) -> Result<()> {
        if let Some(master) = self.supervisor.pid() {
            for worker in children(master) {
                let _ = signal(worker, Signal::KILL);
            }
        }
        self.supervisor.kill().await
    }

    /// Graceful stop (SIGQUIT: workers finish their requests), then the prefix is removed.
    pub async fn stop(&self, grace: Duration) -> Result<()> {
        let workers = self.supervisor.pid().map(children).unwrap_or_default();
        self.supervisor.stop(grace).await?;
        for worker in workers {
            let _ = signal(worker, Signal::KILL);
        }
        let _ = std::fs::remove_dir_all(&self.prefix);
        Ok(())
    }
}

async fn validate(nginx: &Path, prefix: &Path) -> Result<()> {
    let conf = prefix.join("nginx.conf");
    let out = tokio::process::Command::new(nginx)
        .args(["-t", "-q", "-e", "stderr", "-p"])
        .arg(prefix)
        .arg("-c")
        .arg(&conf)
        .output()
        .await
        .context("running nginx -t")?;
    if !out.status.success() {
        bail!("the rendered edge configuration is invalid: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Kills the nginx of edges whose launcher is gone and removes their prefixes.
pub fn remove_leftovers() -> usize {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("twinshop-edge-l")
            .and_then(|r| r.split_once('-'))
            .and_then(|(p, _)| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let master = std::fs::read_to_string(entry.path().join("nginx.pid")).ok().and_then(|p| p.trim().parse().ok());
        if let Some(master) = master.filter(|&m| is_alive(m)) {
            for worker in children(master) {
                let _ = signal(worker, Signal::KILL);
            }
            let _ = signal(master, Signal::KILL);
        }
        let _ = std::fs::remove_dir_all(entry.path());
        removed += 1;
    }
    removed
}

#[cfg(test)]
#[path = "edge_tests.rs"]
mod tests;
