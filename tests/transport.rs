//! TLS and HTTP behaviour of `imgflow serve`: protocol versions, ALPN, the API version
//! header on every status, timeouts (slow but live uploads are never cut; stalled
//! headers, bodies and silent connections are), and Location headers.
//!
//! Timeouts are shortened through the `--config FILE` mechanism (a TOML file merged
//! over the embedded default).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;

use common::oci_api::{assert_api_version, content_range, range_offset, Api};
use common::process::no_proxy_env;
use common::raw_http::{client_config, RawConn};
use common::tls::HttpResponse;
use common::{free_port, pseudo_random_bytes, require_tool, sha256_digest, Server};

const REPO: &str = "transport/test";
/// Header and body timeouts configured for the timeout tests.
const HEADER_TIMEOUT: u64 = 2;
const BODY_IDLE_TIMEOUT: u64 = 3;
const HANDSHAKE_TIMEOUT: u64 = 2;

/// A server with short timeouts from a `--config` file, and the directory holding it.
fn short_timeout_server() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("registry.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nheader_read_timeout_secs = {HEADER_TIMEOUT}\n\
             body_idle_timeout_secs = {BODY_IDLE_TIMEOUT}\n\
             tls_handshake_timeout_secs = {HANDSHAKE_TIMEOUT}\n"
        ),
    )
    .expect("writing config");
    let server = Server::builder().arg("--config").arg(&config).start();
    (server, dir)
}

