//! Debian's Prometheus against a running system, the way `scripts/prometheus`
//! runs it (the committed `deploy/prometheus/local.yml` and `rules.yml`,
//! the launcher's file-based discovery), and a client of its HTTP API.
//!
//! Why it exists: the dashboards test must read the services' metrics
//! through a real Prometheus (scrapes, rates, histograms over time), not
//! parse `/metrics` itself. Each test gets its own Prometheus on a free
//! port, in a directory laid out like the repository (`deploy/prometheus/`
//! next to `target/prometheus/twinshop.json`), so the configuration's
//! relative paths are the committed ones, unchanged.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::Mutex,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use serde_json::Value;
use twinshop_launcher::{System, plan::workspace_root, prometheus::write_file_sd};

/// One series of an instant query: its labels and value (NaN when
/// Prometheus computed none, e.g. a quantile of no requests).
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One series of a range query: its labels and `(unix seconds, value)`.
#[derive(Debug, Clone)]
pub struct Range {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(f64, f64)>,
}

/// A Prometheus process scraping a [`System`]; killed when dropped.
#[derive(Debug)]
pub struct Prometheus {
    child: tokio::process::Child,
    url: String,
    dir: PathBuf,
    http: reqwest::Client,
}

impl Prometheus {
    /// The scrape interval of `deploy/prometheus/local.yml`.
    pub fn scrape_interval() -> anyhow::Result<Duration> {
        let path = workspace_root().join("deploy/prometheus/local.yml");
        let config: serde_norway::Value = serde_norway::from_str(&std::fs::read_to_string(&path)?)?;
        let text = config["global"]["scrape_interval"].as_str().context("no global.scrape_interval")?;
        let secs: u64 = text.strip_suffix('s').and_then(|n| n.parse().ok()).context("scrape_interval in seconds")?;
        Ok(Duration::from_secs(secs))
    }

    /// Starts Prometheus (the `prometheus` binary on PATH, installed by
    /// `scripts/prometheus --install` when missing) scraping every process
    /// of `system`, in `target/e2e-prometheus/<name>-<pid>/`, and waits
    /// until it answers.
    pub async fn start(system: &System, name: &str) -> anyhow::Result<Self> {
        let binary = installed().await?;
        let root = workspace_root();
        let dir = root.join("target/e2e-prometheus").join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config_dir = dir.join("deploy/prometheus");
        std::fs::create_dir_all(&config_dir)?;
        for file in ["local.yml", "rules.yml"] {
            std::fs::copy(root.join("deploy/prometheus").join(file), config_dir.join(file))?;
        }
        write_file_sd(&dir.join("target/prometheus/twinshop.json"), system.build(), &system.processes())?;
        let port = twinshop_launcher::ports::free_port()?;
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let child = tokio::process::Command::new(binary)
            .arg(format!("--config.file={}", config_dir.join("local.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting prometheus")?;
        let prometheus = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match prometheus.http.get(format!("{}/-/ready", prometheus.url)).send().await {
                Ok(res) if res.status().is_success() => return Ok(prometheus),
                _ if Instant::now() > deadline => bail!("prometheus not ready within 30 s; see {}", prometheus.log()),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Its base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its log file.
    pub fn log(&self) -> String {
        self.dir.join("prometheus.log").display().to_string()
    }

    /// Waits until `job`'s targets number `n` and all were scraped
    /// successfully.
    pub async fn wait_for_targets(&self, job: &str, n: usize, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let body = self.get("/api/v1/targets", &[("state", "active")]).await?;
            let health: Vec<&str> = body["data"]["activeTargets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["labels"]["job"] == job)
                .map(|t| t["health"].as_str().unwrap_or("unknown"))
                .collect();
            if health.len() == n && health.iter().all(|h| *h == "up") {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{job}: {} targets, health {health:?}, after {within:?}", health.len());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// An instant query, evaluated now.
    pub async fn query(&self, expr: &str) -> anyhow::Result<Vec<Sample>> {
        let body = self.get("/api/v1/query", &[("query", expr)]).await?;
        let data = &body["data"];
        let results = match data["resultType"].as_str() {
            Some("vector") => data["result"].as_array().cloned().unwrap_or_default(),
            Some("scalar") => vec![serde_json::json!({"metric": {}, "value": data["result"]})],
            other => bail!("unexpected result type {other:?} for {expr}"),
        };
        Ok(results.iter().map(|r| Sample { labels: labels(&r["metric"]), value: number(&r["value"][1]) }).collect())
    }

    /// A range query from `start` to now, one point per `step`.
    pub async fn query_range(&self, expr: &str, start: SystemTime, step: Duration) -> anyhow::Result<Vec<Range>> {
        let (start, end) = (unix(start), unix(SystemTime::now()));
        let body = self
            .get(
                "/api/v1/query_range",
                &[
                    ("query", expr),
                    ("start", &format!("{start:.3}")),
                    ("end", &format!("{end:.3}")),
                    ("step", &format!("{}s", step.as_secs().max(1))),
                ],
            )
            .await?;
        Ok(body["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| Range {
                labels: labels(&r["metric"]),
                points: r["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| (p[0].as_f64().unwrap_or_default(), number(&p[1])))
                    .collect(),
            })
            .collect())
    }

    /// The values of `label` on the series `selector` matches (what a
    /// Grafana `label_values(selector, label)` variable lists).
    pub async fn label_values(&self, selector: &str, label: &str) -> anyhow::Result<Vec<String>> {
        let body = self.get(&format!("/api/v1/label/{label}/values"), &[("match[]", selector)]).await?;
        Ok(body["data"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect())
    }

    /// A GET of the HTTP API; an error unless its `status` is `success`.
    async fn get(&self, path: &str, params: &[(&str, &str)]) -> anyhow::Result<Value> {
        let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        let res = self.http.get(format!("{}{path}?{query}", self.url)).send().await.context("asking prometheus")?;
        let body: Value = res.json().await.context("prometheus answered no JSON")?;
        if body["status"] != "success" {
            bail!("{path} {params:?}: {}", body["error"]);
        }
        Ok(body)
    }

    /// Stops it and removes its directory (kept when a test fails and
    /// drops it instead).
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn labels(metric: &Value) -> BTreeMap<String, String> {
    metric
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// Prometheus sends sample values as strings (`"NaN"`, `"+Inf"` included).
fn number(v: &Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

/// The `prometheus` binary, installed from Debian's package first when it
/// is missing (as `make test` on a fresh machine needs; the script says
/// what to run instead when it cannot install).
async fn installed() -> anyhow::Result<PathBuf> {
    if let Some(binary) = which("prometheus") {
        return Ok(binary);
    }
    let script = workspace_root().join("scripts/prometheus");
    let status = tokio::task::spawn_blocking(move || {
        // Both builds' tests may get here at once: one apt-get at a time.
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        std::process::Command::new(script).arg("--install").status()
    })
    .await?
    .context("running scripts/prometheus --install")?;
    match which("prometheus") {
        Some(binary) if status.success() => Ok(binary),
        _ => bail!(
            "Debian's prometheus is not installed and scripts/prometheus --install could not install it ({status})"
        ),
    }
}

/// `name` on PATH.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}
