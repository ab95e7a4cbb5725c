//! A copy of a running process, started by the lab itself: the same binary
//! with the environment the launcher gave that process (read back from
//! `/proc/<pid>/environ`), on other ports, with a change or two, in a
//! folder of the lab's choosing, its stdout and stderr kept apart.
//!
//! Why: the config, backing-service and logs factors are about what one
//! process does with its environment, its working folder and its output
//! streams, which the launcher (one log file per process, stdout and
//! stderr together) does not show apart.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader},
    process::{Child, Command},
    time::Instant,
};
use twinshop_launcher::ProcessInfo;

/// The environment a process was started with.
pub fn env_of(pid: u32) -> Result<Vec<(String, String)>> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).with_context(|| format!("reading /proc/{pid}/environ"))?;
    Ok(raw
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect())
}

/// `vars` with `changes` applied: a value sets, an empty value removes.
pub fn changed(vars: &[(String, String)], changes: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        vars.iter().filter(|(k, _)| !changes.iter().any(|(c, _)| c == k)).cloned().collect();
    out.extend(changes.iter().filter(|(_, v)| !v.is_empty()).cloned());
    out
}

/// A copy that runs.
#[derive(Debug)]
pub struct Copy {
    child: Child,
    pub internal_url: String,
    pub public_url: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// What a copy printed, once it ended.
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout_lines: Vec<String>,
    pub stderr: String,
    pub code: Option<i32>,
}

/// Runs `program` with exactly `env` in `cwd` until it exits (at most 20 s).
pub async fn run_once(program: &Path, args: &[&str], env: &[(String, String)], cwd: &Path) -> Result<Output> {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new(program).args(args).env_clear().envs(env.iter().cloned()).current_dir(cwd).output(),
    )
    .await
    .with_context(|| format!("{} did not exit within 120 s", program.display()))??;
    Ok(Output {
        stdout_lines: String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    })
}

impl Copy {
    /// Starts a copy of `of` (prefix `prefix`) with `changes` on free ports
    /// in `cwd`, and waits until its `/readyz` says 200.
    pub async fn start(of: &ProcessInfo, prefix: &str, changes: &[(String, String)], cwd: &Path) -> Result<Self> {
        let pid = of.pid.context("the process does not run")?;
        let ports = twinshop_launcher::ports::free_ports(2)?;
        let mut all = changes.to_vec();
        all.push((format!("{prefix}HTTP_PORT"), ports[0].to_string()));
        all.push((format!("{prefix}INTERNAL_PORT"), ports[1].to_string()));
        let env = changed(&env_of(pid)?, &all);
        let mut child = Command::new(&of.program)
            .env_clear()
            .envs(env)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting a copy of {}", of.id))?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            let sink = stdout.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    sink.lock().unwrap_or_else(PoisonError::into_inner).push(line);
                }
            });
        }
        if let Some(mut err) = child.stderr.take() {
            let sink = stderr.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let _ = err.read_to_end(&mut buf).await;
                sink.lock().unwrap_or_else(PoisonError::into_inner).extend(buf);
            });
        }
        let copy = Self {
            child,
            internal_url: format!("http://127.0.0.1:{}", ports[1]),
            public_url: format!("http://127.0.0.1:{}", ports[0]),
            stdout,
            stderr,
        };
        copy.wait_ready().await?;
        Ok(copy)
    }

    async fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("{}/readyz", self.internal_url);
        while !twinshop_launcher::readiness::is_ok(&url).await {
            if Instant::now() > deadline {
                let err =
                    String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(PoisonError::into_inner)).into_owned();
                bail!("the copy was not ready within 60 s: {err}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// The copy's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGTERM, wait for the exit, and what it printed.
    pub async fn stop(mut self) -> Result<Output> {
        if let Some(pid) = self.child.id() {
            let pid = rustix::process::Pid::from_raw(pid.cast_signed()).context("a pid")?;
            rustix::process::kill_process(pid, rustix::process::Signal::TERM).context("SIGTERM")?;
        }
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("the copy did not exit within 30 s of SIGTERM")??;
        // Let the pipe readers finish.
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(Output {
            stdout_lines: self.stdout.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            stderr: String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(PoisonError::into_inner)).into_owned(),
            code: status.code(),
        })
    }
}

/// A fresh empty folder (the working folder and `HOME` of a copy).
pub fn empty_dir(label: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("twelve-factor-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
