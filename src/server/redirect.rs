//! The optional plain-HTTP listener (`server.http_redirect_listen`): it serves nothing,
//! answering every request with `308 Permanent Redirect` to the same path and query over
//! HTTPS, so that `http://registry/...` typed by a person ends up on the registry. The
//! access policy's address filter applies at accept, as on the HTTPS listener.

use super::accept::{accept_admitted, Refusals};
use crate::access::{normalize_ip, Policy};
use bytes::Bytes;
use http_body_util::Empty;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connections the redirect listener serves at once; more are closed at once.
const MAX_CONNECTIONS: usize = 64;

/// Where redirects point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectTarget {
    /// `server.public_url`: the path and query are appended to it.
    PublicUrl(String),
    /// The HTTPS port: the request's host (from `Host`, else the address it reached).
    Port(u16),
}

impl RedirectTarget {
    /// `public_url` when set (non-empty), else the HTTPS listener's port.
    pub fn new(public_url: Option<&str>, https_port: u16) -> RedirectTarget {
        match public_url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => RedirectTarget::PublicUrl(url.trim_end_matches('/').to_string()),
            None => RedirectTarget::Port(https_port),
        }
    }

    /// The `Location` for a request to `path_and_query` with `Host` header `host`, which
    /// reached local address `local`.
    pub fn location(&self, host: Option<&str>, local: IpAddr, path_and_query: &str) -> String {
        let path = if path_and_query.starts_with('/') {
            path_and_query
        } else {
            "/"
        };
        match self {
            RedirectTarget::PublicUrl(base) => format!("{base}{path}"),
            RedirectTarget::Port(port) => {
                let host = host.and_then(host_name).unwrap_or_else(|| match local {
                    IpAddr::V4(v4) => v4.to_string(),
                    IpAddr::V6(v6) => format!("[{v6}]"),
                });
                if *port == 443 {
                    format!("https://{host}{path}")
                } else {
                    format!("https://{host}:{port}{path}")
                }
            }
        }
    }
}

/// The host of a `Host` header without its port, when it is a plain DNS name, IPv4
/// address or bracketed IPv6 address (anything else is not echoed into a redirect).
fn host_name(header: &str) -> Option<String> {
    let header = header.trim();
    let host = if header.starts_with('[') {
        let end = header.find(']')?;
        let inner = &header[1..end];
        inner.parse::<std::net::Ipv6Addr>().ok()?;
        &header[..=end]
    } else {
        let host = header.split(':').next()?;
        let ok = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
        if host.is_empty() || !host.chars().all(ok) {
            return None;
        }
        host
    };
    Some(host.to_ascii_lowercase())
}

/// Answer every request on `listener` with a redirect to `target` until `shutdown`
/// resolves. Addresses `policy` could never admit are closed at accept; each request
/// must arrive within `header_read_timeout`, and each connection serves one request.
pub async fn serve_redirect(
    listener: TcpListener,
    policy: Arc<Policy>,
    target: RedirectTarget,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let target = Arc::new(target);
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(false);
    let h1 = Arc::new(h1);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut denied = Refusals::new("closing HTTP connections from addresses no access rule admits");
    tokio::pin!(shutdown);
    loop {
        let Some((tcp, peer)) =
            accept_admitted(&listener, &policy, &mut denied, shutdown.as_mut()).await
        else {
            break;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "HTTP connection closed: redirect listener busy");
            continue;
        };
        let local = tcp
            .local_addr()
            .map_or(IpAddr::from([127, 0, 0, 1]), |a| normalize_ip(a.ip()));
        let (h1, target) = (h1.clone(), target.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req: http::Request<_>| {
                let host = req
                    .headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok());
                let pq = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
                let location = target.location(host, local, pq);
                let resp = http::Response::builder()
                    .status(http::StatusCode::PERMANENT_REDIRECT)
                    .header(http::header::LOCATION, location)
                    .body(Empty::<Bytes>::new());
                std::future::ready(resp)
            });
            if let Err(e) = h1.serve_connection(TokioIo::new(tcp), service).await {
                tracing::debug!(%peer, error = %e, "HTTP redirect connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 5));

    #[test]
    fn redirects_to_the_https_port_of_the_requested_host() {
        let t = RedirectTarget::new(None, 5000);
        let at = |host, pq| t.location(host, LOCAL, pq);
        assert_eq!(
            at(Some("reg.example:80"), "/v2/a/b/tags/list?n=1"),
            "https://reg.example:5000/v2/a/b/tags/list?n=1"
        );
        assert_eq!(at(Some("[::1]:8080"), "/"), "https://[::1]:5000/");
        assert_eq!(at(None, "/v2/"), "https://10.0.0.5:5000/v2/");
        assert_eq!(at(Some("evil/x"), "/v2/"), "https://10.0.0.5:5000/v2/");
        assert_eq!(at(Some("[zz]"), "*"), "https://10.0.0.5:5000/");
        let t = RedirectTarget::new(Some(""), 443);
        assert_eq!(
            t.location(Some("R.example"), LOCAL, "/x"),
            "https://r.example/x"
        );
    }

    #[test]
    fn the_public_url_wins() {
        let t = RedirectTarget::new(Some("https://reg.example:5000/"), 7000);
        assert_eq!(
            t.location(Some("other:80"), LOCAL, "/v2/?a=b"),
            "https://reg.example:5000/v2/?a=b"
        );
    }
}
