//! Serving a router: our own accept loop with hyper's HTTP/1 server (a header read
//! timeout counted from connection start, a shutdown grace), and the shutdown signal.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

/// Connection-level limits of [`serve_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// Longest a client may take to send a request's headers (10 s), counted from when
    /// the connection opens or the previous response went out; then the connection is
    /// closed. Without it, a client that sends one byte a minute, or nothing at all,
    /// holds a connection and a task forever. It also closes keep-alive connections
    /// idle that long (the agent's client drops idle connections sooner). Slow bodies
    /// are bounded by `HttpConfig::request_timeout`.
    pub header_read_timeout: Duration,
    /// After shutdown is asked for, how long requests in flight may take to finish
    /// before their connections are dropped (30 s).
    pub shutdown_grace: Duration,
    /// Connections open at once (4096). At the bound, new connections wait in the
    /// listen queue instead of being accepted: the process never runs out of file
    /// descriptors (which would also refuse agents' heartbeats), and an idle flood is
    /// cut by the header read timeout.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            max_connections: 4096,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes the requests in
/// flight; [`ServeOptions::default`] limits.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, &ServeOptions::default(), shutdown).await
}

/// [`serve`] with explicit connection limits: HTTP/1.1 (with keep-alive) on our own
/// accept loop, because axum's `serve` arms no timer and so cannot time out a client
/// that never sends its headers. Each request carries the peer's address as
/// `ConnectInfo<SocketAddr>` (failed-authentication limits are per address).
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    options: &ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};

    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A free slot first, then a connection: at the bound nothing more is accepted.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) if is_connection_error(&err) => continue,
                Err(err) => {
                    // Out of file descriptors and the like: wait instead of spinning
                    // (still listening for shutdown); the listener stays usable.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let service = tower::ServiceExt::map_request(
            router.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request.map(axum::body::Body::new)
            },
        );
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(service),
        );
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(options.shutdown_grace, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after the shutdown grace period were cut off");
    }
    Ok(())
}

/// Errors of one incoming connection (it went away before we took it), not of the
/// listener.
fn is_connection_error(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
