//! The network front: accept TCP, terminate TLS, serve HTTP/1.1 and HTTP/2.
//!
//! The protocol follows the ALPN the client negotiated (`h2`, else HTTP/1.1).
//! Timeouts guard against clients that hold resources without making progress: a
//! TLS handshake must finish within its timeout, the first bytes of a connection and
//! every request's headers (and with them idle HTTP/1.1 keep-alive connections) within
//! theirs, and an HTTP/2 connection with no request in flight is closed after the idle
//! timeout even when it answers PINGs. Request bodies have no overall deadline, so a
//! slow multi-GiB upload that keeps sending is never cut; the registry abandons a body
//! only after it stays silent or falls below the minimum rate (see
//! [`crate::registry::headers::body_stream`]).
//!
//! Memory is bounded by configuration whatever clients do: at most `max_connections`
//! connections are served (further clients are accepted and closed at once, rather
//! than left waiting in the listen backlog), and request headers are limited to
//! `max_header_bytes` (HTTP/1.1 answers `431`; on HTTP/2 the limit is announced as
//! `SETTINGS_MAX_HEADER_LIST_SIZE` and a larger header block gets a `431` response
//! after which the stream is reset, without reaching the registry).
//!
//! Access starts here: a client whose address no access rule could ever admit is closed
//! at accept, before any TLS byte is sent. Every request carries the client's address
//! ([`ClientAddr`]) and, when the client presented a certificate `[tls] client_ca` signed,
//! its Common Name ([`CertIdentity`]); the registry decides the rest. Each connection
//! takes the TLS configuration current when it was accepted ([`LiveTls`]), so
//! certificate reloads reach new connections only. HTTPS responses carry
//! `Strict-Transport-Security` when configured; [`serve_redirect`] is the optional
//! plain-HTTP listener that only redirects to HTTPS.

mod accept;
mod activity;
mod read_cap;
mod redirect;

pub use redirect::{serve_redirect, RedirectTarget};

use crate::access::{CertIdentity, Policy};
use crate::registry::ClientAddr;
use crate::tls::LiveTls;
use accept::{accept_admitted, Refusals};
use activity::Activity;
use axum::Router;
use http::HeaderValue;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use read_cap::ReadCap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed to send request headers (and idle time of HTTP/1.1 keep-alive
    /// connections).
    pub header_read_timeout: Duration,
    /// Time in-flight requests get to finish at shutdown.
    pub shutdown_grace: Duration,
    /// Connections served at once; further clients are accepted and closed at once.
    pub max_connections: usize,
    /// Largest request header block (request line or pseudo-headers included), in bytes.
    pub max_header_bytes: usize,
    /// An HTTP/2 connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// The access policy: connections from addresses it could never admit are closed at
    /// accept, before TLS.
    pub policy: Arc<Policy>,
    /// `max-age` of the `Strict-Transport-Security` header on every response, in
    /// seconds; 0: no header.
    pub hsts_max_age_secs: u64,
}

/// Largest HTTP/1.1 read (and write-coalescing) buffer of a connection, unless the header
/// limit needs more. hyper's default (~400 KiB) lets each uploading connection keep a
/// buffer that large; TLS records are at most 16 KiB, so 64 KiB costs no throughput.
const H1_MAX_BUF: usize = 64 << 10;

/// What the service of one connection adds to each request and response.
#[derive(Clone)]
struct ConnInfo {
    client: ClientAddr,
    /// The verified client certificate's Common Name.
    cert: Option<CertIdentity>,
    /// The `Strict-Transport-Security` value.
    hsts: Option<HeaderValue>,
}

