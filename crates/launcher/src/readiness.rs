//! Waiting until something answers: a service's `/readyz` (200 once its own
//! dependencies are reachable, DESIGN.md section 4) or the edge. Polls every
//! 50 ms with short timeouts, so a process that is paused or cut off delays
//! the answer but never blocks the poller.

use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .connect_timeout(Duration::from_millis(500))
            .pool_max_idle_per_host(0)
            .build()
            .unwrap_or_default()
    })
}

/// The status of a GET of `url`, if anything answered.
pub async fn status(url: &str) -> Option<u16> {
    client().get(url).send().await.ok().map(|r| r.status().as_u16())
}

/// Whether a TCP connection to `addr` (`host:port`) is accepted within 500 ms.
pub async fn accepts(addr: &str) -> bool {
    matches!(tokio::time::timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(addr)).await, Ok(Ok(_)))
}

/// Whether a GET of `url` answers 200.
pub async fn is_ok(url: &str) -> bool {
    status(url).await == Some(200)
}

/// Waits until a GET of `url` answers 200; `what` names it in the error.
pub async fn wait_ok(url: &str, within: Duration, what: &str) -> Result<Duration> {
    wait_until(url, within, what, |s| s == 200).await
}

/// Waits until a GET of `url` gets any HTTP answer.
pub async fn wait_answering(url: &str, within: Duration, what: &str) -> Result<Duration> {
    wait_until(url, within, what, |_| true).await
}

async fn wait_until(url: &str, within: Duration, what: &str, good: impl Fn(u16) -> bool) -> Result<Duration> {
    let started = Instant::now();
    let mut last = None;
    loop {
        let answer = status(url).await;
        if answer.is_some_and(&good) {
            return Ok(started.elapsed());
        }
        last = answer.or(last);
        if started.elapsed() > within {
            match last {
                Some(code) => bail!("{what} was not ready within {within:?} ({url} last answered {code})"),
                None => bail!("{what} was not ready within {within:?} ({url} never answered)"),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
