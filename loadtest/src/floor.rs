//! The floor: what the internal calls cost when nothing but the frameworks
//! answers them. A bare tonic server (gRPC health and `Payments/Charge`)
//! and a bare axum server (the user lookup, read from Redis), with the
//! services' runtime settings and none of their layers: no spans, no
//! metrics, no request ids, no timeout, no problem mapping, no database.
//!
//! Why it exists: "the health check costs 100 µs of CPU" means little
//! until it is set against what tonic alone needs on the same machine at
//! the same moment. `loadtest compare` starts this server as its own
//! process (`loadtest-floor`) and probes it interleaved with the real
//! internal calls (see [`crate::compare::hops`]), so every call is reported
//! as a ratio to its floor, measured in the same run.
//!
//! What each floor answers:
//! - `grpc.health.v1.Health/Check`: tonic-health's own service, as the
//!   payment service mounts it;
//! - `twinshop.payment.v1.Payments/Charge`: the generated server answering
//!   `INSUFFICIENT_FUNDS` without any work (the transport and codec of a
//!   Charge, none of its transaction);
//! - `GET /internal/v1/users/{id}`: one Redis `GET` of the cached entry
//!   (written on the first miss), answered as JSON in the lookup's shape
//!   (the framework's floor of a lookup served from the cache).
//!
//! The runtime is built as every service builds it
//! (`twinshop_platform::host::main`): tokio's multi-threaded runtime, with
//! as many workers as the service it is set against. The launcher gives
//! each microservice a share of the cores (`TOKIO_WORKER_THREADS`, one each
//! on two cores), so `compare` starts the floor with the value it reads
//! from the user service's own environment ([`worker_threads_of`]); a
//! floor with tokio's default of one worker per core would be measured
//! with a runtime the services no longer have. Connections get
//! `TCP_NODELAY`, as in the services.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context as _, Result};
use axum::{
    Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
    serve::ListenerExt as _,
};
use redis::{AsyncCommands as _, aio::ConnectionManager};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use twinshop_contracts::payment::v1::{
    ChargeOutcome, ChargeRequest, ChargeResponse, RefundOutcome, RefundRequest, RefundResponse,
    payments_server::{Payments, PaymentsServer},
};

/// Where the floor's two servers listen: printed as one JSON line on
/// stdout when both are bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloorAddrs {
    /// The bare tonic server (gRPC health and Payments).
    pub grpc: SocketAddr,
    /// The bare axum server (the user lookup).
    pub http: SocketAddr,
}

/// Keys of the floor's cache entries, apart from any service's.
const KEY_PREFIX: &str = "twinshop-floor:user:v1:";

/// The Charge floor: the generated server, no work behind it.
#[derive(Debug, Clone, Copy, Default)]
struct BarePayments;

#[tonic::async_trait]
impl Payments for BarePayments {
    async fn charge(
        &self,
        _request: tonic::Request<ChargeRequest>,
    ) -> Result<tonic::Response<ChargeResponse>, tonic::Status> {
        Ok(tonic::Response::new(ChargeResponse { outcome: ChargeOutcome::InsufficientFunds.into(), balance_cents: 0 }))
    }

    async fn refund(
        &self,
        _request: tonic::Request<RefundRequest>,
    ) -> Result<tonic::Response<RefundResponse>, tonic::Status> {
        Ok(tonic::Response::new(RefundResponse { outcome: RefundOutcome::NotCharged.into(), amount_cents: 0 }))
    }
}

/// The cached entry the floor writes and serves, in the lookup's JSON shape.
fn entry(id: &str) -> String {
    serde_json::json!({
        "id": id,
        "name": "Floor Probe",
        "address": { "line1": "1 Floor Street", "city": "Lyon", "postal_code": "69001", "country": "FR" },
    })
    .to_string()
}

