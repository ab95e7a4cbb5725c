//! A TCP proxy that adds latency to a link: a lab instrument, since this
//! kernel has no `netem` queueing discipline to slow a link with `tc`.
//!
//! It listens on 127.0.0.1 and forwards every connection to a target; each
//! chunk read from either side is written to the other `delay` later
//! (chunks keep their order), so a request/response exchange takes one
//! extra `delay` each way, like a long cable. The delay can be changed at
//! any time and applies to connections already open. Nothing else is
//! changed: no bytes are dropped or reordered.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context as _, Result};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream, tcp::OwnedReadHalf, tcp::OwnedWriteHalf},
    sync::{mpsc, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

/// A running proxy; dropping it stops it and closes its connections.
#[derive(Debug)]
pub struct DelayProxy {
    addr: SocketAddr,
    delay: watch::Sender<Duration>,
    target: watch::Sender<Option<SocketAddr>>,
    stop: CancellationToken,
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl DelayProxy {
    /// Listens on `127.0.0.1:port` (0: any) and forwards to `target`
    /// (`None`: set later with [`DelayProxy::set_target`]; until then
    /// connections are closed at once).
    pub async fn start(port: u16, target: Option<SocketAddr>) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.context("binding the proxy")?;
        let addr = listener.local_addr()?;
        let (delay, delays) = watch::channel(Duration::ZERO);
        let (target, targets) = watch::channel(target);
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = token.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                let Ok((client, _)) = accepted else { continue };
                let (delays, token) = (delays.clone(), token.clone());
                let Some(target) = *targets.borrow() else { continue };
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else { return };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let up = pipe(cr, sw, delays.clone());
                    let down = pipe(sr, cw, delays);
                    tokio::select! {
                        () = token.cancelled() => {}
                        _ = futures_util::future::join(up, down) => {}
                    }
                });
            }
        });
        Ok(Self { addr, delay, target, stop })
    }

    /// Where new connections go from now on.
    pub fn set_target(&self, target: SocketAddr) {
        let _ = self.target.send(Some(target));
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The latency added to each direction from now on.
    pub fn set_delay(&self, delay: Duration) {
        let _ = self.delay.send(delay);
    }
}

/// Copies `from` to `to`, each chunk held until `delay` after it arrived.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delays: watch::Receiver<Duration>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Arc<[u8]>)>();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let due = Instant::now() + *delays.borrow();
                    if tx.send((due, Arc::from(&buf[..n]))).is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    futures_util::future::join(reader, writer).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(addr: SocketAddr, conn: &mut TcpStream) -> Duration {
        let _ = addr;
        let started = Instant::now();
        conn.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"ping", "bytes arrive unchanged");
        started.elapsed()
    }

    #[tokio::test]
    async fn the_delay_is_added_each_way_and_can_change_on_an_open_connection() {
        let proxy = DelayProxy::start(0, Some(echo().await)).await.expect("proxy");
        let mut conn = TcpStream::connect(proxy.addr()).await.expect("connect");
        let fast = round_trip(proxy.addr(), &mut conn).await;
        assert!(fast < Duration::from_millis(250), "no delay: {fast:?}");
        proxy.set_delay(Duration::from_millis(150));
        let slow = round_trip(proxy.addr(), &mut conn).await;
        assert!(slow >= Duration::from_millis(300), "150 ms each way: {slow:?}");
        assert!(slow < Duration::from_millis(600), "{slow:?}");
        proxy.set_delay(Duration::ZERO);
        let back = round_trip(proxy.addr(), &mut conn).await;
        assert!(back < Duration::from_millis(250), "healed: {back:?}");
    }
}
