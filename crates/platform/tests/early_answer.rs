//! An answer given before the handler reads the body (a `401` from the
//! bearer check, a `503 overloaded` from the in-flight bound) must not cost
//! the connection. hyper closes a connection whose request body is still
//! arriving when the response is done, and a proxy that is still sending
//! that body (the nginx edge, which buffers a large body to a file and then
//! streams it) sees a broken pipe and answers `502` in our place: the
//! client gets `dependency_unavailable` instead of `unauthorized`.
//! Schemathesis found this on the monolith with a 40 KiB order and no
//! token (`scripts/fuzz`).

use std::time::Duration;

use axum::{
    Router,
    body::Body,
    extract::Request,
    http::{HeaderMap, StatusCode},
    middleware::{self, Next},
    routing::{get, post},
};
use http_body_util::BodyExt as _;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};
use twinshop_platform::{
    http::{server, stack},
    shutdown::Shutdown,
};

/// Answers `401` unless a token is sent, without looking at the body, as
/// the `Authenticated` extractor does before `Json` runs.
async fn guarded(headers: HeaderMap) -> StatusCode {
    if headers.contains_key("authorization") { StatusCode::NO_CONTENT } else { StatusCode::UNAUTHORIZED }
}

/// Reads one HTTP/1.1 response head and its `content-length` body; `None`
/// if the connection was closed first.
async fn read_response(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return Some(head);
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn an_early_answer_keeps_the_connection_of_a_body_still_arriving() {
    // Outside the stack, a count of the body bytes the server has read.
    let (read_tx, mut read_rx) = tokio::sync::watch::channel(0usize);
    let count_body = move |req: Request, next: Next| {
        let read_tx = read_tx.clone();
        async move {
            let req = req.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    if let Some(data) = frame.data_ref() {
                        read_tx.send_modify(|n| *n += data.len());
                    }
                    frame
                }))
            });
            next.run(req).await
        }
    };
    let router = stack::apply(
        Router::new().route("/guarded", post(guarded)).route("/ok", get(|| async { "ok" })),
        Duration::from_secs(5),
    )
    .layer(middleware::from_fn(count_body));
    let listener = server::bind(([127, 0, 0, 1], 0).into()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = Shutdown::new();
    let serving = tokio::spawn(server::serve(listener, router, shutdown.clone()));

    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let body = vec![b'x'; 40 * 1024];
    let head = format!(
        "POST /guarded HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    // All but the last byte, as a proxy streaming the body from a file
    // might have sent so far; then wait until the server has either read
    // all of it or answered without it (the bug: hyper then closes the
    // connection with the last byte still to come).
    let (sent, last) = body.split_at(body.len() - 1);
    stream.write_all(sent).await.expect("the body so far");
    let waited = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::select! {
            read = read_rx.wait_for(|n| *n >= sent.len()) => { read.expect("the server is running"); }
            readable = stream.readable() => readable.expect("the connection"),
        }
    })
    .await;
    assert!(waited.is_ok(), "within 5 s the server neither read the body sent so far nor answered");
    stream.write_all(last).await.expect("the server took the whole body");
    let first = read_response(&mut stream).await.expect("an answer to the POST");
    assert!(first.starts_with("http/1.1 401"), "{first}");
    assert!(!first.contains("connection: close"), "{first}");

    // The same connection serves the next request.
    stream.write_all(b"GET /ok HTTP/1.1\r\nhost: test\r\n\r\n").await.expect("the connection is still open");
    let second = read_response(&mut stream).await.expect("the connection was kept for a second request");
    assert!(second.starts_with("http/1.1 200"), "{second}");

    shutdown.trigger();
    serving.await.expect("join").expect("served");
}
