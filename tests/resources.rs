//! Bounded resources under hostile clients: trickling uploads cannot hold the upload
//! slots, oversized headers are refused, idle HTTP/2 connections are closed although
//! they answer PINGs, clients past `max_connections` are refused at once, the manifest
//! memory budget answers 429 when spent, and the server's peak memory under 64 and 200
//! pushing-and-pulling clients stays small and flat.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;

use common::load::{peak_rss_kib, Load};
use common::oci_api::{
    assert_error, content_range, image_manifest, range_offset, Api, OCI_MANIFEST,
};
use common::raw_http::{client_config, raw_request, request_head, RawConn};
use common::tls::HttpResponse;
use common::{pseudo_random_bytes, sha256_digest, Server};

/// Peak RSS the server must stay under, whatever the number of clients.
const RSS_CEILING_KIB: u64 = 64 * 1024;
/// How much more peak memory each client beyond 64 may cost (TLS and HTTP buffers of
/// one busy connection).
const RSS_PER_EXTRA_CLIENT_KIB: u64 = 192;

/// A server with the given `[server]` settings from a `--config` file. Every client of
/// these tests comes from 127.0.0.1, so the per-address upload-session limit is raised
/// to the registry's total (what a registry behind one NAT address would configure).
fn server_with(settings: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("registry.toml");
    std::fs::write(
        &config,
        format!("[server]\n{settings}\n[storage]\nmax_upload_sessions_per_client = 1024\n"),
    )
    .expect("writing config");
    let server = Server::builder().arg("--config").arg(&config).start();
    (server, dir)
}

