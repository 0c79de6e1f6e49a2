//! Blob uploads: digest mismatches, malformed digests, truncated bodies, bad ranges.

use std::time::Duration;

use crate::common::oci_api::{assert_error, content_range, OCI_MANIFEST};
use crate::common::raw_http::{request_head, RawConn};
use crate::common::{pseudo_random_bytes, sha256_digest};
use crate::{assert_head_error, Fixture, REPO};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_mismatch_stores_nothing() {
    let fx = Fixture::start().await;
    let data = pseudo_random_bytes(5000, 11);
    let actual = sha256_digest(&data);
    let wrong = sha256_digest(b"something else entirely");

    // Monolithic POST ?digest=.
    let r = fx
        .api
        .send(
            "POST",
            &format!("/v2/{REPO}/blobs/uploads/?digest={wrong}"),
            &[],
            data.clone(),
        )
        .await;
    assert_error(
        &r,
        400,
        &["DIGEST_INVALID"],
        "monolithic POST, wrong digest",
    );

    // Monolithic with a sha512 digest of other content.
    let wrong512 = {
        use sha2::Digest;
        format!("sha512:{}", hex::encode(sha2::Sha512::digest(b"other")))
    };
    let r = fx
        .api
        .send(
            "POST",
            &format!("/v2/{REPO}/blobs/uploads/?digest={wrong512}"),
            &[],
            data.clone(),
        )
        .await;
    assert_error(
        &r,
        400,
        &["DIGEST_INVALID"],
        "monolithic POST, wrong sha512",
    );

    // Chunked: all data by PATCH, PUT names another digest.
    let loc = fx.session_with(&data).await;
    let r = fx.api.finish(&loc, &wrong, b"").await;
    assert_error(&r, 400, &["DIGEST_INVALID"], "chunked PUT, wrong digest");

    // Chunked with the last chunk in the PUT body.
    let loc = fx.session_with(&data[..2000]).await;
    let r = fx
        .api
        .send(
            "PUT",
            &format!("{loc}?digest={wrong}"),
            &[("Content-Range", &content_range(2000, 3000))],
            data[2000..].to_vec(),
        )
        .await;
    assert_error(
        &r,
        400,
        &["DIGEST_INVALID"],
        "chunked PUT with body, wrong digest",
    );

    for d in [&actual, &wrong, &wrong512] {
        fx.assert_no_blob(d, "after digest mismatches").await;
    }
    fx.assert_unchanged("digest mismatch").await;
}

