//! Manifests: malformed content, missing references, digest mismatches, size limits.

use std::time::Duration;

use crate::common::oci_api::{assert_error, image_manifest, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use crate::common::raw_http::RawConn;
use crate::common::sha256_digest;
use crate::{Fixture, MANIFEST_LIMIT, REPO};

const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// A manifest push that must be refused with 400 and one of `codes`.
struct BadManifest {
    what: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    codes: Vec<&'static str>,
}

fn bad(
    what: &'static str,
    content_type: &'static str,
    body: &[u8],
    codes: &[&'static str],
) -> BadManifest {
    BadManifest {
        what,
        content_type,
        body: body.to_vec(),
        codes: codes.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_manifests_are_rejected_and_not_stored() {
    let mut fx = Fixture::start().await;
    let cfg = (fx.config_digest.clone(), fx.config_len);
    let layer = (fx.layer_digest.clone(), fx.layer_len);
    let missing = sha256_digest(b"never pushed");
    // A blob that exists, but only in another repository.
    let elsewhere = fx.api.push_blob("other/repo", b"only in other/repo").await;
    fx.blobs.push(elsewhere.clone());
    fx.blobs.sort();
    fx.repos.push("other/repo".into());
    let schema1 = format!(
        r#"{{"schemaVersion":1,"name":"{REPO}","tag":"s1","architecture":"amd64",
        "fsLayers":[{{"blobSum":"{}"}}],"history":[{{"v1Compatibility":"{{}}"}}]}}"#,
        layer.0
    );
    let index_missing_child = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": missing, "size": 100}],
    }))
    .expect("json");
    let wrong_size = image_manifest((&cfg.0, cfg.1), &[(&layer.0, layer.1 + 1)]);
    let media_type_mismatch = image_manifest((&cfg.0, cfg.1), &[(layer.0.as_str(), layer.1); 2]);
    let invalid = &["MANIFEST_INVALID"][..];
    let blob_unknown = &["MANIFEST_BLOB_UNKNOWN"][..];
    let cases: Vec<BadManifest> = vec![
        bad(
            "truncated JSON",
            OCI_MANIFEST,
            br#"{"schemaVersion":2,"#,
            invalid,
        ),
        bad("not JSON", OCI_MANIFEST, b"\x00\x01 not json", invalid),
        bad("empty body", OCI_MANIFEST, b"", invalid),
        bad("JSON array", OCI_MANIFEST, b"[]", invalid),
        bad(
            "schemaVersion 3",
            OCI_MANIFEST,
            br#"{"schemaVersion":3,"config":{}}"#,
            invalid,
        ),
        bad(
            "schema 1, v1+json",
            DOCKER_SCHEMA1,
            schema1.as_bytes(),
            invalid,
        ),
        bad(
            "schema 1, prettyjws",
            DOCKER_SCHEMA1_SIGNED,
            schema1.as_bytes(),
            invalid,
        ),
        bad(
            "schema 1, generic type",
            "application/json",
            schema1.as_bytes(),
            invalid,
        ),
        bad(
            "missing layer blob",
            OCI_MANIFEST,
            &image_manifest((&cfg.0, cfg.1), &[(&missing, 12)]),
            blob_unknown,
        ),
        bad(
            "missing config blob",
            OCI_MANIFEST,
            &image_manifest((&missing, 12), &[(&layer.0, layer.1)]),
            blob_unknown,
        ),
        bad(
            "blob of another repository",
            OCI_MANIFEST,
            &image_manifest((&cfg.0, cfg.1), &[(&elsewhere, 18)]),
            blob_unknown,
        ),
        bad(
            "index with a missing child",
            OCI_INDEX,
            &index_missing_child,
            &["MANIFEST_BLOB_UNKNOWN", "MANIFEST_UNKNOWN"],
        ),
        bad(
            "descriptor size differs from the blob",
            OCI_MANIFEST,
            &wrong_size,
            &["MANIFEST_INVALID", "MANIFEST_BLOB_UNKNOWN", "SIZE_INVALID"],
        ),
        bad(
            "mediaType differs from Content-Type",
            OCI_INDEX,
            &media_type_mismatch,
            invalid,
        ),
    ];
    for (i, case) in cases.iter().enumerate() {
        let tag = format!("bad{i}");
        let r = fx
            .api
            .put_manifest(REPO, &tag, case.content_type, &case.body)
            .await;
        assert_error(&r, 400, &case.codes, case.what);
        fx.assert_no_manifest(&tag, case.what).await;
        fx.assert_no_manifest(&sha256_digest(&case.body), case.what)
            .await;
    }

    // PUT by digest whose body is other content.
    let other = image_manifest((&cfg.0, cfg.1), &[]);
    let claimed = sha256_digest(b"not this manifest");
    let r = fx
        .api
        .put_manifest(REPO, &claimed, OCI_MANIFEST, &other)
        .await;
    assert_error(&r, 400, &["DIGEST_INVALID"], "PUT by mismatching digest");
    fx.assert_no_manifest(&claimed, "PUT by mismatching digest")
        .await;
    fx.assert_no_manifest(&sha256_digest(&other), "PUT by mismatching digest")
        .await;

    // Invalid tags in the reference and in ?tag=.
    let long_tag = "a".repeat(129);
    for tag in ["-dash", ".dot", long_tag.as_str()] {
        let r = fx
            .api
            .put_manifest(REPO, tag, OCI_MANIFEST, &fx.manifest)
            .await;
        assert_error(
            &r,
            400,
            &["MANIFEST_INVALID", "TAG_INVALID", "NAME_INVALID"],
            tag,
        );
    }
    fx.assert_unchanged("bad manifests").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_size_limit_applies_with_and_without_content_length() {
    let mut fx = Fixture::start().await;
    let cfg = (fx.config_digest.clone(), fx.config_len);
    // A valid manifest padded (in an annotation) to exactly `len` bytes.
    let padded = |len: usize| -> Vec<u8> {
        let make = |pad: usize| {
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": cfg.0, "size": cfg.1},
                "layers": [],
                "annotations": {"pad": "x".repeat(pad)},
            }))
            .expect("json")
        };
        let base = make(0).len();
        let m = make(len - base);
        assert_eq!(m.len(), len);
        m
    };

    // Exactly at the limit: accepted.
    let at_limit = padded(MANIFEST_LIMIT);
    let r = fx
        .api
        .put_manifest(REPO, "at-limit", OCI_MANIFEST, &at_limit)
        .await;
    assert_eq!(
        r.status, 201,
        "a manifest of exactly 4 MiB must be accepted: {r:?}"
    );
    fx.tags = vec!["at-limit".into(), "v1".into()];

    let over = padded(MANIFEST_LIMIT + 1);
    // With Content-Length (HTTP/2).
    let r = fx.api.put_manifest(REPO, "over", OCI_MANIFEST, &over).await;
    assert_error(&r, 413, &["SIZE_INVALID"], "4 MiB + 1 with Content-Length");
    // HTTP/2 stream without Content-Length.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = over
        .chunks(64 * 1024)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let r = fx
        .api
        .send(
            "PUT",
            &format!("/v2/{REPO}/manifests/over"),
            &[("Content-Type", OCI_MANIFEST)],
            reqwest::Body::wrap_stream(futures::stream::iter(chunks)),
        )
        .await;
    assert_error(
        &r,
        413,
        &["SIZE_INVALID"],
        "4 MiB + 1, HTTP/2 without Content-Length",
    );
    // HTTP/1.1 chunked transfer encoding.
    let mut chunked = Vec::new();
    for c in over.chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        chunked.extend_from_slice(c);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = fx
        .raw(
            "PUT",
            &format!("/v2/{REPO}/manifests/over"),
            &[
                ("Content-Type", OCI_MANIFEST),
                ("Transfer-Encoding", "chunked"),
            ],
            &chunked,
        )
        .await;
    assert_error(&r, 413, &["SIZE_INVALID"], "4 MiB + 1, HTTP/1.1 chunked");
    fx.assert_no_manifest("over", "oversized").await;
    fx.assert_no_manifest(&sha256_digest(&over), "oversized")
        .await;
    fx.assert_unchanged("oversized manifests").await;
}

