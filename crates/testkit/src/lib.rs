//! Test support: each test gets its own database and its own broker
//! namespace on the machine's real Postgres, Redis and RabbitMQ, so tests
//! run in parallel without seeing each other.
//!
//! The services are found through `TEST_DATABASE_URL` (an admin URL, default
//! `postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable`: plain TCP
//! on loopback, see `scripts/run-local`), `TEST_REDIS_URL` and
//! `TEST_AMQP_URL`. When one is unreachable the first test says so plainly
//! (and `make test` checks before building anything).

use std::{
    future::Future,
    net::TcpStream,
    path::PathBuf,
    sync::OnceLock,
    time::{Duration, Instant},
};

use sqlx::{Connection, Executor, PgConnection};

pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into())
}

/// `url` pointing at database `name` instead, its parameters kept.
pub fn with_database(url: &str, name: &str) -> String {
    let (path, params) = url.split_once('?').map_or((url, None), |(p, q)| (p, Some(q)));
    let base = path.rsplit_once('/').map_or(path, |(b, _)| b);
    match params {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// RabbitMQ's `host:port`, e.g. for a [`TcpProxy`] in front of it.
pub fn amqp_address() -> String {
    host_port(&amqp_url(), 5672)
}

/// [`amqp_url`] with its `host:port` replaced by `address` (same user,
/// password and vhost), e.g. to reach RabbitMQ through a [`TcpProxy`].
pub fn amqp_url_via(address: &str) -> String {
    let url = amqp_url();
    url.replacen(&amqp_address(), address, 1)
}

fn host_port(url: &str, default_port: u16) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = authority.rsplit('@').next().unwrap_or(authority);
    if host.contains(':') { host.to_owned() } else { format!("{host}:{default_port}") }
}

/// Panics with a plain message if a backing service is unreachable.
pub fn require_backing_services() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let services = [
            ("PostgreSQL", host_port(&admin_database_url(), 5432), "TEST_DATABASE_URL"),
            ("Redis", host_port(&redis_url(), 6379), "TEST_REDIS_URL"),
            ("RabbitMQ", host_port(&amqp_url(), 5672), "TEST_AMQP_URL"),
        ];
        let missing: Vec<String> = services
            .iter()
            .filter(|(_, addr, _)| {
                let Ok(mut addrs) = std::net::ToSocketAddrs::to_socket_addrs(addr.as_str()) else { return true };
                !addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
            })
            .map(|(name, addr, var)| format!("{name} at {addr} (set {var} to point elsewhere)"))
            .collect();
        assert!(
            missing.is_empty(),
            "backing services unreachable: {}. Start them (see README: `make services` or \
             `docker compose up -d postgres-user redis rabbitmq`).",
            missing.join(", ")
        );
    });
}

/// A unique, short, lowercase name for this test's resources.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// A database of its own, dropped by [`TestDb::drop_database`].
#[derive(Debug, Clone)]
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create(prefix: &str) -> Self {
        require_backing_services();
        let admin = admin_database_url();
        let name = unique_name(&format!("t_{prefix}"));
        let mut conn = PgConnection::connect(&admin).await.expect("connect to the admin database");
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .expect("create the test database");
        Self { url: with_database(&admin, &name), name }
    }

    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.expect("connect to the test database")
    }

    /// Drops the database (closing other sessions first).
    pub async fn drop_database(self) {
        if let Ok(mut conn) = PgConnection::connect(&admin_database_url()).await {
            let _ = conn
                .execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)))
                .await;
        }
    }
}

/// Deletes every exchange and queue of a test namespace (best effort).
pub async fn delete_namespace(namespace: &str, queues: &[String], exchanges: &[String]) {
    let Ok(conn) = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default()).await else {
        return;
    };
    if let Ok(ch) = conn.create_channel().await {
        for q in queues {
            let _ = ch.queue_delete(q.as_str().into(), lapin::options::QueueDeleteOptions::default()).await;
        }
        for e in exchanges {
            let _ = ch.exchange_delete(e.as_str().into(), lapin::options::ExchangeDeleteOptions::default()).await;
        }
    }
    let _ = namespace;
    // lapin can wait forever for a close-ok it lost; cleanup must not hang.
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "test cleanup".into())).await;
}