/// Serve `app` over TLS on `listener` until `shutdown` resolves, then drain. Each new
/// connection uses the configuration `tls` holds when it is accepted.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<LiveTls>,
    app: Router,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let hsts = (opts.hsts_max_age_secs > 0)
        .then(|| HeaderValue::from_str(&format!("max-age={}", opts.hsts_max_age_secs)))
        .and_then(Result::ok);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout)
        .max_header_size(opts.max_header_bytes)
        .max_buf_size(opts.max_header_bytes.max(H1_MAX_BUF))
        .keep_alive(true);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        // Flow-control windows bound what a client can make us buffer unasked (an upload
        // waiting for a slot holds its window): 64 KiB per stream, 128 KiB per connection,
        // ~400 MB/s per connection at a LAN's 0.3 ms round trip.
        .initial_stream_window_size(64 << 10)
        .initial_connection_window_size(128 << 10)
        .max_concurrent_streams(100)
        .max_header_list_size(u32::try_from(opts.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let builders = Arc::new((h1, h2));
    let max = opts.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let mut busy = Refusals::new("refusing connections: server.max_connections reached");
    let mut denied = Refusals::new("closing connections from addresses no access rule admits");
    tokio::pin!(shutdown);
    loop {
        // Nothing, not even a TLS handshake, for an address that can never be admitted.
        let policy = &opts.policy;
        let Some((tcp, peer)) =
            accept_admitted(&listener, policy, &mut denied, shutdown.as_mut()).await
        else {
            break;
        };
        // Memory stays bounded however many clients come; a client past the limit is
        // told at once (its connection closes) instead of hanging in the backlog.
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, max_connections = max, "connection refused: all slots busy");
            busy.note();
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = TlsAcceptor::from(tls.current());
        let hsts = hsts.clone();
        let builders = builders.clone();
        let app = app.clone();
        let stop = stop_rx.clone();
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
            let session = tls.get_ref().1;
            let is_h2 = session.alpn_protocol() == Some(b"h2".as_slice());
            let cert = crate::tls::cert_identity(session.peer_certificates());
            if let Some(CertIdentity(name)) = &cert {
                tracing::debug!(%peer, client_cert = %name, "client certificate verified");
            }
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
            let io = TokioIo::new(ReadCap::new(io));
            let info = ConnInfo {
                client: ClientAddr::new(peer),
                cert,
                hsts,
            };
            let result = if is_h2 {
                let activity = Arc::new(Activity::default());
                let service = service(app, info, Some(activity.clone()));
                let conn = builders.1.serve_connection(io, service);
                let idle = async move {
                    activity.idle_for(opts.idle_timeout).await;
                    tracing::debug!(%peer, "closing an idle HTTP/2 connection");
                };
                drive(conn, http2::Connection::graceful_shutdown, idle, stop).await
            } else {
                // HTTP/1.1 idle keep-alive is bounded by the header read timeout.
                let service = service(app, info, None);
                let conn = builders.0.serve_connection(io, service);
                let never = std::future::pending::<()>();
                drive(conn, http1::Connection::graceful_shutdown, never, stop).await
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot: all slots free means all connections closed.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    tokio::select! {
        _ = slots.acquire_many(all) => tracing::info!("all connections closed"),
        () = tokio::time::sleep(opts.shutdown_grace) => {
            tracing::warn!("shutdown grace period over; closing remaining connections");
        }
    }
    Ok(())
}

/// The per-connection service: the registry, with the client's address (and certificate
/// identity) in every request's extensions, HSTS on every response and, on HTTP/2, every
/// request counted in `activity`.
fn service(
    app: Router,
    info: ConnInfo,
    activity: Option<Arc<Activity>>,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(info.client);
        if let Some(cert) = &info.cert {
            req.extensions_mut().insert(cert.clone());
        }
        let in_flight = activity.as_ref().map(Activity::begin);
        let app = app.clone();
        let hsts = info.hsts.clone();
        async move {
            let mut resp = app.oneshot(req).await?;
            if let Some(hsts) = hsts {
                resp.headers_mut()
                    .insert(http::header::STRICT_TRANSPORT_SECURITY, hsts);
            }
            Ok(match in_flight {
                Some(guard) => resp.map(|body| activity::track(body, guard)),
                None => resp,
            })
        }
    })
}

/// Run connection `conn` to its end; start its graceful shutdown (finish what is in
/// flight, take nothing new) when `idle` resolves or the server stops.
async fn drive<C, E>(
    conn: C,
    graceful_shutdown: fn(Pin<&mut C>),
    idle: impl Future<Output = ()>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), E>
where
    C: Future<Output = Result<(), E>>,
{
    tokio::pin!(conn);
    tokio::pin!(idle);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => return result,
            _ = stop.wait_for(|stopped| *stopped), if !closing => {
                graceful_shutdown(conn.as_mut());
                closing = true;
            }
            () = &mut idle, if !closing => {
                graceful_shutdown(conn.as_mut());
                closing = true;
            }
        }
    }
}