/// `GET /internal/v1/users/{id}`: the cached bytes as they are.
async fn lookup(State(mut redis): State<ConnectionManager>, Path(id): Path<String>) -> Response {
    let key = format!("{KEY_PREFIX}{id}");
    let cached: redis::RedisResult<Option<String>> = redis.get(&key).await;
    let body = match cached {
        Ok(Some(body)) => body,
        Ok(None) => {
            let body = entry(&id);
            if let Err(e) = redis.set_ex::<_, _, ()>(&key, &body, 600).await {
                return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response();
            }
            body
        }
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Binds both servers on `ip` (free ports) and serves until `shutdown`
/// completes; `bound` is called with the addresses once both listen.
pub async fn serve(
    ip: std::net::IpAddr,
    redis_url: &str,
    bound: impl FnOnce(FloorAddrs),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let client = redis::Client::open(redis_url).context("the Redis URL is malformed")?;
    let config = redis::aio::ConnectionManagerConfig::new().set_connection_timeout(Some(Duration::from_secs(2)));
    let redis = ConnectionManager::new_with_config(client, config).await.context("connecting to Redis")?;

    let http_listener = TcpListener::bind((ip, 0)).await.context("binding the HTTP floor")?;
    let grpc_listener = TcpListener::bind((ip, 0)).await.context("binding the gRPC floor")?;
    let addrs = FloorAddrs { grpc: grpc_listener.local_addr()?, http: http_listener.local_addr()? };

    let (_reporter, health) = tonic_health::server::health_reporter();
    let incoming = TcpIncoming::from(grpc_listener).with_nodelay(Some(true));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut stop_grpc = stop_rx.clone();
    let grpc = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(PaymentsServer::new(BarePayments))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stop_grpc.wait_for(|stop| *stop).await;
        });

    let router = Router::new().route("/internal/v1/users/{id}", get(lookup)).with_state(redis);
    let listener = http_listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let mut stop_http = stop_rx;
    let http = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = stop_http.wait_for(|stop| *stop).await;
    });

    bound(addrs);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let (grpc, http) = tokio::join!(grpc, async { http.await });
    grpc.context("the gRPC floor failed")?;
    http.context("the HTTP floor failed")?;
    Ok(())
}

const WORKER_THREADS: &str = "TOKIO_WORKER_THREADS";

/// `TOKIO_WORKER_THREADS` as set in the environment process `pid` started
/// with, if it is set (and readable: the process is ours or we are root).
pub fn worker_threads_of(pid: u32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    worker_threads_in(&environ)
}

/// The value of `TOKIO_WORKER_THREADS` in a `/proc/{pid}/environ` image
/// (`KEY=VALUE` entries separated by NUL bytes).
fn worker_threads_in(environ: &[u8]) -> Option<String> {
    let key = format!("{WORKER_THREADS}=");
    environ
        .split(|&b| b == 0)
        .find_map(|entry| entry.strip_prefix(key.as_bytes()))
        .map(|value| String::from_utf8_lossy(value).into_owned())
}

/// The floor as a child process of `compare`: started from the binary
/// next to the running `loadtest`, killed when dropped.
#[derive(Debug)]
pub struct FloorProcess {
    child: tokio::process::Child,
    /// Where it listens.
    pub addrs: FloorAddrs,
}

impl FloorProcess {
    /// The `loadtest-floor` binary beside the current executable.
    pub fn binary() -> Result<std::path::PathBuf> {
        let me = std::env::current_exe().context("the running executable")?;
        let floor = me.with_file_name("loadtest-floor");
        anyhow::ensure!(floor.is_file(), "{} not found (cargo build --release -p twinshop-loadtest)", floor.display());
        Ok(floor)
    }

    /// Starts the floor against Redis at `redis_url`, with `workers` as its
    /// `TOKIO_WORKER_THREADS` (tokio's default when `None`), and waits for
    /// its addresses.
    pub async fn start(redis_url: &str, workers: Option<&str>) -> Result<Self> {
        use tokio::io::AsyncBufReadExt as _;
        let mut command = tokio::process::Command::new(Self::binary()?);
        match workers {
            Some(n) => command.env(WORKER_THREADS, n),
            None => command.env_remove(WORKER_THREADS),
        };
        let mut child = command
            .arg("--redis")
            .arg(redis_url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting loadtest-floor")?;
        let stdout = child.stdout.take().context("the floor's stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .context("the floor did not say where it listens within 10 s")??
            .context("the floor exited before it listened")?;
        let addrs = serde_json::from_str(&line).with_context(|| format!("the floor said {line:?}"))?;
        Ok(Self { child, addrs })
    }

    /// Its pid, for CPU accounting.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops it: closing its stdin is its shutdown signal.
    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cached_entry_reads_as_a_user_lookup() {
        let id = "0190c4a5-8a48-7d6e-9c1f-2f3a4b5c6d7e";
        let parsed: twinshop_client::UserLookup = serde_json::from_str(&entry(id)).expect("a lookup");
        assert_eq!(parsed.id.to_string(), id);
        assert!(parsed.address.is_some());
    }

    #[test]
    fn worker_threads_are_read_from_an_environ_image() {
        let environ = b"PATH=/usr/bin\0XTOKIO_WORKER_THREADS=9\0TOKIO_WORKER_THREADS=1\0RUST_LOG=info\0";
        assert_eq!(worker_threads_in(environ).as_deref(), Some("1"));
        assert_eq!(worker_threads_in(b"PATH=/usr/bin\0RUST_LOG=info"), None);
        // A process of our own: the test's environment, whatever it holds.
        let mine = worker_threads_of(std::process::id());
        assert_eq!(mine, std::env::var(WORKER_THREADS).ok());
    }
}
