//! The network front: accept TCP, terminate TLS, serve HTTP/1.1 and HTTP/2.
//!
//! The protocol follows the ALPN the client negotiated (`h2`, else HTTP/1.1).
//! Timeouts guard against clients that hold resources without making progress: a
//! TLS handshake must finish within its timeout, the first bytes of a connection and
//! every request's headers (and with them idle keep-alive connections) within theirs. Request bodies have no overall
//! deadline, so a slow multi-GiB upload that keeps sending is never cut; the
//! registry abandons a body only after it stays silent (see
//! [`crate::registry::headers::body_stream`]).

use axum::Router;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed to send request headers (and idle time of keep-alive connections).
    pub header_read_timeout: Duration,
    /// Time in-flight requests get to finish at shutdown.
    pub shutdown_grace: Duration,
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
}

/// Serve `app` over TLS on `listener` until `shutdown` resolves, then drain.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout)
        .keep_alive(true);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        // Flow-control windows bound what one client can make us buffer.
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(2 << 20)
        .max_frame_size(256 << 10)
        .max_concurrent_streams(100)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let builders = Arc::new((h1, h2));
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        // Memory stays bounded however many clients come: wait for a free slot first.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builders = builders.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        let opts = opts.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(opts.handshake_timeout, acceptor.accept(tcp)).await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let is_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
            // A connection must start talking within the header timeout; the buffered
            // first bytes are then read by the HTTP codec as usual.
            let mut io = BufReader::with_capacity(4096, tls);
            match tokio::time::timeout(opts.header_read_timeout, io.fill_buf()).await {
                Ok(Ok(first)) if !first.is_empty() => {}
                Ok(_) => return,
                Err(_) => {
                    tracing::debug!(%peer, "no request within the header timeout");
                    return;
                }
            }
            let io = TokioIo::new(io);
            let service = TowerToHyperService::new(app);
            let result = if is_h2 {
                watcher
                    .watch(builders.1.serve_connection(io, service))
                    .await
            } else {
                watcher
                    .watch(builders.0.serve_connection(io, service))
                    .await
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(opts.shutdown_grace) => {
            tracing::warn!("shutdown grace period over; closing remaining connections");
        }
    }
    Ok(())
}