/// Peak RSS (KiB) of a fresh server under `clients` clients for `secs` seconds.
async fn peak_under_load(clients: usize, secs: u64) -> u64 {
    let (server, _config) = server_with("");
    let load = Load {
        base: server.url(),
        clients,
        duration: Duration::from_secs(secs),
        blob_size: 256 << 10,
    };
    let report = load.run(&server.ca_path()).await;
    let peak = peak_rss_kib(server.pid());
    eprintln!(
        "{clients} clients for {secs} s: {} requests ok, {} failed in {:?}; peak RSS {} KiB",
        report.ok, report.failed, report.took, peak
    );
    assert_eq!(
        report.failed, 0,
        "{clients} clients: failures: {:?}",
        report.first_failures
    );
    assert!(
        report.ok >= clients as u64 * 4,
        "{clients} clients: only {} requests completed",
        report.ok
    );
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_memory_is_bounded_with_64_and_200_clients() {
    let p64 = peak_under_load(64, 10).await;
    let p200 = peak_under_load(200, 10).await;
    for (clients, peak) in [(64, p64), (200, p200)] {
        assert!(
            peak < RSS_CEILING_KIB,
            "peak RSS with {clients} clients was {peak} KiB (ceiling {RSS_CEILING_KIB} KiB)"
        );
    }
    let margin = (200 - 64) * RSS_PER_EXTRA_CLIENT_KIB;
    assert!(
        p200 <= p64 + margin,
        "peak RSS grew from {p64} KiB (64 clients) to {p200} KiB (200 clients), more than \
         {margin} KiB"
    );
}

/// Sends `head`, then one body byte every 500 ms until the server answers; returns the
/// response (or the error when the connection broke without one).
async fn trickle(mut conn: RawConn, head: String) -> Result<HttpResponse, String> {
    conn.send(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    for _ in 0..60 {
        if conn.send(b"x").await.is_err() {
            break;
        }
        match conn.read_response(false, Duration::from_millis(500)).await {
            Ok(r) => return Ok(r),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    conn.read_response(false, Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_uploads_cannot_hold_the_upload_slots() {
    // Floor 1 KiB/s averaged over 2 s after a 2 s grace; the idle timeout (default 120 s)
    // never fires for a body that sends a byte every 500 ms.
    let (server, _config) = server_with(
        "min_upload_rate_bytes_per_sec = 1024\nmin_upload_rate_grace_secs = 2\n\
         min_upload_rate_window_secs = 2",
    );
    let api = Api::new(&server);
    let host = server.host_port();

    // A real slow link, 4 KiB/s (4x the floor) for 6 s, over HTTP/2: never cut.
    let slow_len = 24 * 1024;
    let slow = pseudo_random_bytes(slow_len, 7);
    let slow_loc = api.start_upload(REPO).await;
    let pieces: Vec<Bytes> = slow.chunks(1024).map(Bytes::copy_from_slice).collect();
    let stream = futures::stream::iter(pieces).then(|p| async move {
        tokio::time::sleep(Duration::from_millis(250)).await;
        Ok::<_, std::io::Error>(p)
    });
    let range = content_range(0, slow_len as u64);
    let range_header = [("Content-Range", range.as_str())];
    let slow_patch = api.send(
        "PATCH",
        &slow_loc,
        &range_header,
        reqwest::Body::wrap_stream(stream),
    );

    // More tricklers than upload slots (64), each announcing 1 MB and sending a byte
    // every 500 ms, half as chunk PATCHes and half as monolithic POSTs.
    let mut tricklers = Vec::new();
    for i in 0..TRICKLERS {
        let head = if i % 2 == 0 {
            let loc = api.start_upload(REPO).await;
            request_head("PATCH", &loc, &host, &[("Content-Length", "1000000")])
        } else {
            let digest = sha256_digest(&[i as u8]);
            request_head(
                "POST",
                &format!("/v2/{REPO}/blobs/uploads/?digest={digest}"),
                &host,
                &[("Content-Length", "1000000")],
            )
        };
        let conn = RawConn::connect(server.addr(), &server.ca_path()).await;
        tricklers.push(tokio::spawn(trickle(conn, head)));
    }
    // Let them take every slot, then push normally: it must get through.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let blob = pseudo_random_bytes(1 << 20, 8);
    let push = async {
        let digest = api.push_blob(REPO, &blob).await;
        api.assert_blob(REPO, &digest, &blob, "push next to tricklers")
            .await;
    };
    let ((), slow_resp) = tokio::join!(
        async {
            tokio::time::timeout(Duration::from_secs(60), push)
                .await
                .expect("a normal push was blocked by trickling clients for 60 s")
        },
        slow_patch
    );
    assert_eq!(
        slow_resp.status, 202,
        "slow PATCH above the floor: {slow_resp:?}"
    );
    assert_eq!(range_offset(&slow_resp), slow_len as u64);
    let r = api.finish(&slow_loc, &sha256_digest(&slow), b"").await;
    assert_eq!(r.status, 201, "closing the slow upload: {r:?}");

    for (i, t) in tricklers.into_iter().enumerate() {
        let outcome = t.await.expect("trickler task");
        let r = outcome.unwrap_or_else(|e| panic!("trickler {i}: no response: {e}"));
        assert_error(&r, 408, &["BLOB_UPLOAD_INVALID"], &format!("trickler {i}"));
        let msg = String::from_utf8_lossy(&r.body);
        assert!(msg.contains("minimum"), "trickler {i}: {msg}");
    }
}

/// Upload slots in storage (`ACTIVE_UPLOADS`), plus some.
const TRICKLERS: usize = 70;
const REPO: &str = "resources/test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_431_on_http1_and_are_refused_on_h2() {
    let (server, _config) = server_with("max_header_bytes = 32768");
    let small = "p".repeat(16 * 1024);
    let big = "p".repeat(48 * 1024);

    // HTTP/1.1: under the limit works, over it is 431 and nothing else.
    let r = raw_request(
        server.addr(),
        &server.ca_path(),
        "GET",
        "/v2/",
        &[("X-Pad", &small)],
        b"",
    )
    .await;
    assert_eq!(
        r.status, 200,
        "16 KiB of headers under a 32 KiB limit: {r:?}"
    );
    let r = raw_request(
        server.addr(),
        &server.ca_path(),
        "GET",
        "/v2/",
        &[("X-Pad", &big)],
        b"",
    )
    .await;
    assert_eq!(
        r.status, 431,
        "48 KiB of headers over a 32 KiB limit: {r:?}"
    );

    // HTTP/2: hyper announces the limit and answers a larger header list with 431 and
    // a stream reset; the client sees either, never a success.
    let client = server.client();
    let h2 = |pad: String| {
        let client = client.clone();
        let url = format!("{}/v2/", server.url());
        async move {
            client
                .get(url)
                .header("X-Pad", pad)
                .send()
                .await
                .map(|r| (r.version(), r.status().as_u16()))
        }
    };
    let ok = h2(small.clone()).await.expect("h2 request under the limit");
    assert_eq!(ok, (reqwest::Version::HTTP_2, 200), "h2 under the limit");
    match h2(big.clone()).await {
        Ok((version, status)) => {
            assert_eq!(version, reqwest::Version::HTTP_2);
            assert_eq!(status, 431, "h2 over the limit");
        }
        Err(e) => assert!(
            format!("{e:?}").to_lowercase().contains("reset")
                || format!("{e:?}").contains("REFUSED_STREAM")
                || format!("{e:?}").contains("PROTOCOL_ERROR"),
            "h2 over the limit failed in an unexpected way: {e:?}"
        ),
    }
    // The connection and the server still serve.
    let ok = h2(small).await.expect("h2 request after a refused one");
    assert_eq!(ok.1, 200);
}

/// Connects over TLS with ALPN h2 and completes the HTTP/2 handshake; returns the
/// request handle, the PING handle and the connection's task.
async fn h2_connect(
    server: &Server,
) -> (
    h2::client::SendRequest<Bytes>,
    h2::PingPong,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    use rustls::pki_types::ServerName;
    let config = client_config(&server.ca_path(), &[], &[b"h2"]);
    let tcp = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("tcp");
    let name = ServerName::IpAddress(server.addr().ip().into());
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let (send, mut conn) = h2::client::handshake(tls).await.expect("h2 handshake");
    let ping = conn.ping_pong().expect("ping handle");
    (send, ping, tokio::spawn(conn))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_h2_connections_are_closed_although_they_answer_pings() {
    const IDLE: u64 = 2;
    let (server, _config) = server_with(&format!("idle_timeout_secs = {IDLE}"));
    let (mut send, mut ping, conn) = h2_connect(&server).await;
    let req = http::Request::get(format!("{}/v2/", server.url()))
        .body(())
        .expect("request");
    let (resp, _) = send.send_request(req, true).expect("send GET");
    let resp = resp.await.expect("GET /v2/ over h2");
    assert_eq!(resp.status(), 200);
    drop(resp);
    let idle_since = Instant::now();
    // PING every 300 ms: each must be answered until the server closes the connection.
    let mut pongs = 0;
    while !conn.is_finished() && idle_since.elapsed() < Duration::from_secs(IDLE + 8) {
        match tokio::time::timeout(Duration::from_secs(2), ping.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => pongs += 1,
            Ok(Err(_)) => break,
            Err(_) => panic!("a PING was not answered within 2 s"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let closed = tokio::time::timeout(Duration::from_secs(3), conn).await;
    let took = idle_since.elapsed();
    assert!(
        closed.is_ok(),
        "the idle h2 connection was still open after {took:?}"
    );
    assert!(pongs >= 3, "only {pongs} PINGs were answered while idle");
    assert!(
        took >= Duration::from_millis(IDLE * 1000 - 300) && took <= Duration::from_secs(IDLE + 5),
        "closed {took:?} after its last request, expected about {IDLE} s"
    );

    // A request in flight for longer than the idle timeout keeps its connection open.
    let api = Api::new(&server);
    let loc = api.start_upload(REPO).await;
    let data = pseudo_random_bytes(16 * 1024, 9);
    let pieces: Vec<Bytes> = data.chunks(1024).map(Bytes::copy_from_slice).collect();
    let stream = futures::stream::iter(pieces).then(|p| async move {
        tokio::time::sleep(Duration::from_millis(250)).await;
        Ok::<_, std::io::Error>(p)
    });
    let range = content_range(0, data.len() as u64);
    let r = api
        .send(
            "PATCH",
            &loc,
            &[("Content-Range", range.as_str())],
            reqwest::Body::wrap_stream(stream),
        )
        .await;
    assert_eq!(
        r.status, 202,
        "a 4 s request with a {IDLE} s idle timeout: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_past_max_connections_are_refused_at_once() {
    const MAX: usize = 4;
    let (server, _config) = server_with(&format!("max_connections = {MAX}"));
    let (addr, ca) = (server.addr(), server.ca_path());
    let mut held = Vec::new();
    for _ in 0..MAX {
        let mut conn = RawConn::connect(addr, &ca).await;
        let r = conn.request("GET", "/v2/", &[], b"").await.expect("GET");
        assert_eq!(r.status, 200);
        held.push(conn);
    }
    // Every slot is taken: a further client is closed, not left waiting for 10 s.
    for attempt in 0..5 {
        let config = client_config(&ca, &[], &[b"http/1.1"]);
        let outcome = RawConn::connect_with(addr, config).await;
        match outcome {
            Ok(mut conn) => {
                // TLS 1.3 can finish on the client side before the close is seen.
                let r = conn.request("GET", "/v2/", &[], b"").await;
                assert!(
                    r.is_err(),
                    "attempt {attempt}: served past max_connections: {r:?}"
                );
                assert_ne!(r.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
            }
            Err(e) => assert_ne!(
                e.kind(),
                std::io::ErrorKind::TimedOut,
                "attempt {attempt}: left hanging instead of refused: {e}"
            ),
        }
    }
    // A freed slot serves again.
    held.pop().expect("a held connection").close_notify().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let config = client_config(&ca, &[], &[b"http/1.1"]);
        if let Ok(mut conn) = RawConn::connect_with(addr, config).await {
            if let Ok(r) = conn.request("GET", "/v2/", &[], b"").await {
                assert_eq!(r.status, 200);
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no slot freed after a client left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        server.log().contains("server.max_connections reached"),
        "no warning about refused connections in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_budget_answers_429_when_spent() {
    const WAIT: u64 = 1;
    let (server, _config) = server_with(&format!(
        "manifest_budget_bytes = 4096\nmanifest_budget_wait_secs = {WAIT}"
    ));
    let api = Api::new(&server);
    let layer = pseudo_random_bytes(1000, 10);
    let digest = api.push_blob(REPO, &layer).await;
    let manifest = image_manifest((&digest, layer.len()), &[(&digest, layer.len())]);

    // A PUT announcing the whole budget holds it while its body trickles in.
    let mut holder = RawConn::connect(server.addr(), &server.ca_path()).await;
    holder
        .send_head(
            "PUT",
            &format!("/v2/{REPO}/manifests/held"),
            &[
                ("Content-Type", OCI_MANIFEST),
                ("Content-Length", &manifest.len().max(4096).to_string()),
            ],
        )
        .await
        .expect("head");
    holder.send(&manifest[..10]).await.expect("first bytes");
    tokio::time::sleep(Duration::from_millis(300)).await;

    for i in 0..3 {
        let started = Instant::now();
        let r = api.put_manifest(REPO, "v1", OCI_MANIFEST, &manifest).await;
        assert_error(
            &r,
            429,
            &["TOOMANYREQUESTS"],
            &format!("PUT {i} while spent"),
        );
        let retry: u64 = r
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("429 without a Retry-After: {r:?}"));
        assert!(retry >= 1);
        assert!(
            started.elapsed() >= Duration::from_millis(WAIT * 1000 - 100),
            "429 before waiting for room"
        );
    }
    assert!(
        api.tags(REPO).await.is_empty(),
        "a refused manifest was stored"
    );

    // Once the holder is gone, the budget is whole again.
    drop(holder);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = api.put_manifest(REPO, "v1", OCI_MANIFEST, &manifest).await;
        if r.status == 201 {
            break;
        }
        assert_error(&r, 429, &["TOOMANYREQUESTS"], "PUT after the holder left");
        assert!(Instant::now() < deadline, "budget not given back");
    }
    assert_eq!(api.tags(REPO).await, vec!["v1".to_string()]);
}

/// Not a test: the load generator of `bench/rss.sh`, against any registry. Configured by
/// `LOAD_URL`, `LOAD_CA`, `LOAD_CLIENTS` and `LOAD_SECS`; prints one `load:` line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load generator for bench/rss.sh, run by hand"]
async fn bench_load() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    let load = Load {
        base: var("LOAD_URL"),
        clients: var("LOAD_CLIENTS").parse().expect("LOAD_CLIENTS"),
        duration: Duration::from_secs(var("LOAD_SECS").parse().expect("LOAD_SECS")),
        blob_size: 256 << 10,
    };
    let r = load.run(std::path::Path::new(&var("LOAD_CA"))).await;
    println!(
        "load: clients={} ok={} failed={} secs={:.1} first_failures={:?}",
        load.clients,
        r.ok,
        r.failed,
        r.took.as_secs_f64(),
        r.first_failures
    );
}
