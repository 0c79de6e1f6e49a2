//! Pull: the base endpoint, blobs and manifests by tag and digest, HEAD, 404s, ranges
//! (closed, open-ended, suffix; 416 for invalid and past-the-end ones).

use crate::check::{self, need, Step};
use crate::ctx::{Ctx, Recorder};
use crate::fixtures::{simple_image, unknown_digest, Blob, Doc};
use crate::report::{Category, Level};
use imgflow::client::{Method, RawRequest, RawResponse, API_VERSION_HEADER, CONTENT_DIGEST_HEADER};
use imgflow::oci::{self, RepoName};

const CAT: Category = Category::Pull;
const TAG: &str = "pull-v1";
/// Size of the pulled layer.
const LAYER_SIZE: usize = 2048;

struct Fixture {
    repo: RepoName,
    other: RepoName,
    layer: Blob,
    manifest: Doc,
}

async fn setup(ctx: &Ctx) -> Step<Fixture> {
    let repo = ctx.repo("pull");
    let config = Blob::config(&ctx.run_id, "pull");
    let layer = Blob::random(LAYER_SIZE);
    ctx.push_blobs(&repo, &[&config, &layer]).await?;
    let manifest = simple_image(&config, &[&layer], "pull");
    ctx.push_doc(&repo, &manifest, Some(TAG)).await?;
    // Another repository of the registry: content is not shared between repositories.
    let other = ctx.repo("pull-other");
    let other_config = Blob::config(&ctx.run_id, "pull-other");
    ctx.push_blob(&other, &other_config).await?;
    ctx.push_doc(
        &other,
        &simple_image(&other_config, &[], "pull-other"),
        Some(TAG),
    )
    .await?;
    Ok(Fixture {
        repo,
        other,
        layer,
        manifest,
    })
}

/// Run the pull cases.
pub async fn run(ctx: &Ctx, rec: &mut Recorder) {
    rec.case("pull/api/v2-200", CAT, async {
        let r = ctx.get("/v2/").await?;
        check::status(&r, &[200])
    })
    .await;
    rec.case("pull/api/version-header", CAT, async {
        let r = ctx.get("/v2/").await?;
        check::header_eq(&r, API_VERSION_HEADER, "registry/2.0")
    })
    .await;

    let fx = setup(ctx).await;
    rec.case("pull/setup", CAT, async { need(&fx, "setup").map(|_| ()) })
        .await;

    blob_cases(ctx, rec, &fx).await;
    manifest_cases(ctx, rec, &fx).await;

    rec.case("pull/repo/unknown-404", CAT, async {
        let r = ctx
            .get(format!("/v2/{}/never-pushed/manifests/latest", ctx.ns))
            .await?;
        check::status(&r, &[404])?;
        let codes = ["NAME_UNKNOWN", "MANIFEST_UNKNOWN"];
        let ok = r
            .oci_errors()
            .iter()
            .any(|e| codes.contains(&e.code.as_str()));
        check::ensure(
            ok,
            &r,
            "error code NAME_UNKNOWN or MANIFEST_UNKNOWN",
            check::actual(&r),
        )
    })
    .await;
}

/// `GET` the fixture's layer with `Range: range`.
async fn ranged(ctx: &Ctx, f: &Fixture, range: &str) -> Step<RawResponse> {
    ctx.send(
        RawRequest::new(
            Method::GET,
            format!("/v2/{}/blobs/{}", f.repo, f.layer.digest),
        )
        .header("Range", range),
    )
    .await
}

