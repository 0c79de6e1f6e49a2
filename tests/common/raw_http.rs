//! A raw HTTP/1.1-over-TLS client for tests that need exact control of the bytes on the
//! wire: unnormalised paths (`..`, `%2e%2e`, `//`, `%00`), bodies shorter than their
//! `Content-Length`, stalled headers or bodies, and chosen TLS versions and ALPN.
//!
//! reqwest (through the `url` crate) normalises `..` and `%2e%2e` away and never sends a
//! body that disagrees with its length, so those cases go through [`RawConn`].

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::tls::HttpResponse;

/// A rustls client configuration trusting only the CA in `ca_pem`, limited to
/// `versions` (empty: TLS 1.2 and 1.3) and offering `alpn` (empty: no ALPN extension).
pub fn client_config(
    ca_pem: &Path,
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let pem = std::fs::read(ca_pem)
        .unwrap_or_else(|e| panic!("reading CA certificate {}: {e}", ca_pem.display()));
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.unwrap_or_else(|e| panic!("parsing {}: {e}", ca_pem.display()));
        roots
            .add(cert)
            .expect("adding CA certificate to the root store");
    }
    let versions = if versions.is_empty() {
        rustls::ALL_VERSIONS
    } else {
        versions
    };
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .expect("protocol versions supported by the ring provider")
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// One TLS connection speaking HTTP/1.1 by hand.
pub struct RawConn {
    tls: TlsStream<TcpStream>,
    /// Bytes read but not consumed yet.
    buf: Vec<u8>,
    host: String,
}

impl RawConn {
    /// Connects to `addr` trusting `ca_pem`, offering ALPN `http/1.1`; panics on failure.
    pub async fn connect(addr: SocketAddr, ca_pem: &Path) -> RawConn {
        let config = client_config(ca_pem, &[], &[b"http/1.1"]);
        RawConn::connect_with(addr, config)
            .await
            .unwrap_or_else(|e| panic!("TLS connection to {addr} failed: {e}"))
    }

