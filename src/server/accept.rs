//! Accepting connections: the access policy's address filter, and counting refused
//! connections without flooding the log (each refusal is logged at debug level, and a
//! warning sums them up at most every [`WARN_EVERY`]).

use crate::access::{normalize_ip, Policy};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

/// How often a warning sums up the refused connections of one kind.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// The refusals of one kind (for instance "all slots busy").
pub struct Refusals {
    /// The warning's message.
    summary: &'static str,
    total: u64,
    unreported: u64,
    last_warn: Option<Instant>,
}

impl Refusals {
    /// A counter whose warnings say `summary`.
    pub fn new(summary: &'static str) -> Refusals {
        Refusals {
            summary,
            total: 0,
            unreported: 0,
            last_warn: None,
        }
    }

    /// Count one refusal; warn with the counts when the last warning is old enough.
    pub fn note(&mut self) {
        self.total += 1;
        self.unreported += 1;
        if self.last_warn.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            tracing::warn!(
                refused = self.unreported,
                total = self.total,
                "{}",
                self.summary
            );
            self.unreported = 0;
            self.last_warn = Some(Instant::now());
        }
    }
}

/// The next connection on `listener` from an address `policy` could admit, `None` once
/// `shutdown` resolved (do not call again then). Connections from other addresses are
/// closed at once, before anything is sent, and counted in `denied`. Accept errors (out
/// of file descriptors and the like) are logged and retried after a pause instead of
/// spinning.
pub async fn accept_admitted<F: Future<Output = ()>>(
    listener: &TcpListener,
    policy: &Policy,
    denied: &mut Refusals,
    mut shutdown: Pin<&mut F>,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.as_mut() => return None,
        };
        if policy.admits_address(normalize_ip(peer.ip())) {
            return Some((tcp, peer));
        }
        tracing::debug!(%peer, "connection closed at accept: no access rule admits the address");
        denied.note();
        drop(tcp);
    }
}
