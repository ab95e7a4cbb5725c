//! The client against servers that close keep-alive connections under it:
//! a request a *reused* connection lost before any answer byte is sent once
//! more on a new connection when that is safe (`GET`, or a keyed request),
//! and counted; nothing else is.
//!
//! The server is a few lines of HTTP/1.1 over a TCP listener, so each test
//! decides exactly when a connection dies: closing one with a request
//! unread in it is what an nginx worker does to its idle keep-alive
//! connections on a reload, at the instant a request was written.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};
use twinshop_client::{Client, TransportError};

/// What the server does with the requests of each connection.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Answers a connection's first request; when its second arrives, closes
    /// the connection with the request unread (the reload race).
    CloseWhenReused,
    /// Closes every connection as soon as its first request arrives.
    CloseAtOnce,
    /// Answers the first request; sends part of a status line for the second, then closes.
    HalfAnswerWhenReused,
    /// Answers every request; closes a connection idle this long.
    IdleTimeout(Duration),
    /// Answers every request and closes the connection right after, without
    /// saying so (`Connection: close` is never sent).
    CloseAfterEachAnswer,
}

/// The test server: its address, how many connections it accepted and the
/// request lines it received (answered or not).
struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, behaviour, seen.clone()));
            }
        });
        Self { addr, connections, requests }
    }

    fn client(&self) -> Client {
        Client::builder().timeout(Duration::from_secs(5)).build(&format!("http://{}", self.addr)).expect("client")
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";

async fn serve(mut stream: TcpStream, behaviour: Behaviour, seen: Arc<Mutex<Vec<String>>>) {
    for n in 1.. {
        if let Behaviour::IdleTimeout(idle) = behaviour
            && tokio::time::timeout(idle, arrived(&stream)).await.is_err()
        {
            return; // nothing unread: a plain close (FIN)
        }
        let reused = n > 1;
        match behaviour {
            Behaviour::CloseWhenReused if reused => {
                // The request is in the socket, unread: closing now resets it.
                arrived(&stream).await;
                seen.lock().unwrap_or_else(PoisonError::into_inner).push("(closed unread)".into());
                return;
            }
            Behaviour::CloseAtOnce => {
                let Some(line) = read_request(&mut stream).await else { return };
                seen.lock().unwrap_or_else(PoisonError::into_inner).push(line);
                return;
            }
            _ => {}
        }
        let Some(line) = read_request(&mut stream).await else { return };
        seen.lock().unwrap_or_else(PoisonError::into_inner).push(line);
        if matches!(behaviour, Behaviour::HalfAnswerWhenReused) && reused {
            let _ = stream.write_all(b"HTTP/1.1 2").await;
            return;
        }
        if stream.write_all(ANSWER).await.is_err() {
            return;
        }
        if matches!(behaviour, Behaviour::CloseAfterEachAnswer) {
            return;
        }
    }
}

/// Waits until bytes of a request are in the socket (or it was closed),
/// reading none of them.
async fn arrived(stream: &TcpStream) {
    let mut byte = [0_u8; 1];
    let _ = stream.peek(&mut byte).await;
}

/// Reads one request (head and `content-length` body); its request line.
async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0_u8; length];
    stream.read_exact(&mut body).await.ok()?;
    head.lines().next().map(str::to_owned)
}

#[tokio::test]
async fn a_get_a_reused_connection_lost_unread_is_resent_once_on_a_new_connection() {
    let server = Server::start(Behaviour::CloseWhenReused).await;
    let client = server.client();
    assert_eq!(client.get("/first").send().await.expect("first").status(), 200);
    let again = client.get("/second").send().await.expect("the second GET succeeds at its second attempt");
    assert_eq!(again.status(), 200);
    assert_eq!(client.resends(), 1);
    assert_eq!(server.connections(), 2, "the resend went over a new connection");
    assert_eq!(server.requests(), ["GET /first HTTP/1.1", "(closed unread)", "GET /second HTTP/1.1"]);
    assert_eq!(client.clone().resends(), 1, "clones share the count");
}

#[tokio::test]
async fn a_post_is_resent_only_with_an_idempotency_key() {
    let server = Server::start(Behaviour::CloseWhenReused).await;
    let client = server.client();
    assert_eq!(client.get("/warm").send().await.expect("warm").status(), 200);
    let lost = client.post("/v1/orders").json(&[1]).send().await.expect_err("no answer, not resent");
    assert_eq!(lost.kind, TransportError::Io);
    assert_eq!(client.resends(), 0);

    assert_eq!(client.get("/warm").send().await.expect("warm").status(), 200);
    let keyed = client.post("/v1/orders").idempotency_key(Some("k-1")).json(&[1]).send().await;
    assert_eq!(keyed.expect("a keyed POST is resent").status(), 200);
    assert_eq!(client.resends(), 1);
    assert_eq!(server.requests().iter().filter(|r| r.starts_with("POST")).count(), 1, "{:?}", server.requests());
}

#[tokio::test]
async fn a_request_lost_on_a_fresh_connection_is_not_resent() {
    let server = Server::start(Behaviour::CloseAtOnce).await;
    let client = server.client();
    let lost = client.get("/x").send().await.expect_err("the server closed it");
    assert_eq!(lost.kind, TransportError::Io);
    assert_eq!((client.resends(), server.connections()), (0, 1));
}

#[tokio::test]
async fn a_request_that_got_part_of_an_answer_is_not_resent() {
    let server = Server::start(Behaviour::HalfAnswerWhenReused).await;
    let client = server.client();
    assert_eq!(client.get("/first").send().await.expect("first").status(), 200);
    let cut = client.get("/second").send().await.expect_err("half an answer");
    assert_eq!(cut.kind, TransportError::Io);
    assert_eq!((client.resends(), server.connections()), (0, 1));
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_simply_not_used_again() {
    let server = Server::start(Behaviour::IdleTimeout(Duration::from_millis(50))).await;
    let client = server.client();
    assert_eq!(client.get("/first").send().await.expect("first").status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(client.get("/second").send().await.expect("second").status(), 200);
    assert_eq!((client.resends(), server.connections()), (0, 2), "a new connection, no resend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gets_never_fail_against_a_server_that_closes_every_connection_after_answering() {
    // Each next request races the server's close: it finds the connection
    // closed before writing, or is written into a dying one. Either way a
    // GET gets its answer, at the second attempt at worst.
    let server = Server::start(Behaviour::CloseAfterEachAnswer).await;
    let client = server.client();
    for n in 0..100 {
        let res = client.get(format!("/n{n}")).send().await;
        assert_eq!(res.map(|r| r.status().as_u16()).map_err(|e| e.to_string()), Ok(200), "request {n}");
    }
    let resends = client.resends();
    assert!(resends <= 100, "at most one resend per request: {resends}");
    eprintln!("100 GETs against a server closing after each answer: {resends} resent");
}
