//! Serving the router on a socket, with the limits a public server needs:
//! a client that sends nothing, or sends slowly, or opens connections by
//! the hundred, cannot hold the server's descriptors or its shutdown.
//!
//! - **Headers** must arrive within [`ConnectionLimits::header_read`],
//!   counted from the moment the server waits for a request, so an idle
//!   keep-alive connection closes after that time too.
//! - **Heads** past hyper's own limits, far above the router's (see
//!   [`crate::head_limits`]), are refused by hyper alone: a bare 431.
//! - **Bodies** must arrive whole within [`ConnectionLimits::body_read`] of
//!   their headers (a 408).
//! - **Connections** beyond [`ConnectionLimits::max_connections`] wait in
//!   the kernel's accept queue until one closes.
//! - **Shutdown** stops accepting, lets requests in flight finish, and
//!   waits at most [`ConnectionLimits::shutdown_grace`] for them.
//!
//! hyper does the HTTP; this module only accepts, counts and shuts down
//! (axum's own `serve` has no header timeout or connection limit).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::head_limits::{HEADER_FIELDS_HARD_LIMIT, HEAD_BYTES_HARD_LIMIT};
use crate::{router, AppState};

/// What a connection may take of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// For a request's headers, from when the server waits for them.
    pub header_read: Duration,
    /// For a request's body, from when its headers arrived.
    pub body_read: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long a shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(10),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// How long a request's whole body may take, from when its headers
/// arrived; the body extractor reads it from the request's extensions. A
/// deadline for the whole body, not a limit on the pause between pieces,
/// so a client sending a byte every few seconds is cut off too.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub Duration);

/// How long accepting pauses after a failed accept that is not the
/// client's doing (out of descriptors, say), instead of spinning.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves the router on `listener` until `shutdown` resolves, recording
/// each connection's peer address (hashed into records for abuse audits).
pub async fn serve(
    listener: TcpListener,
    app: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, ConnectionLimits::default(), shutdown).await
}

/// [`serve`] with chosen limits.
pub async fn serve_with(
    listener: TcpListener,
    app: AppState,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(app);
    let body_deadline = BodyDeadline(limits.body_read);
    // HTTP/1.1 only: what CDNs and API gateways speak to an origin. (The
    // automatic HTTP/2 detection would wait for a first byte with no
    // timeout at all.)
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        // Above the router's own limits, which answer in the envelope; hyper
        // answers these alone, with no body (see `head_limits`).
        .max_header_size(HEAD_BYTES_HARD_LIMIT)
        .max_headers(HEADER_FIELDS_HARD_LIMIT);
    let capacity = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A free place first, then the connection: beyond the limit,
        // clients wait in the accept queue, not on a served connection.
        let permit = tokio::select! {
            permit = capacity.clone().acquire_owned() => {
                permit.expect("the semaphore is never closed")
            }
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(body_deadline);
            app.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(
                grace = ?limits.shutdown_grace,
                "stopped waiting for connections still open"
            );
        }
    }
    Ok(())
}
