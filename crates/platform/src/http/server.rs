//! Binding and serving, with graceful shutdown.

use std::{io, net::SocketAddr};

use axum::{Router, serve::ListenerExt};
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;

/// Binds `addr` (port 0 picks a free port; read it back with `local_addr`).
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `router` until shutdown begins, then stops accepting and lets
/// in-flight requests finish. The caller bounds the wait with
/// [`Shutdown::drain`]. `TCP_NODELAY` is set on every connection: small
/// JSON responses must not wait for Nagle.
pub async fn serve(listener: TcpListener, router: Router, shutdown: Shutdown) -> io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// [`serve`], logging a failure instead of returning it: for tasks spawned
/// on the shutdown tracker.
pub async fn serve_logged(what: &'static str, listener: TcpListener, router: Router, shutdown: Shutdown) {
    if let Err(err) = serve(listener, router, shutdown).await {
        tracing::error!(server = what, error = %err, "server failed");
    }
}
