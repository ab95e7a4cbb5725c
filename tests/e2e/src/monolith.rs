//! The monolith binary as a real process, on its own test database.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use twinshop_testkit::{TestDb, dev_keys, eventually};

use crate::{bin_dir, free_port};

#[derive(Debug)]
pub struct Monolith {
    pub db: TestDb,
    child: Option<Child>,
    http: u16,
    internal: u16,
    log: PathBuf,
}

impl Monolith {
    /// Migrates a fresh database and starts the monolith in `mode`
    /// (`strict` or `available`); waits until ready.
    pub async fn start(mode: &str) -> Self {
        twinshop_testkit::require_backing_services();
        let db = TestDb::create("mono").await;
        let (http, internal) = (free_port(), free_port());
        let log = bin_dir().join("e2e-logs").join(format!("{}.log", db.name));
        let _ = std::fs::create_dir_all(bin_dir().join("e2e-logs"));
        let mut mono = Self { db, child: None, http, internal, log };
        let out = mono.command(mode).arg("migrate").output().expect("run monolith migrate");
        assert!(out.status.success(), "monolith migrate failed: {}", String::from_utf8_lossy(&out.stdout));
        let log = std::fs::File::create(&mono.log).expect("log");
        let child = mono
            .command(mode)
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn");
        mono.child = Some(child);
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{internal}/readyz");
        eventually("the monolith is ready", Duration::from_secs(30), || {
            let (client, url) = (client.clone(), url.clone());
            async move { client.get(url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
        })
        .await;
        mono
    }

    fn command(&self, mode: &str) -> Command {
        let bin = bin_dir().join("monolith");
        assert!(
            bin.exists(),
            "{} is missing: build the binaries first (cargo build --workspace --bins)",
            bin.display()
        );
        let (private_key, public_key) = dev_keys();
        let mut cmd = Command::new(bin);
        cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).envs([
            ("MONOLITH_BIND_ADDRESS", "127.0.0.1".to_owned()),
            ("MONOLITH_HTTP_PORT", self.http.to_string()),
            ("MONOLITH_INTERNAL_PORT", self.internal.to_string()),
            ("MONOLITH_DATABASE_URL", self.db.url.clone()),
            ("MONOLITH_REDIS_URL", twinshop_testkit::redis_url()),
            ("MONOLITH_CONSISTENCY_MODE", mode.to_owned()),
            ("MONOLITH_HASH_CONCURRENCY", "2".to_owned()),
            ("MONOLITH_SWEEP_INTERVAL_MS", "200".to_owned()),
            ("JWT_PRIVATE_KEY", private_key),
            ("JWT_PUBLIC_KEY", public_key),
            ("SHUTDOWN_TIMEOUT", "5".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ]);
        cmd
    }

    /// `host:port` of the public API.
    pub fn public_addr(&self) -> String {
        format!("127.0.0.1:{}", self.http)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.public_addr())
    }

    pub fn internal_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.internal)
    }

    /// SIGTERM, wait, drop the database.
    pub async fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
        let db = self.db.clone();
        db.drop_database().await;
    }
}

impl Drop for Monolith {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