/// Runs `openssl s_client` against `port` with extra `args`; stdin is empty, so it
/// closes right after the handshake.
fn s_client(port: u16, ca: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(require_tool("openssl"));
    cmd.arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", "localhost", "-CAfile"])
        .arg(ca)
        .arg("-verify_return_error")
        .args(args)
        .stdin(Stdio::null());
    no_proxy_env(&mut cmd);
    cmd.output().expect("running openssl s_client")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Kills the child process it holds when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Old protocol versions need OpenSSL's security level 0 on current distributions.
const LEGACY: &[&str] = &["-cipher", "DEFAULT@SECLEVEL=0"];

#[test]
fn tls_1_3_and_1_2_negotiate_older_versions_are_refused() {
    let server = Server::start();
    let port = server.addr().port();
    let ca = server.ca_path();
    for (flag, version) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let out = s_client(port, &ca, &["-brief", flag]);
        let t = text(&out);
        assert!(out.status.success(), "openssl s_client {flag} failed:\n{t}");
        assert!(
            t.contains(&format!("Protocol version: {version}")) && t.contains("Verification: OK"),
            "openssl s_client {flag} did not negotiate {version} with a verified certificate:\n{t}"
        );
    }

    // Control: this openssl can speak TLS 1.1 and 1.0 (against its own s_server), so a
    // refusal below comes from imgflow.
    let control_port = free_port(std::net::Ipv4Addr::LOCALHOST);
    let certs = server.certs_dir();
    let mut cmd = Command::new(require_tool("openssl"));
    cmd.arg("s_server")
        .arg("-accept")
        .arg(format!("127.0.0.1:{control_port}"))
        .arg("-cert")
        .arg(certs.join("server.crt"))
        .arg("-key")
        .arg(certs.join("server.key"))
        .args(LEGACY)
        .arg("-quiet")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _control = ChildGuard(cmd.spawn().expect("starting openssl s_server"));
    for flag in ["-tls1_1", "-tls1"] {
        let mut args = vec!["-brief", flag];
        args.extend_from_slice(LEGACY);
        let mut last = String::new();
        let ok = (0..50).any(|_| {
            let out = s_client(control_port, &ca, &args);
            last = text(&out);
            if out.status.success() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
            false
        });
        assert!(
            ok,
            "control: openssl s_client {flag} cannot reach openssl s_server {flag}; the \
             refusal test would prove nothing:\n{last}"
        );

        let out = s_client(port, &ca, &args);
        let t = text(&out);
        assert!(
            !out.status.success() && !t.contains("Protocol version: TLSv1"),
            "imgflow accepted {flag}:\n{t}"
        );
        assert!(t.contains("alert"), "expected a TLS alert for {flag}:\n{t}");
    }

    // The same with rustls clients limited to one version.
    let addr = server.addr();
    common::blocking(async move {
        for (version, expect) in [
            (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
            (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        ] {
            let config = client_config(&ca, &[version], &[b"http/1.1"]);
            let mut conn = RawConn::connect_with(addr, config)
                .await
                .unwrap_or_else(|e| panic!("rustls {expect:?}: {e}"));
            assert_eq!(conn.protocol_version(), Some(expect));
            let r = conn
                .request("GET", "/v2/", &[], b"")
                .await
                .expect("GET /v2/");
            assert_eq!(r.status, 200, "GET /v2/ over {expect:?}");
        }
    });
}

/// `curl --cacert` with `proto` (`--http2` or `--http1.1`): returns the HTTP version
/// curl used and the status code.
fn curl_version(url: &str, ca: &Path, proto: &str) -> (String, String) {
    let mut cmd = Command::new(require_tool("curl"));
    cmd.args(["-sS", "--noproxy", "*", "--cacert"])
        .arg(ca)
        .arg(proto)
        .args(["-o", "/dev/null", "-w", "%{http_version} %{http_code}"])
        .arg(url);
    no_proxy_env(&mut cmd);
    let out = cmd.output().expect("running curl");
    assert!(out.status.success(), "curl {proto} {url}: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (v, code) = stdout.split_once(' ').expect("curl -w output");
    (v.to_string(), code.to_string())
}

#[test]
fn alpn_h2_and_http_1_1_both_work() {
    let server = Server::start();
    let ca = server.ca_path();
    let url = format!("{}/v2/", server.url());
    assert_eq!(
        curl_version(&url, &ca, "--http2"),
        ("2".into(), "200".into())
    );
    assert_eq!(
        curl_version(&url, &ca, "--http1.1"),
        ("1.1".into(), "200".into())
    );

    for (alpn, proto) in [("h2", "h2"), ("http/1.1", "http/1.1")] {
        let out = s_client(server.addr().port(), &ca, &["-alpn", alpn]);
        let t = text(&out);
        assert!(
            t.contains(&format!("ALPN protocol: {proto}")),
            "openssl -alpn {alpn}: server did not select {proto}:\n{t}"
        );
    }

    let addr = server.addr();
    common::blocking(async move {
        // Offered both, the server prefers h2; without ALPN, HTTP/1.1 still works.
        let both = client_config(&ca, &[], &[b"h2", b"http/1.1"]);
        let conn = RawConn::connect_with(addr, both).await.expect("connect");
        assert_eq!(conn.alpn().as_deref(), Some(&b"h2"[..]), "h2 preferred");
        let none = client_config(&ca, &[], &[]);
        let mut conn = RawConn::connect_with(addr, none).await.expect("connect");
        assert_eq!(conn.alpn(), None);
        let r = conn.request("GET", "/v2/", &[], b"").await.expect("GET");
        assert_eq!(r.status, 200, "HTTP/1.1 without ALPN");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_version_header_on_every_status() {
    let server = Server::start();
    let api = Api::new(&server);
    let digest = api.push_blob(REPO, b"ten bytes!").await;
    let loc = api.start_upload(REPO).await;
    // (method, path, request headers, expected status)
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, u16);
    let cases: Vec<Case> = vec![
        ("GET", "/v2/".into(), vec![], 200),
        ("GET", format!("/v2/{REPO}/blobs/{digest}"), vec![], 200),
        (
            "GET",
            format!("/v2/{REPO}/blobs/{digest}"),
            vec![("Range", "bytes=2-4")],
            206,
        ),
        ("GET", loc.clone(), vec![], 204),
        ("POST", format!("/v2/{REPO}/blobs/uploads/"), vec![], 202),
        ("GET", format!("/v2/{REPO}/manifests/nope"), vec![], 404),
        ("HEAD", format!("/v2/{REPO}/manifests/nope"), vec![], 404),
        ("GET", "/v3/".into(), vec![], 404),
        ("PATCH", "/v2/".into(), vec![], 405),
        ("GET", "/v2/UPPER/tags/list".into(), vec![], 400),
        (
            "GET",
            format!("/v2/{REPO}/blobs/{digest}"),
            vec![("Range", "bytes=50-60")],
            416,
        ),
    ];
    for (method, path, headers, status) in &cases {
        let r = api.send(method, path, headers, Vec::new()).await;
        let ctx = format!("h2 {method} {path}");
        assert_eq!(r.status, *status, "{ctx}: {r:?}");
        assert_api_version(&r, &ctx);
        let r = common::raw_http::raw_request(
            server.addr(),
            &server.ca_path(),
            method,
            path,
            headers,
            b"",
        )
        .await;
        let ctx = format!("h1 {method} {path}");
        assert_eq!(r.status, *status, "{ctx}: {r:?}");
        assert_api_version(&r, &ctx);
    }
    let r = api.finish(&loc, &sha256_digest(b""), b"").await;
    assert_eq!(r.status, 201);
    assert_api_version(&r, "201 on PUT");
}

/// Pieces of a slow upload and the pause between them: well past both short timeouts.
const SLOW_PIECES: usize = 45;
const SLOW_PIECE: usize = 1024;
const SLOW_PAUSE: Duration = Duration::from_millis(200);

/// Sends `head` then `body` in 1 KiB pieces every 200 ms over HTTP/1.1; returns the
/// response.
async fn slow_h1(
    server_addr: std::net::SocketAddr,
    ca: PathBuf,
    head: String,
    body: Vec<u8>,
) -> HttpResponse {
    let mut conn = RawConn::connect(server_addr, &ca).await;
    conn.send(head.as_bytes()).await.expect("headers");
    for piece in body.chunks(SLOW_PIECE) {
        tokio::time::sleep(SLOW_PAUSE).await;
        conn.send(piece).await.expect("a slow piece was refused");
    }
    conn.read_response(false, Duration::from_secs(30))
        .await
        .expect("response to a slow upload")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_uploads_that_keep_sending_are_not_cut() {
    let (server, _config) = short_timeout_server();
    let api = Api::new(&server);
    let host = server.host_port();
    let len = SLOW_PIECES * SLOW_PIECE;
    let a = pseudo_random_bytes(len, 1);
    let b = pseudo_random_bytes(len, 2);
    let c = pseudo_random_bytes(len, 3);

    // HTTP/1.1 PATCH with Content-Length.
    let loc_a = api.start_upload(REPO).await;
    let len_s = len.to_string();
    let range = content_range(0, len as u64);
    let head_a = common::raw_http::request_head(
        "PATCH",
        &loc_a,
        &host,
        &[("Content-Length", &len_s), ("Content-Range", &range)],
    );
    // HTTP/2 PATCH, streamed without Content-Length.
    let loc_b = api.start_upload(REPO).await;
    let pieces: Vec<Bytes> = b.chunks(SLOW_PIECE).map(Bytes::copy_from_slice).collect();
    let stream = futures::stream::iter(pieces).then(|p| async move {
        tokio::time::sleep(SLOW_PAUSE).await;
        Ok::<_, std::io::Error>(p)
    });
    // HTTP/1.1 monolithic POST ?digest=.
    let digest_c = sha256_digest(&c);
    let head_c = common::raw_http::request_head(
        "POST",
        &format!("/v2/{REPO}/blobs/uploads/?digest={digest_c}"),
        &host,
        &[("Content-Length", &len_s)],
    );

    let started = Instant::now();
    let h2_headers = [("Content-Range", range.as_str())];
    let (ra, rb, rc) = tokio::join!(
        slow_h1(server.addr(), server.ca_path(), head_a, a.clone()),
        api.send(
            "PATCH",
            &loc_b,
            &h2_headers,
            reqwest::Body::wrap_stream(stream)
        ),
        slow_h1(server.addr(), server.ca_path(), head_c, c.clone()),
    );
    let took = started.elapsed();
    assert!(
        took > Duration::from_secs(BODY_IDLE_TIMEOUT + HEADER_TIMEOUT),
        "the slow uploads were not slow ({took:?})"
    );
    assert_eq!(ra.status, 202, "slow HTTP/1.1 PATCH: {ra:?}");
    assert_eq!(range_offset(&ra), len as u64);
    assert_eq!(rb.status, 202, "slow HTTP/2 PATCH: {rb:?}");
    assert_eq!(range_offset(&rb), len as u64);
    assert_eq!(rc.status, 201, "slow monolithic POST: {rc:?}");

    for (loc, data) in [(&loc_a, &a), (&loc_b, &b)] {
        let d = sha256_digest(data);
        let r = api.finish(loc, &d, b"").await;
        assert_eq!(r.status, 201, "PUT after a slow PATCH: {r:?}");
        api.assert_blob(REPO, &d, data, "slow upload").await;
    }
    api.assert_blob(REPO, &digest_c, &c, "slow monolithic upload")
        .await;
}

/// Asserts a connection was closed by the server after about `timeout` seconds.
fn assert_closed_near(closed: Option<Duration>, timeout: u64, ctx: &str) {
    let t = closed.unwrap_or_else(|| panic!("{ctx}: still open after 10 s ({timeout} s timeout)"));
    assert!(
        t >= Duration::from_millis(timeout * 1000 - 500) && t <= Duration::from_secs(timeout + 3),
        "{ctx}: closed after {t:?}, expected about {timeout} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_headers_and_idle_connections_are_closed() {
    let (server, _config) = short_timeout_server();
    let (addr, ca) = (server.addr(), server.ca_path());
    let wait = Duration::from_secs(10);

    let partial = async {
        let mut conn = RawConn::connect(addr, &ca).await;
        conn.send(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("send");
        assert_closed_near(
            conn.wait_closed(wait).await,
            HEADER_TIMEOUT,
            "partial headers",
        );
    };
    let trickle = async {
        // One header byte every 300 ms: progress, but the headers never finish in time.
        let mut conn = RawConn::connect(addr, &ca).await;
        let start = Instant::now();
        let line = format!(
            "GET /v2/ HTTP/1.1\r\nHost: {}\r\nX-Pad: {}\r\n",
            addr,
            "p".repeat(40)
        );
        let mut closed = None;
        for byte in line.as_bytes() {
            if conn.send(&[*byte]).await.is_err() {
                closed = Some(start.elapsed());
                break;
            }
            if conn.wait_closed(Duration::from_millis(300)).await.is_some() {
                closed = Some(start.elapsed());
                break;
            }
        }
        assert_closed_near(closed, HEADER_TIMEOUT, "trickled headers");
    };
    let keep_alive = async {
        let mut conn = RawConn::connect(addr, &ca).await;
        let r = conn.request("GET", "/v2/", &[], b"").await.expect("GET");
        assert_eq!(r.status, 200);
        assert_closed_near(
            conn.wait_closed(wait).await,
            HEADER_TIMEOUT,
            "idle keep-alive",
        );
    };
    let no_handshake = async {
        use tokio::io::AsyncReadExt;
        let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
        let start = Instant::now();
        let mut buf = [0u8; 64];
        let closed = match tokio::time::timeout(wait, tcp.read(&mut buf)).await {
            Ok(_) => Some(start.elapsed()),
            Err(_) => None,
        };
        assert_closed_near(closed, HANDSHAKE_TIMEOUT, "TCP without a TLS handshake");
    };
    tokio::join!(partial, trickle, keep_alive, no_handshake);
    Api::new(&server)
        .assert_alive("after stalled connections")
        .await;
}

/// A client that completes the TLS handshake and then sends nothing at all must not
/// hold the connection forever: the header timeout covers the first request too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tls_connection_is_closed() {
    let (server, _config) = short_timeout_server();
    let (addr, ca) = (server.addr(), server.ca_path());
    let silent = |alpn: &'static [u8]| {
        let ca = ca.clone();
        async move {
            let config = client_config(&ca, &[], &[alpn]);
            let mut conn = RawConn::connect_with(addr, config).await.expect("connect");
            let closed = conn
                .wait_closed(Duration::from_secs(HEADER_TIMEOUT + 6))
                .await;
            (String::from_utf8_lossy(alpn).into_owned(), closed)
        }
    };
    let (h1, h2) = tokio::join!(silent(b"http/1.1"), silent(b"h2"));
    let results = [h1, h2];
    for (alpn, closed) in &results {
        assert!(
            closed.is_some(),
            "a TLS connection (ALPN {alpn}) that sent no byte was still open after {} s \
             (header_read_timeout_secs = {HEADER_TIMEOUT}); all results: {results:?}",
            HEADER_TIMEOUT + 6
        );
    }
}

/// Checks that a stalled upload request ended about `BODY_IDLE_TIMEOUT` after it
/// stalled, with an error response or a closed connection.
fn assert_abandoned(outcome: &Result<HttpResponse, String>, took: Duration, ctx: &str) {
    assert!(
        took >= Duration::from_millis(BODY_IDLE_TIMEOUT * 1000 - 500)
            && took <= Duration::from_secs(BODY_IDLE_TIMEOUT + 4),
        "{ctx}: the stalled request ended after {took:?}, expected about {BODY_IDLE_TIMEOUT} s \
         (body_idle_timeout_secs); outcome: {:?}",
        outcome
            .as_ref()
            .map(|r| (r.status, String::from_utf8_lossy(&r.body).into_owned()))
    );
    if let Ok(r) = outcome {
        assert!(r.status >= 400 && r.status < 500, "{ctx}: {r:?}");
        assert_api_version(r, ctx);
    }
}

/// Sends `head` and `first` body bytes, then nothing; returns the outcome and how long
/// after the stall it came.
async fn stall_h1(
    server: &Server,
    head: String,
    first: &[u8],
) -> (Result<HttpResponse, String>, Duration) {
    let mut conn = RawConn::connect(server.addr(), &server.ca_path()).await;
    conn.send(head.as_bytes()).await.expect("headers");
    conn.send(first).await.expect("first bytes");
    let start = Instant::now();
    let r = conn
        .read_response(false, Duration::from_secs(25))
        .await
        .map_err(|e| e.to_string());
    (r, start.elapsed())
}

/// While a stalled PATCH is pending: shortly after the idle timeout, the session must
/// already be back at `offset` and answer at once (its lock released).
async fn probe_rolled_back(api: &Api, loc: &str, offset: u64, ctx: &str) {
    tokio::time::sleep(Duration::from_millis(BODY_IDLE_TIMEOUT * 1000 + 1500)).await;
    let t = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(20), api.upload_offset(loc))
        .await
        .unwrap_or_else(|_| panic!("{ctx}: GET session blocked for 20 s"));
    assert_eq!(
        r,
        Some(offset),
        "{ctx}: session offset after the idle timeout"
    );
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "{ctx}: GET session took {:?}: still locked after the idle timeout",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_upload_bodies_are_abandoned_after_the_idle_timeout() {
    let (server, _config) = short_timeout_server();
    let api = Api::new(&server);
    let host = server.host_port();
    let data = pseudo_random_bytes(20_000, 9);
    let digest = sha256_digest(&data);
    let loc = api.start_upload(REPO).await;
    assert_eq!(api.patch(&loc, 0, &data[..1000]).await.status, 202);
    let range = content_range(1000, 10_000);

    // HTTP/1.1: 10000 bytes announced, 1000 sent, then silence; and a monolithic POST
    // that stalls the same way.
    let head = common::raw_http::request_head(
        "PATCH",
        &loc,
        &host,
        &[("Content-Length", "10000"), ("Content-Range", &range)],
    );
    let other = pseudo_random_bytes(8000, 10);
    let other_digest = sha256_digest(&other);
    let mono_head = common::raw_http::request_head(
        "POST",
        &format!("/v2/{REPO}/blobs/uploads/?digest={other_digest}"),
        &host,
        &[("Content-Length", "8000")],
    );
    let (h1, mono, ()) = tokio::join!(
        stall_h1(&server, head, &data[1000..2000]),
        stall_h1(&server, mono_head, &other[..500]),
        probe_rolled_back(&api, &loc, 1000, "stalled HTTP/1.1 PATCH"),
    );
    assert_eq!(
        api.head_status(&format!("/v2/{REPO}/blobs/{other_digest}"))
            .await,
        404,
        "a stalled monolithic upload must store nothing"
    );

    // HTTP/2: 1000 bytes, then the stream stays open without data.
    let stalled = futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::copy_from_slice(
        &data[1000..2000],
    ))])
    .chain(futures::stream::pending());
    let h2_headers = [("Content-Range", range.as_str())];
    let h2 = async {
        let start = Instant::now();
        let r = api
            .try_send(
                "PATCH",
                &loc,
                &h2_headers,
                reqwest::Body::wrap_stream(stalled),
            )
            .await;
        (r, start.elapsed())
    };
    let (h2, ()) = tokio::join!(
        h2,
        probe_rolled_back(&api, &loc, 1000, "stalled HTTP/2 PATCH")
    );

    // The session goes on from where it was.
    assert_eq!(api.patch(&loc, 1000, &data[1000..]).await.status, 202);
    let r = api.finish(&loc, &digest, b"").await;
    assert_eq!(r.status, 201, "PUT after stalls: {r:?}");
    api.assert_blob(REPO, &digest, &data, "after stalls").await;

    // The stalled requests themselves end about body_idle_timeout_secs after the stall.
    for (what, took) in [
        ("HTTP/1.1 PATCH", h1.1),
        ("monolithic POST", mono.1),
        ("HTTP/2 PATCH", h2.1),
    ] {
        eprintln!("stalled {what} ended after {took:?}");
    }
    assert_abandoned(&h1.0, h1.1, "HTTP/1.1 PATCH");
    assert_abandoned(&mono.0, mono.1, "HTTP/1.1 monolithic POST");
    assert_abandoned(&h2.0, h2.1, "HTTP/2 PATCH");
}

/// Pushes a blob in two steps and a manifest, returning every Location header seen.
async fn locations(api: &Api, prefix: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let r = api
        .send(
            "POST",
            &format!("/v2/{REPO}/blobs/uploads/"),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 202);
    let loc = r.header("location").expect("Location");
    seen.push(loc.clone());
    // Locations are followed on loopback, whatever host they name.
    let path = loc.strip_prefix(prefix).unwrap_or(&loc).to_string();
    let data = b"location test";
    let r = api.patch(&path, 0, data).await;
    assert_eq!(r.status, 202);
    seen.push(r.header("location").expect("Location"));
    let digest = sha256_digest(data);
    let r = api.finish(&path, &digest, b"").await;
    assert_eq!(r.status, 201);
    seen.push(r.header("location").expect("Location"));
    let r = api
        .send(
            "POST",
            &format!("/v2/{REPO}/blobs/uploads/?mount={digest}&from={REPO}"),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 201);
    seen.push(r.header("location").expect("Location"));
    let manifest = common::oci_api::image_manifest((&digest, data.len()), &[]);
    let r = api
        .put_manifest(REPO, "loc", common::oci_api::OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(r.status, 201);
    seen.push(r.header("location").expect("Location"));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_headers_are_relative_unless_a_public_url_is_set() {
    let server = Server::start();
    for loc in locations(&Api::new(&server), "").await {
        assert!(
            loc.starts_with(&format!("/v2/{REPO}/")),
            "default Location must be a relative /v2/ path: {loc:?}"
        );
    }
    drop(server);

    let public = "https://registry.example:5000";
    let server = Server::builder().arg("--public-url").arg(public).start();
    for loc in locations(&Api::new(&server), public).await {
        assert!(
            loc.starts_with(&format!("{public}/v2/{REPO}/")),
            "Location with --public-url must be absolute: {loc:?}"
        );
    }
    drop(server);

    // The same from a config file, with a trailing slash.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("registry.toml");
    std::fs::write(&config, format!("[server]\npublic_url = \"{public}/\"\n")).expect("write");
    let server = Server::builder().arg("--config").arg(&config).start();
    for loc in locations(&Api::new(&server), public).await {
        assert!(
            loc.starts_with(&format!("{public}/v2/{REPO}/")),
            "Location with public_url from a config file: {loc:?}"
        );
    }
}
