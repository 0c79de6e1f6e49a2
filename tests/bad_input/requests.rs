//! Request targets: repository names, upload session ids and methods.

use crate::common::oci_api::{assert_error, image_manifest, OCI_MANIFEST};
use crate::common::{pseudo_random_bytes, sha256_digest};
use crate::{assert_head_error, Fixture, REPO};

/// Repository names that must be refused, as they appear in the raw request path.
fn bad_names() -> Vec<String> {
    vec![
        "Bad/input".into(),
        "bad/INPUT".into(),
        "../etc".into(),
        "bad/../input".into(),
        "bad/input/..".into(),
        "%2e%2e/etc".into(),
        "bad/%2E%2E".into(),
        "bad//input".into(),
        "/bad/input".into(),
        "bad/input/".into(),
        "a".repeat(256),
        format!("{}/b", "a".repeat(254)),
        "bad%00input".into(),
        "%00".into(),
        "bad%2finput".into(),
        "-bad".into(),
        "bad-".into(),
        "bad___input".into(),
        "bad..input".into(),
        ".bad".into(),
        "b%C3%A4d".into(),
        "bad%20input".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_names_are_name_invalid() {
    let fx = Fixture::start().await;
    let blob = fx.config_digest.clone();
    for name in bad_names() {
        let ctx = |what: &str| format!("{what} in {name:?}");
        for (method, path, body) in [
            ("GET", format!("/v2/{name}/tags/list"), Vec::new()),
            ("GET", format!("/v2/{name}/manifests/v1"), Vec::new()),
            (
                "PUT",
                format!("/v2/{name}/manifests/v1"),
                fx.manifest.clone(),
            ),
            ("DELETE", format!("/v2/{name}/manifests/v1"), Vec::new()),
            ("GET", format!("/v2/{name}/blobs/{blob}"), Vec::new()),
            ("POST", format!("/v2/{name}/blobs/uploads/"), Vec::new()),
            (
                "POST",
                format!("/v2/{name}/blobs/uploads/?digest={}", sha256_digest(b"n")),
                b"n".to_vec(),
            ),
            (
                "POST",
                format!("/v2/{name}/blobs/uploads/?mount={blob}&from={REPO}"),
                Vec::new(),
            ),
            ("GET", format!("/v2/{name}/referrers/{blob}"), Vec::new()),
        ] {
            let r = fx
                .raw(method, &path, &[("Content-Type", OCI_MANIFEST)], &body)
                .await;
            assert_error(
                &r,
                400,
                &["NAME_INVALID"],
                &ctx(&format!("{method} {path}")),
            );
        }
        let r = fx
            .raw("HEAD", &format!("/v2/{name}/blobs/{blob}"), &[], b"")
            .await;
        assert_head_error(&r, 400, &ctx("HEAD blob"));
        // A bad name in mount's from= is refused too (query values are percent-decoded,
        // so an encoded slash there is a valid name).
        if name.contains("%2f") {
            continue;
        }
        let r = fx
            .raw(
                "POST",
                &format!("/v2/{REPO}/blobs/uploads/?mount={blob}&from={name}"),
                &[],
                b"",
            )
            .await;
        assert_error(&r, 400, &["NAME_INVALID"], &ctx("mount from="));
    }
    fx.assert_unchanged("invalid names").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_of_255_characters_is_accepted() {
    let mut fx = Fixture::start().await;
    let name = format!("{}/{}", "a".repeat(127), "b".repeat(127));
    assert_eq!(name.len(), 255);
    let r = fx.api.get(&format!("/v2/{name}/tags/list")).await;
    assert_error(
        &r,
        404,
        &["NAME_UNKNOWN"],
        "tags of an empty 255-character name",
    );
    let config = br#"{"long":"name"}"#;
    let digest = fx.api.push_blob(&name, config).await;
    fx.api
        .assert_blob(&name, &digest, config, "255-character name")
        .await;
    let manifest = image_manifest((&digest, config.len()), &[]);
    let r = fx
        .api
        .put_manifest(&name, "latest", OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(r.status, 201, "manifest in a 255-character name: {r:?}");
    assert_eq!(fx.api.tags(&name).await, vec!["latest".to_string()]);
    fx.blobs.push(digest);
    fx.blobs.sort();
    fx.repos.push(name);
    fx.assert_unchanged("255-character name").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_or_garbage_upload_ids_are_unknown() {
    let fx = Fixture::start().await;
    let data = pseudo_random_bytes(2000, 31);
    let digest = sha256_digest(&data);
    let loc = fx.session_with(&data[..1000]).await;
    let id = loc.rsplit('/').next().expect("session id").to_string();

    // The right id under another repository (existing or not).
    let mut ids: Vec<(String, String)> = ["other/repo", "bad", "bad/input/sub"]
        .iter()
        .map(|repo| (repo.to_string(), id.clone()))
        .collect();
    // Garbage ids under the right repository.
    for garbage in [
        "garbage".to_string(),
        "00000000-0000-0000-0000-000000000000".into(),
        "3f1c1a52-7d2b-4c3e-9a55-0d6f2b8e4c11".into(),
        id.to_uppercase(),
        format!("{id}x"),
        format!("{id}%00"),
        "..".into(),
        "%2e%2e".into(),
        "..%2f..%2fmetadata.db".into(),
        "metadata.db".into(),
        "x".repeat(5000),
    ] {
        ids.push((REPO.to_string(), garbage));
    }
    for (repo, uid) in &ids {
        let path = format!("/v2/{repo}/blobs/uploads/{uid}");
        let short: String = path.chars().take(120).collect();
        for (method, target, body) in [
            ("GET", path.clone(), Vec::new()),
            ("PATCH", path.clone(), data[1000..].to_vec()),
            (
                "PUT",
                format!("{path}?digest={digest}"),
                data[1000..].to_vec(),
            ),
            ("DELETE", path.clone(), Vec::new()),
        ] {
            let r = fx.raw(method, &target, &[], &body).await;
            assert_error(
                &r,
                404,
                &["BLOB_UPLOAD_UNKNOWN"],
                &format!("{method} {short}"),
            );
        }
    }
    fx.assert_offset(&loc, 1000, "after foreign ids").await;
    fx.assert_no_blob(&digest, "after foreign ids").await;

    // Finished and cancelled sessions are unknown afterwards.
    let r = fx.api.finish(&loc, &digest, &data[1000..]).await;
    assert_eq!(r.status, 201, "the real session completes: {r:?}");
    let r = fx.api.get(&loc).await;
    assert_error(&r, 404, &["BLOB_UPLOAD_UNKNOWN"], "GET a finished session");
    let cancelled = fx.session_with(b"to be cancelled").await;
    let r = fx.api.send("DELETE", &cancelled, &[], Vec::new()).await;
    assert_eq!(r.status, 204, "DELETE session: {r:?}");
    let r = fx.api.patch(&cancelled, 15, b"more").await;
    assert_error(
        &r,
        404,
        &["BLOB_UPLOAD_UNKNOWN"],
        "PATCH a cancelled session",
    );
    let mut fx = fx;
    fx.blobs.push(digest);
    fx.blobs.sort();
    fx.assert_unchanged("upload ids").await;
}

/// Method and path pairs no endpoint defines.
fn unsupported(digest: &str) -> Vec<(&'static str, String)> {
    let r = REPO;
    vec![
        ("PATCH", "/v2/".into()),
        ("POST", "/v2/".into()),
        ("PUT", "/v2/".into()),
        ("DELETE", "/v2/".into()),
        ("POST", "/v2/_catalog".into()),
        ("DELETE", "/v2/_catalog".into()),
        ("POST", format!("/v2/{r}/tags/list")),
        ("PUT", format!("/v2/{r}/tags/list")),
        ("DELETE", format!("/v2/{r}/tags/list")),
        ("POST", format!("/v2/{r}/manifests/v1")),
        ("PATCH", format!("/v2/{r}/manifests/v1")),
        ("PUT", format!("/v2/{r}/blobs/{digest}")),
        ("POST", format!("/v2/{r}/blobs/{digest}")),
        ("PATCH", format!("/v2/{r}/blobs/{digest}")),
        ("PUT", format!("/v2/{r}/blobs/uploads/")),
        ("PATCH", format!("/v2/{r}/blobs/uploads/")),
        ("DELETE", format!("/v2/{r}/blobs/uploads/")),
        ("POST", format!("/v2/{r}/referrers/{digest}")),
        ("DELETE", format!("/v2/{r}/referrers/{digest}")),
        ("FOO", "/v2/".into()),
        ("BREW", format!("/v2/{r}/manifests/v1")),
        ("PROPFIND", format!("/v2/{r}/blobs/{digest}")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_methods_are_405() {
    let fx = Fixture::start().await;
    let digest = fx.layer_digest.clone();
    for (method, path) in unsupported(&digest) {
        // HTTP/1.1 (raw) and HTTP/2 (reqwest).
        let r = fx.raw(method, &path, &[], b"").await;
        assert_error(&r, 405, &["UNSUPPORTED"], &format!("h1 {method} {path}"));
        let r = fx.api.send(method, &path, &[], Vec::new()).await;
        assert_error(&r, 405, &["UNSUPPORTED"], &format!("h2 {method} {path}"));
    }
    fx.api
        .assert_blob(REPO, &digest, &pseudo_random_bytes(3000, 7), "after 405s")
        .await;
    fx.assert_unchanged("unsupported methods").await;
}

/// RFC 9110 §15.5.6: a 405 response MUST carry an `Allow` header listing the methods
/// the target resource supports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_not_allowed_lists_allowed_methods() {
    let fx = Fixture::start().await;
    let digest = fx.layer_digest.clone();
    for (method, path, must_allow) in [
        ("PATCH", "/v2/".to_string(), "GET"),
        ("PUT", format!("/v2/{REPO}/blobs/{digest}"), "GET"),
        ("POST", format!("/v2/{REPO}/manifests/v1"), "PUT"),
        ("DELETE", format!("/v2/{REPO}/tags/list"), "GET"),
    ] {
        let r = fx.api.send(method, &path, &[], Vec::new()).await;
        assert_eq!(r.status, 405, "{method} {path}");
        let allow = r.header("allow").unwrap_or_else(|| {
            panic!("{method} {path}: 405 without an Allow header (RFC 9110 §15.5.6): {r:?}")
        });
        assert!(
            allow.split(',').any(|m| m.trim() == must_allow),
            "{method} {path}: Allow {allow:?} lacks {must_allow}"
        );
    }
}