/// Digests that break the grammar, the encoding rules or name an unsupported algorithm.
fn bad_digests() -> Vec<String> {
    let hex64 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    vec![
        "sha256:xyz".into(),
        "sha256:".into(),
        format!(":{hex64}"),
        format!("sha256:{}", &hex64[..63]),
        format!("sha256:{hex64}0"),
        format!("sha256:{}", hex64.to_uppercase()),
        format!("SHA256:{hex64}"),
        format!("sha256:{}", "g".repeat(64)),
        format!("sha512:{hex64}"),
        "md5:d41d8cd98f00b204e9800998ecf8427e".into(),
        "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709".into(),
        format!("sha256:%00{}", &hex64[..62]),
        format!("sha256:{hex64}%00"),
        "sha256:..%2f..%2fmetadata.db".into(),
        format!("sha256::{hex64}"),
        format!("sha256+:{hex64}"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_digests_are_digest_invalid() {
    let fx = Fixture::start().await;
    let manifest = fx.manifest.clone();
    for d in bad_digests() {
        let ctx = |what: &str| format!("{what} with digest {d:?}");
        let blob = format!("/v2/{REPO}/blobs/{d}");
        for method in ["GET", "DELETE"] {
            let r = fx.raw(method, &blob, &[], b"").await;
            assert_error(
                &r,
                400,
                &["DIGEST_INVALID"],
                &ctx(&format!("{method} blob")),
            );
        }
        let r = fx.raw("HEAD", &blob, &[], b"").await;
        assert_head_error(&r, 400, &ctx("HEAD blob"));

        let m = format!("/v2/{REPO}/manifests/{d}");
        if d.contains(':') {
            for method in ["GET", "DELETE"] {
                let r = fx.raw(method, &m, &[], b"").await;
                assert_error(
                    &r,
                    400,
                    &["DIGEST_INVALID"],
                    &ctx(&format!("{method} manifest")),
                );
            }
            let r = fx
                .raw("PUT", &m, &[("Content-Type", OCI_MANIFEST)], &manifest)
                .await;
            assert_error(&r, 400, &["DIGEST_INVALID"], &ctx("PUT manifest"));
        }
        let r = fx
            .raw("GET", &format!("/v2/{REPO}/referrers/{d}"), &[], b"")
            .await;
        assert_error(&r, 400, &["DIGEST_INVALID"], &ctx("GET referrers"));

        // In the query: monolithic push, mount, and closing a session.
        let r = fx
            .raw(
                "POST",
                &format!("/v2/{REPO}/blobs/uploads/?digest={d}"),
                &[],
                b"some bytes",
            )
            .await;
        assert_error(&r, 400, &["DIGEST_INVALID"], &ctx("POST ?digest="));
        let r = fx
            .raw(
                "POST",
                &format!("/v2/{REPO}/blobs/uploads/?mount={d}&from={REPO}"),
                &[],
                b"",
            )
            .await;
        assert_error(&r, 400, &["DIGEST_INVALID"], &ctx("POST ?mount="));
    }

    // A session survives a PUT with a bad digest (or none) and still completes.
    let data = pseudo_random_bytes(4096, 3);
    let loc = fx.session_with(&data).await;
    for d in bad_digests() {
        let r = fx.raw("PUT", &format!("{loc}?digest={d}"), &[], b"").await;
        assert_error(
            &r,
            400,
            &["DIGEST_INVALID"],
            &format!("session PUT ?digest={d:?}"),
        );
    }
    let r = fx.raw("PUT", &loc, &[], b"").await;
    assert_error(&r, 400, &["DIGEST_INVALID"], "session PUT without ?digest");
    fx.assert_offset(&loc, 4096, "after bad PUTs").await;
    fx.assert_unchanged("malformed digests").await;

    let digest = sha256_digest(&data);
    let r = fx.api.finish(&loc, &digest, b"").await;
    assert_eq!(r.status, 201, "session completes after bad PUTs: {r:?}");
    fx.api.assert_blob(REPO, &digest, &data, "completed").await;
    assert!(
        !fx.server.log().contains("internal error"),
        "the server logged an internal error:\n{}",
        fx.server.log()
    );
}

/// Sends `head` then `partial` body bytes on a raw connection, then closes it, cleanly
/// (TLS close_notify) or abruptly (dropping the socket).
async fn send_truncated(fx: &Fixture, head: &str, partial: &[u8], clean: bool) {
    let mut conn = RawConn::connect(fx.server.addr(), &fx.ca()).await;
    conn.send(head.as_bytes()).await.expect("sending headers");
    conn.send(partial).await.expect("sending partial body");
    tokio::time::sleep(Duration::from_millis(100)).await;
    if clean {
        conn.close_notify().await;
    } else {
        drop(conn);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_uploads_store_nothing_and_keep_the_offset() {
    let fx = Fixture::start().await;
    let host = fx.server.host_port();
    let data = pseudo_random_bytes(300_000, 5);
    let digest = sha256_digest(&data);
    let loc = fx.session_with(&data[..1000]).await;

    // PATCH announcing 100000 bytes, sending 40000, closing (cleanly, then abruptly).
    for clean in [true, false] {
        let range = content_range(1000, 100_000);
        let head = request_head(
            "PATCH",
            &loc,
            &host,
            &[("Content-Length", "100000"), ("Content-Range", &range)],
        );
        send_truncated(&fx, &head, &data[1000..41_000], clean).await;
        fx.assert_offset(
            &loc,
            1000,
            &format!("truncated PATCH (clean close: {clean})"),
        )
        .await;
    }

    // PATCH with a chunked body cut in the middle of a chunk.
    let head = request_head("PATCH", &loc, &host, &[("Transfer-Encoding", "chunked")]);
    let mut partial = format!("{:x}\r\n", 0x8000).into_bytes();
    partial.extend_from_slice(&data[1000..1000 + 0x4000]);
    send_truncated(&fx, &head, &partial, false).await;
    fx.assert_offset(&loc, 1000, "truncated chunked PATCH")
        .await;

    // The final PUT carrying the rest, cut short: no blob, the session stays.
    let rest_len = (data.len() - 1000).to_string();
    let head = request_head(
        "PUT",
        &format!("{loc}?digest={digest}"),
        &host,
        &[("Content-Length", &rest_len)],
    );
    send_truncated(&fx, &head, &data[1000..150_000], true).await;
    fx.assert_offset(&loc, 1000, "truncated final PUT").await;
    fx.assert_no_blob(&digest, "truncated final PUT").await;

    // Monolithic POST ?digest= cut short.
    let other = pseudo_random_bytes(200_000, 99);
    let other_digest = sha256_digest(&other);
    let head = request_head(
        "POST",
        &format!("/v2/{REPO}/blobs/uploads/?digest={other_digest}"),
        &host,
        &[("Content-Length", "200000")],
    );
    send_truncated(&fx, &head, &other[..120_000], false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    fx.assert_no_blob(&other_digest, "truncated monolithic POST")
        .await;
    fx.assert_unchanged("truncated uploads").await;

    // The session still completes with the right content.
    let r = fx.api.patch(&loc, 1000, &data[1000..200_000]).await;
    assert_eq!(r.status, 202, "PATCH after truncations: {r:?}");
    let r = fx.api.finish(&loc, &digest, &data[200_000..]).await;
    assert_eq!(r.status, 201, "PUT after truncations: {r:?}");
    fx.api
        .assert_blob(REPO, &digest, &data, "after truncations")
        .await;

    // No staging file is left behind by the aborted monolithic upload (every session
    // of this test is closed now).
    let uploads = fx.server.data_dir().join("uploads");
    let mut left = Vec::new();
    for _ in 0..30 {
        left = std::fs::read_dir(&uploads)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        left.is_empty(),
        "staging files left in {}: {left:?}",
        uploads.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_range_gaps_and_mismatches() {
    let fx = Fixture::start().await;
    let data = pseudo_random_bytes(3000, 21);
    let digest = sha256_digest(&data);
    let loc = fx.session_with(&data[..1000]).await;
    let range_codes = ["BLOB_UPLOAD_INVALID", "RANGE_INVALID"];

    // Gaps, rewinds and overlaps: 416 with the current offset in Range.
    for (start, len) in [
        (2000u64, 1000usize),
        (0, 1000),
        (500, 1000),
        (999, 10),
        (1001, 10),
    ] {
        let body = vec![0x5a; len];
        let r = fx.api.patch(&loc, start, &body).await;
        let ctx = format!("PATCH Content-Range {}", content_range(start, len as u64));
        assert_error(&r, 416, &range_codes, &ctx);
        assert_eq!(
            r.header("range").as_deref(),
            Some("0-999"),
            "{ctx}: Range header"
        );
        fx.assert_offset(&loc, 1000, &ctx).await;
    }
    // The same through a final PUT.
    let r = fx
        .api
        .send(
            "PUT",
            &format!("{loc}?digest={digest}"),
            &[("Content-Range", &content_range(5000, 2000))],
            data[1000..].to_vec(),
        )
        .await;
    assert_error(&r, 416, &range_codes, "PUT with a gap");
    assert_eq!(
        r.header("range").as_deref(),
        Some("0-999"),
        "PUT with a gap: Range"
    );
    fx.assert_no_blob(&digest, "PUT with a gap").await;

    // Content-Range disagreeing with Content-Length, or unparsable: 400.
    let size_codes = ["BLOB_UPLOAD_INVALID", "SIZE_INVALID"];
    for (range, body_len) in [
        ("1000-1999", 500usize),
        ("1000-1999", 2000),
        ("1000-1000", 2),
        ("garbage", 10),
        ("1999-1000", 10),
        ("-5", 5),
    ] {
        let r = fx
            .raw(
                "PATCH",
                &loc,
                &[("Content-Range", range)],
                &data[1000..1000 + body_len],
            )
            .await;
        let ctx = format!("PATCH Content-Range {range} with {body_len} bytes");
        assert_error(&r, 400, &size_codes, &ctx);
        fx.assert_offset(&loc, 1000, &ctx).await;
    }
    // HTTP/2 without Content-Length: the body turns out shorter than the range.
    let short = data[1000..1500].to_vec();
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from(short))]);
    let r = fx
        .api
        .send(
            "PATCH",
            &loc,
            &[("Content-Range", "1000-1999")],
            reqwest::Body::wrap_stream(stream),
        )
        .await;
    assert_error(
        &r,
        400,
        &size_codes,
        "h2 PATCH shorter than its Content-Range",
    );
    fx.assert_offset(&loc, 1000, "h2 PATCH shorter than its Content-Range")
        .await;
    fx.assert_unchanged("Content-Range errors").await;

    // The session continues where it was.
    let r = fx.api.patch(&loc, 1000, &data[1000..2000]).await;
    assert_eq!(r.status, 202, "good PATCH: {r:?}");
    assert_eq!(r.header("range").as_deref(), Some("0-1999"));
    let r = fx.api.finish(&loc, &digest, &data[2000..]).await;
    assert_eq!(r.status, 201, "final PUT: {r:?}");
    fx.api
        .assert_blob(REPO, &digest, &data, "after range errors")
        .await;
}