    /// Connects to `addr` with a given rustls configuration; `Err` when TCP or the TLS
    /// handshake fails.
    pub async fn connect_with(addr: SocketAddr, config: Arc<ClientConfig>) -> io::Result<RawConn> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::IpAddress(addr.ip().into());
        let tls = tokio::time::timeout(
            Duration::from_secs(10),
            TlsConnector::from(config).connect(name, tcp),
        )
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        Ok(RawConn {
            tls,
            buf: Vec::new(),
            host: addr.to_string(),
        })
    }

    /// The ALPN protocol the server selected.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
    }

    /// The negotiated TLS version.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.tls.get_ref().1.protocol_version()
    }

    /// Writes `bytes` and flushes them onto the wire.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.tls.write_all(bytes).await?;
        self.tls.flush().await
    }

    /// Writes a request line and headers (`Host` is added), ending the header block.
    pub async fn send_head(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> io::Result<()> {
        let head = request_head(method, path, &self.host, headers);
        self.send(head.as_bytes()).await
    }

    /// Sends a whole request with `body` (a `Content-Length` is added unless `headers`
    /// carry one or a `Transfer-Encoding`) and reads the response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<HttpResponse> {
        let has_len = headers.iter().any(|(k, _)| {
            k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
        });
        let len = body.len().to_string();
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if !has_len && (!body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH")) {
            all.push(("Content-Length", &len));
        }
        self.send_head(method, path, &all).await?;
        // The server may answer early and close; the response is what matters.
        let sent = self.send(body).await;
        match self
            .read_response(method == "HEAD", Duration::from_secs(30))
            .await
        {
            Ok(resp) => Ok(resp),
            Err(e) => Err(sent.err().unwrap_or(e)),
        }
    }

    /// Reads one response (skipping `1xx` interim responses). `head_only` means the
    /// response has no body whatever its headers say.
    pub async fn read_response(
        &mut self,
        head_only: bool,
        timeout: Duration,
    ) -> io::Result<HttpResponse> {
        tokio::time::timeout(timeout, self.read_response_inner(head_only))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no response in time"))?
    }

    async fn read_response_inner(&mut self, head_only: bool) -> io::Result<HttpResponse> {
        loop {
            let end = loop {
                if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                    break pos;
                }
                self.fill().await?;
            };
            let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            self.buf.drain(..end + 4);
            let (status, headers) = parse_head(&head)?;
            if (100..200).contains(&status) {
                continue;
            }
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let body = if head_only || status == 204 || status == 304 {
                Vec::new()
            } else if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
                self.read_chunked().await?
            } else if let Some(len) = header("content-length") {
                let len: usize = len.trim().parse().map_err(|_| bad("bad Content-Length"))?;
                self.read_exact_body(len).await?
            } else {
                self.read_to_end().await?
            };
            return Ok(HttpResponse {
                status,
                headers,
                body,
            });
        }
    }

    /// Reads the next response head, interim (`1xx`) ones included, and returns its
    /// status; the rest of that response stays unread.
    pub async fn read_status(&mut self, timeout: Duration) -> io::Result<u16> {
        tokio::time::timeout(timeout, async {
            let end = loop {
                if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                    break pos;
                }
                self.fill().await?;
            };
            let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            self.buf.drain(..end + 4);
            parse_head(&head).map(|(status, _)| status)
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no response in time"))?
    }

    /// Reads more bytes into the buffer; `UnexpectedEof` when the peer closed.
    async fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.tls.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn read_exact_body(&mut self, len: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < len {
            self.fill().await?;
        }
        Ok(self.buf.drain(..len).collect())
    }

    async fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        loop {
            match self.fill().await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e),
            }
        }
        Ok(std::mem::take(&mut self.buf))
    }

    async fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(pos) = find(&self.buf, b"\r\n") {
                    break pos;
                }
                self.fill().await?;
            };
            let line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            self.buf.drain(..line_end + 2);
            let size_hex = line.split(';').next().unwrap_or("").trim();
            let size =
                usize::from_str_radix(size_hex, 16).map_err(|_| bad("bad chunk size line"))?;
            if size == 0 {
                // Trailers (none expected) end with an empty line.
                loop {
                    if let Some(pos) = find(&self.buf, b"\r\n") {
                        let empty = pos == 0;
                        self.buf.drain(..pos + 2);
                        if empty {
                            return Ok(body);
                        }
                    } else {
                        self.fill().await?;
                    }
                }
            }
            let data = self.read_exact_body(size + 2).await?;
            body.extend_from_slice(&data[..size]);
        }
    }

    /// Sends a TLS close_notify and shuts the write side down (a clean client close).
    pub async fn close_notify(mut self) {
        let _ = self.tls.shutdown().await;
    }

    /// Reads and discards until the server closes the connection (EOF or error).
    /// Returns how long that took, or `None` when it stayed open for `timeout`.
    pub async fn wait_closed(&mut self, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.tls.read(&mut chunk)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Bytes received but not consumed as a response (e.g. what arrived before a close).
    pub fn unread(&self) -> &[u8] {
        &self.buf
    }
}

/// Formats a request line and header block (with `Host`), ending with the empty line.
pub fn request_head(method: &str, path: &str, host: &str, headers: &[(&str, &str)]) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// One request on a fresh connection.
pub async fn raw_request(
    addr: SocketAddr,
    ca_pem: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut conn = RawConn::connect(addr, ca_pem).await;
    conn.request(method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("raw {method} {path}: {e}"))
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(head: &str) -> io::Result<(u16, reqwest::header::HeaderMap)> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(bad(&format!("not an HTTP/1 status line: {status_line:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(&format!("bad status line {status_line:?}")))?;
    let mut headers = reqwest::header::HeaderMap::new();
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| bad(&format!("bad header line {line:?}")))?;
        let name = reqwest::header::HeaderName::from_bytes(k.trim().as_bytes())
            .map_err(|_| bad("bad header name"))?;
        let value = reqwest::header::HeaderValue::from_str(v.trim())
            .map_err(|_| bad("bad header value"))?;
        headers.append(name, value);
    }
    Ok((status, headers))
}