async fn blob_cases(ctx: &Ctx, rec: &mut Recorder, fx: &Step<Fixture>) {
    rec.case("pull/blob/head-200", CAT, async {
        let f = need(fx, "setup")?;
        let r = ctx
            .head(format!("/v2/{}/blobs/{}", f.repo, f.layer.digest))
            .await?;
        check::status(&r, &[200])?;
        check::header_eq(&r, "Content-Length", &f.layer.data.len().to_string())?;
        check::header_eq_if_present(&r, CONTENT_DIGEST_HEADER, f.layer.digest.as_str())?;
        check::ensure(r.body.is_empty(), &r, "no body", "a body")
    })
    .await;
    rec.case("pull/blob/head-404", CAT, async {
        let f = need(fx, "setup")?;
        let r = ctx
            .head(format!("/v2/{}/blobs/{}", f.repo, unknown_digest()))
            .await?;
        check::status(&r, &[404])
    })
    .await;
    rec.case("pull/blob/get-200", CAT, async {
        let f = need(fx, "setup")?;
        let r = ctx
            .get(format!("/v2/{}/blobs/{}", f.repo, f.layer.digest))
            .await?;
        check::status(&r, &[200])?;
        check::header_eq_if_present(&r, CONTENT_DIGEST_HEADER, f.layer.digest.as_str())?;
        check::body_eq(&r, &f.layer.data)
    })
    .await;
    rec.case("pull/blob/get-404", CAT, async {
        let f = need(fx, "setup")?;
        let r = ctx
            .get(format!("/v2/{}/blobs/{}", f.repo, unknown_digest()))
            .await?;
        check::error(&r, 404, "BLOB_UNKNOWN")
    })
    .await;
    rec.case("pull/blob/other-repo-404", CAT, async {
        let f = need(fx, "setup")?;
        let r = ctx
            .get(format!("/v2/{}/blobs/{}", f.other, f.layer.digest))
            .await?;
        check::error(&r, 404, "BLOB_UNKNOWN")
    })
    .await;
    rec.case_at(Level::Should, "pull/blob/range-206", CAT, async {
        let f = need(fx, "setup")?;
        let r = ctx
            .send(
                RawRequest::new(
                    Method::GET,
                    format!("/v2/{}/blobs/{}", f.repo, f.layer.digest),
                )
                .header("Range", "bytes=10-99"),
            )
            .await?;
        check::status(&r, &[206])?;
        let total = f.layer.data.len();
        check::header_eq(&r, "Content-Range", &format!("bytes 10-99/{total}"))?;
        check::body_eq(&r, &f.layer.data[10..100])
    })
    .await;
    rec.case_at(
        Level::Should,
        "pull/blob/range-open-ended-206",
        CAT,
        async {
            let f = need(fx, "setup")?;
            let total = f.layer.data.len();
            let start = total - 48;
            let r = ctx
                .send(
                    RawRequest::new(
                        Method::GET,
                        format!("/v2/{}/blobs/{}", f.repo, f.layer.digest),
                    )
                    .header("Range", format!("bytes={start}-")),
                )
                .await?;
            check::status(&r, &[206])?;
            let want = format!("bytes {start}-{}/{total}", total - 1);
            check::header_eq(&r, "Content-Range", &want)?;
            check::body_eq(&r, &f.layer.data[start..])
        },
    )
    .await;
    rec.case_at(Level::Should, "pull/blob/range-suffix-206", CAT, async {
        let f = need(fx, "setup")?;
        let total = f.layer.data.len();
        let r = ranged(ctx, f, "bytes=-100").await?;
        check::status(&r, &[206])?;
        let want = format!("bytes {}-{}/{total}", total - 100, total - 1);
        check::header_eq(&r, "Content-Range", &want)?;
        check::body_eq(&r, &f.layer.data[total - 100..])
    })
    .await;
    // RFC 9110: a range that is invalid (last byte before the first) or starts past the
    // end is not satisfiable: 416 with `Content-Range: bytes */<size>`.
    for (id, range) in [
        ("pull/blob/range-invalid-416", "bytes=500-0".to_string()),
        (
            "pull/blob/range-past-end-416",
            format!("bytes={}-", LAYER_SIZE + 10),
        ),
    ] {
        rec.case_at(Level::Should, id, CAT, async {
            let f = need(fx, "setup")?;
            let r = ranged(ctx, f, &range).await?;
            check::status(&r, &[416])?;
            check::header_eq(&r, "Content-Range", &format!("bytes */{LAYER_SIZE}"))
        })
        .await;
    }
    rec.case("pull/blob/client-get-verified", CAT, async {
        let f = need(fx, "setup")?;
        let data = ctx
            .client
            .get_blob(&f.repo, &f.layer.digest)
            .await
            .map_err(|e| check::fail(format!("client get_blob: {e}")))?;
        if data.as_ref() == f.layer.data.as_slice() {
            Ok(())
        } else {
            Err(check::fail("client get_blob returned other bytes"))
        }
    })
    .await;
}

