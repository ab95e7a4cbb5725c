//! The lab's own backing services: a throwaway PostgreSQL cluster (the
//! machine's `initdb` and `postgres`), a private `redis-server` and a
//! private RabbitMQ node, each on its own ports under a temporary folder.
//!
//! Why: a lab that restarts PostgreSQL or RabbitMQ must not disturb
//! anything else on the machine (other tests, a developer's `make run`).
//! Each server runs in its own process group, so a "crash" is a SIGKILL of
//! the whole group (the postmaster and its backends, the Erlang VM and its
//! helpers), and a restart starts it again on the same data: what a
//! machine or container restart does to it.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use tokio::{process::Child, sync::Mutex};

/// Which server an [`Instance`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    Redis,
    RabbitMq,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Redis => "redis",
            Self::RabbitMq => "rabbitmq",
        }
    }
}

/// One private server: how to start it, and the running process group.
#[derive(Debug)]
pub struct Instance {
    pub kind: Kind,
    pub port: u16,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Mutex<Option<Child>>,
}

impl Instance {
    /// The client URL (the launcher's `Backing` wants these shapes).
    pub fn url(&self) -> String {
        match self.kind {
            Kind::Postgres => format!("postgres://postgres@127.0.0.1:{}", self.port),
            Kind::Redis => format!("redis://127.0.0.1:{}", self.port),
            Kind::RabbitMq => format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port),
        }
    }

    /// Starts it and waits until its port accepts connections (Postgres: sessions).
    pub async fn start(&self) -> Result<Duration> {
        let started = Instant::now();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(false);
        let child = cmd.spawn().with_context(|| format!("starting {}", self.kind.name()))?;
        *self.child.lock().await = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            if Instant::now() > deadline {
                bail!("{} did not open port {} within 60 s (see {})", self.kind.name(), self.port, self.log.display());
            }
            if let Some(child) = self.child.lock().await.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("{} exited at start ({status}); see {}", self.kind.name(), self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // PostgreSQL opens its port before it accepts sessions ("the
        // database system is starting up"): wait for a real one.
        if self.kind == Kind::Postgres {
            use sqlx::Connection as _;
            let url = format!("{}/postgres", self.url());
            while sqlx::PgConnection::connect(&url).await.is_err() {
                if Instant::now() > deadline {
                    bail!("postgres did not accept a session within 60 s (see {})", self.log.display());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(started.elapsed())
    }

    /// SIGKILL to its whole process group, as a crash does; waits for it.
    pub async fn crash(&self) -> Result<()> {
        let Some(mut child) = self.child.lock().await.take() else { return Ok(()) };
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()).and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        // The port is closed once every process of the group is gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

/// A lab interrupted (its future dropped) leaves no server running: the
/// whole process group is killed, as [`Instance::crash`] does.
impl Drop for Instance {
    fn drop(&mut self) {
        self.kill_now();
    }
}

impl Instance {
    /// SIGKILL to its process group, without waiting.
    fn kill_now(&mut self) {
        let Some(child) = self.child.get_mut().take() else { return };
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()).and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Dropped without [`Backing::stop`] (an interrupted lab): the servers are
/// killed and their data removed all the same.
impl Drop for Backing {
    fn drop(&mut self) {
        self.postgres.kill_now();
        self.redis.kill_now();
        if let Some(mq) = &mut self.rabbitmq {
            mq.kill_now();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The lab's three servers and the folder they keep their data in.
#[derive(Debug)]
pub struct Backing {
    dir: PathBuf,
    pub postgres: Instance,
    pub redis: Instance,
    /// `None` for a build that needs no broker (the monolith).
    pub rabbitmq: Option<Instance>,
}

fn postgres_bin() -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL's server binaries (/usr/lib/postgresql) are missing")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").is_file())
        .collect();
    found.sort();
    found.pop().context("no /usr/lib/postgresql/*/bin/postgres")
}

/// Runs `cmd` as a blocking helper and fails with its output.
fn run(cmd: &mut std::process::Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    ensure!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn chown(path: &Path, user: &str) -> Result<()> {
    run(std::process::Command::new("chown").arg("-R").arg(user).arg(path), "chown")
}

impl Backing {
    /// Creates the data folders (a fresh PostgreSQL cluster with `initdb`)
    /// and starts the servers; `with_broker` adds RabbitMQ.
    pub async fn start(label: &str, with_broker: bool) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("twinshop-lab-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let ports = twinshop_launcher::ports::free_ports(4)?;
        let bin = postgres_bin()?;
        let pgdata = dir.join("pgdata");
        std::fs::create_dir_all(&pgdata)?;
        chown(&dir, "postgres")?;
        run(
            std::process::Command::new("setpriv")
                .args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"])
                .arg(bin.join("initdb"))
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "-D"])
                .arg(&pgdata),
            "initdb",
        )?;
        let postgres = Instance {
            kind: Kind::Postgres,
            port: ports[0],
            program: "setpriv".into(),
            args: vec![
                "--reuid=postgres".into(),
                "--regid=postgres".into(),
                "--init-groups".into(),
                "--".into(),
                bin.join("postgres").display().to_string(),
                "-D".into(),
                pgdata.display().to_string(),
                "-p".into(),
                ports[0].to_string(),
                "-k".into(),
                dir.display().to_string(),
                "-c".into(),
                "listen_addresses=127.0.0.1".into(),
                "-c".into(),
                "max_connections=300".into(),
            ],
            env: Vec::new(),
            log: dir.join("postgres.log"),
            child: Mutex::new(None),
        };
        let redis = Instance {
            kind: Kind::Redis,
            port: ports[1],
            program: "redis-server".into(),
            args: ["--bind", "127.0.0.1", "--port", &ports[1].to_string(), "--save", "", "--appendonly", "no"]
                .iter()
                .map(|s| (*s).to_owned())
                .chain(["--dir".into(), dir.display().to_string()])
                .collect(),
            env: Vec::new(),
            log: dir.join("redis.log"),
            child: Mutex::new(None),
        };
        let rabbitmq = with_broker.then(|| rabbitmq(&dir, ports[2], ports[3], label)).transpose()?;
        let backing = Self { dir, postgres, redis, rabbitmq };
        let (pg, rd, mq) = tokio::join!(backing.postgres.start(), backing.redis.start(), async {
            match &backing.rabbitmq {
                Some(mq) => mq.start().await.map(Some),
                None => Ok(None),
            }
        });
        pg?;
        rd?;
        mq?;
        Ok(backing)
    }

    /// The launcher's view of them.
    pub fn for_launcher(&self) -> twinshop_launcher::plan::Backing {
        twinshop_launcher::plan::Backing {
            postgres: self.postgres.url(),
            postgres_params: "?sslmode=disable".into(),
            redis: self.redis.url(),
            amqp: self.rabbitmq.as_ref().map_or_else(|| "amqp://guest:guest@127.0.0.1:9/%2f".into(), Instance::url),
        }
    }

    /// Stops every server and removes the data.
    pub async fn stop(self) {
        let _ = self.postgres.crash().await;
        let _ = self.redis.crash().await;
        if let Some(mq) = &self.rabbitmq {
            let _ = mq.crash().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A RabbitMQ node of its own: its name, ports, config, data and logs.
fn rabbitmq(dir: &Path, port: u16, dist_port: u16, label: &str) -> Result<Instance> {
    let base = dir.join("rabbitmq");
    std::fs::create_dir_all(&base)?;
    std::fs::write(base.join("rabbitmq.conf"), format!("listeners.tcp.local = 127.0.0.1:{port}\n"))?;
    std::fs::write(base.join("enabled_plugins"), "[].\n")?;
    chown(&base, "rabbitmq")?;
    let node = format!("lab-{label}-{}@localhost", std::process::id());
    let env = [
        ("HOME", "/var/lib/rabbitmq".to_owned()),
        ("RABBITMQ_NODENAME", node),
        ("RABBITMQ_DIST_PORT", dist_port.to_string()),
        ("RABBITMQ_CONFIG_FILE", base.join("rabbitmq.conf").display().to_string()),
        ("RABBITMQ_ENABLED_PLUGINS_FILE", base.join("enabled_plugins").display().to_string()),
        ("RABBITMQ_MNESIA_BASE", base.join("mnesia").display().to_string()),
        ("RABBITMQ_LOG_BASE", base.join("log").display().to_string()),
    ];
    Ok(Instance {
        kind: Kind::RabbitMq,
        port,
        program: "setpriv".into(),
        args: ["--reuid=rabbitmq", "--regid=rabbitmq", "--init-groups", "--", "/usr/lib/rabbitmq/bin/rabbitmq-server"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        log: dir.join("rabbitmq.log"),
        child: Mutex::new(None),
    })
}