/// A manifest PUT announcing far more than the limit is answered at once, without
/// waiting for (or asking for) the body: with or without `Expect: 100-continue`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_manifest_is_refused_without_waiting_for_the_body() {
    let fx = Fixture::start().await;
    let path = format!("/v2/{REPO}/manifests/huge");
    for expect in [false, true] {
        let mut headers = vec![
            ("Content-Type", OCI_MANIFEST),
            ("Content-Length", "1073741824"),
        ];
        if expect {
            headers.push(("Expect", "100-continue"));
        }
        let ctx = format!("Content-Length: 1 GiB, Expect: 100-continue: {expect}");
        let mut conn = RawConn::connect(fx.server.addr(), &fx.ca()).await;
        conn.send_head("PUT", &path, &headers)
            .await
            .expect("sending headers");
        let start = std::time::Instant::now();
        let first = conn
            .read_status(Duration::from_secs(15))
            .await
            .unwrap_or_else(|e| panic!("{ctx}: no answer: {e}"));
        let took = start.elapsed();
        assert_eq!(
            first, 413,
            "{ctx}: the first status line must be the 413 (not 100 Continue), after {took:?}"
        );
        assert!(
            took < Duration::from_secs(3),
            "{ctx}: the 413 came after {took:?} although the client sent no body"
        );
    }
    fx.assert_no_manifest("huge", "1 GiB announced").await;
    fx.assert_unchanged("1 GiB announced").await;
}