async fn manifest_cases(ctx: &Ctx, rec: &mut Recorder, fx: &Step<Fixture>) {
    for (id, by_digest) in [
        ("pull/manifest/get-by-tag-200", false),
        ("pull/manifest/get-by-digest-200", true),
    ] {
        rec.case(id, CAT, async {
            let f = need(fx, "setup")?;
            let reference = if by_digest {
                f.manifest.digest.to_string()
            } else {
                TAG.to_string()
            };
            let r = ctx
                .send(
                    RawRequest::new(Method::GET, format!("/v2/{}/manifests/{reference}", f.repo))
                        .header("Accept", oci::OCI_MANIFEST),
                )
                .await?;
            check::status(&r, &[200])?;
            check::header_eq(&r, "Content-Type", oci::OCI_MANIFEST)?;
            check::header_eq_if_present(&r, CONTENT_DIGEST_HEADER, f.manifest.digest.as_str())?;
            check::body_eq(&r, &f.manifest.body)
        })
        .await;
    }
    for (id, by_digest) in [
        ("pull/manifest/head-by-tag-200", false),
        ("pull/manifest/head-by-digest-200", true),
    ] {
        rec.case(id, CAT, async {
            let f = need(fx, "setup")?;
            let reference = if by_digest {
                f.manifest.digest.to_string()
            } else {
                TAG.to_string()
            };
            let r = ctx
                .send(
                    RawRequest::new(
                        Method::HEAD,
                        format!("/v2/{}/manifests/{reference}", f.repo),
                    )
                    .header("Accept", oci::OCI_MANIFEST),
                )
                .await?;
            check::status(&r, &[200])?;
            check::header_eq(&r, CONTENT_DIGEST_HEADER, f.manifest.digest.as_str())?;
            check::header_eq(&r, "Content-Length", &f.manifest.body.len().to_string())?;
            check::ensure(r.body.is_empty(), &r, "no body", "a body")
        })
        .await;
    }
    rec.case("pull/manifest/get-unknown-tag-404", CAT, async {
        let f = need(fx, "setup")?;
        let r = ctx
            .get(format!("/v2/{}/manifests/no-such-tag", f.repo))
            .await?;
        check::error(&r, 404, "MANIFEST_UNKNOWN")
    })
    .await;
    rec.case("pull/manifest/get-unknown-digest-404", CAT, async {
        let f = need(fx, "setup")?;
        let r = ctx
            .get(format!("/v2/{}/manifests/{}", f.repo, unknown_digest()))
            .await?;
        check::error(&r, 404, "MANIFEST_UNKNOWN")
    })
    .await;
    rec.case("pull/manifest/other-repo-404", CAT, async {
        let f = need(fx, "setup")?;
        let r = ctx
            .get(format!("/v2/{}/manifests/{}", f.other, f.manifest.digest))
            .await?;
        check::error(&r, 404, "MANIFEST_UNKNOWN")
    })
    .await;
    rec.case("pull/manifest/head-unknown-404", CAT, async {
        let f = need(fx, "setup")?;
        let r = ctx
            .head(format!("/v2/{}/manifests/no-such-tag", f.repo))
            .await?;
        check::status(&r, &[404])
    })
    .await;
}