/// A loopback port nothing listens on: a backing service that is "down".
pub fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A loopback port for a process the test starts, free when asked.
///
/// Chosen at random *below* Linux's ephemeral range (32768 and up), not with
/// `bind(":0")`: a port the kernel hands out from that range can be taken
/// as the local port of any outgoing connection (a Postgres client, say)
/// between this call and the child's `bind`, which made a service fail to
/// start with "address in use" now and then in CI. Below the range only
/// another test picking the same random port can collide.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher as _, Hasher as _};
    for _ in 0..100 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        let port = 20_000 + u16::try_from(hasher.finish() % 12_000).expect("below 12000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000")
}

/// The development key pair in `dev/keys` (private, public) as PEM.
pub fn dev_keys() -> (String, String) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dev/keys");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("dev keys are committed in dev/keys");
    (read("jwt-private.pem"), read("jwt-public.pem"))
}

/// Polls `check` until it yields `Some` or `timeout` passes (then panics
/// with `what`). Eventually consistent things are awaited this way, never
/// with a fixed sleep.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut wait = Duration::from_millis(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(200));
    }
}

/// Polls `check` until `period` passes, and panics with `what` the first
/// time it does not hold: how a test shows that something does *not*
/// happen (a wake-up that must not come), for as long as it would take to
/// happen if it were going to.
pub async fn holds_for<F, Fut>(what: &str, period: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        assert!(check().await, "after {:?}: {what}", started.elapsed());
        let left = period.saturating_sub(started.elapsed());
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(Duration::from_millis(20))).await;
    }
}

/// A TCP proxy on `127.0.0.1:0` in front of a backing service, so a test
/// can cut the network between the code under test and that service (and
/// restore it) without stopping the service, which others share.
///
/// While cut, every proxied connection is closed and new ones are accepted
/// and dropped at once (the client sees its connection reset during the
/// handshake). Connections are bounded; dropping the proxy stops it and
/// closes everything it carries.
#[derive(Debug)]
pub struct TcpProxy {
    addr: std::net::SocketAddr,
    open: tokio::sync::watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

/// Proxied connections at once; more are dropped on arrival.
const PROXY_MAX_CONNECTIONS: usize = 256;

impl TcpProxy {
    /// Starts proxying to `target` (`host:port`), open.
    pub async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let (open, watch) = tokio::sync::watch::channel(true);
        let accept = tokio::spawn(proxy_accept(listener, target.to_owned(), watch));
        Self { addr, open, accept }
    }

    /// Where clients connect instead of the target.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Closes every proxied connection and drops new ones until [`Self::restore`].
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    /// Proxies new connections again.
    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        // The accept task owns the connection tasks: aborting it drops them.
        self.accept.abort();
    }
}

async fn proxy_accept(listener: tokio::net::TcpListener, target: String, open: tokio::sync::watch::Receiver<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            Some(_) = connections.join_next() => continue,
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                if !*open.borrow() || connections.len() >= PROXY_MAX_CONNECTIONS {
                    drop(client);
                    continue;
                }
                connections.spawn(proxy_connection(client, target.clone(), open.clone()));
            }
        }
    }
}

async fn proxy_connection(
    mut client: tokio::net::TcpStream,
    target: String,
    mut open: tokio::sync::watch::Receiver<bool>,
) {
    let connect = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(&target));
    let Ok(Ok(mut upstream)) = connect.await else { return };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        // Dropping both streams closes both sides.
        _ = open.wait_for(|open| !*open) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn with_database_swaps_the_name_and_keeps_parameters() {
        assert_eq!(with_database("postgres://u@h:5432/postgres", "t_1"), "postgres://u@h:5432/t_1");
        assert_eq!(
            with_database("postgres://u@h:5432/postgres?sslmode=disable", "t_1"),
            "postgres://u@h:5432/t_1?sslmode=disable"
        );
    }
}
