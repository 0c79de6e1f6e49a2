//! Push, blobs: monolithic (single POST, POST then PUT), streamed, zero-byte and SHA-512
//! blobs, digest errors, cancellation, cross-repository mounts, invalid names.

use crate::check::{self, Step};
use crate::ctx::{Ctx, Recorder};
use crate::fixtures::{unknown_digest, Blob};
use crate::report::{Category, Level};
use imgflow::client::{Method, RawRequest, RawResponse};
use imgflow::oci::{Algorithm, RepoName};

const CAT: Category = Category::Push;
/// A body large enough that a registry refusing early has not read it yet.
const LARGE_BODY: usize = 4 * 1024 * 1024;
/// Attempts of the early-answer cases.
const EARLY_ANSWER_TRIES: usize = 5;

/// `POST` a session and return the response and its resolved `Location`.
async fn open(ctx: &Ctx, repo: &RepoName) -> Step<(RawResponse, String)> {
    let r = ctx.start_upload(repo).await?;
    check::status(&r, &[202])?;
    let loc = check::location(&r)?;
    Ok((r, loc))
}

/// `PUT <loc>?digest=` with `data` as the whole blob.
async fn put_blob(ctx: &Ctx, loc: &str, digest: &str, data: &[u8]) -> Step<RawResponse> {
    ctx.send(
        RawRequest::new(Method::PUT, loc)
            .query("digest", digest)
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec()),
    )
    .await
}

/// The blob must be served by `GET /v2/<repo>/blobs/<digest>` with exactly its bytes.
pub async fn blob_is_served(ctx: &Ctx, repo: &RepoName, blob: &Blob) -> Step {
    let r = ctx.get(format!("/v2/{repo}/blobs/{}", blob.digest)).await?;
    check::status(&r, &[200])?;
    check::body_eq(&r, &blob.data)
}

/// Check a 201 response completing an upload of `blob`.
fn created(r: &RawResponse, blob: &Blob) -> Step {
    check::status(r, &[201])?;
    check::location(r)?;
    check::content_digest(r, &blob.digest)
}

/// Run the blob push cases.
pub async fn run(ctx: &Ctx, rec: &mut Recorder) {
    let repo = ctx.repo("push");
    monolithic(ctx, rec, &repo).await;
    errors(ctx, rec, &repo).await;
    mounts(ctx, rec).await;
    names(ctx, rec).await;
}

async fn monolithic(ctx: &Ctx, rec: &mut Recorder, repo: &RepoName) {
    rec.case("push/blob/post-then-put-201", CAT, async {
        let blob = Blob::random(1500);
        let (_, loc) = open(ctx, repo).await?;
        let r = put_blob(ctx, &loc, blob.digest.as_str(), &blob.data).await?;
        created(&r, &blob)?;
        blob_is_served(ctx, repo, &blob).await
    })
    .await;
    rec.case("push/blob/single-post", CAT, async {
        let blob = Blob::random(1200);
        let r = ctx
            .send(
                RawRequest::new(Method::POST, format!("/v2/{repo}/blobs/uploads/"))
                    .query("digest", blob.digest.as_str())
                    .header("Content-Type", "application/octet-stream")
                    .body(blob.data.clone()),
            )
            .await?;
        check::status(&r, &[201, 202])?;
        let loc = check::location(&r)?;
        if r.status.as_u16() == 201 {
            return blob_is_served(ctx, repo, &blob).await;
        }
        // 202: the registry opened a session instead; the blob must not exist yet,
        // and the session must accept the blob.
        let g = ctx.get(format!("/v2/{repo}/blobs/{}", blob.digest)).await?;
        check::status(&g, &[404])?;
        let p = put_blob(ctx, &loc, blob.digest.as_str(), &blob.data).await?;
        created(&p, &blob)?;
        blob_is_served(ctx, repo, &blob).await
    })
    .await;
    rec.case("push/blob/streamed-patch-202", CAT, async {
        let blob = Blob::random(4000);
        let (_, loc) = open(ctx, repo).await?;
        let r = ctx
            .send(
                RawRequest::new(Method::PATCH, loc)
                    .header("Content-Type", "application/octet-stream")
                    .body(blob.data.clone()),
            )
            .await?;
        check::status(&r, &[202])?;
        let loc = check::location(&r)?;
        let p = ctx
            .send(RawRequest::new(Method::PUT, loc).query("digest", blob.digest.as_str()))
            .await?;
        created(&p, &blob)?;
        blob_is_served(ctx, repo, &blob).await
    })
    .await;
    rec.case("push/blob/zero-byte-201", CAT, async {
        let blob = Blob::new(Vec::new());
        let (_, loc) = open(ctx, repo).await?;
        let r = put_blob(ctx, &loc, blob.digest.as_str(), &[]).await?;
        created(&r, &blob)?;
        let h = ctx
            .head(format!("/v2/{repo}/blobs/{}", blob.digest))
            .await?;
        check::status(&h, &[200])?;
        check::header_eq(&h, "Content-Length", "0")?;
        blob_is_served(ctx, repo, &blob).await
    })
    .await;
    rec.case("push/blob/sha512-201", CAT, async {
        let blob = Blob::with(Algorithm::Sha512, Blob::random(700).data);
        let (_, loc) = open(ctx, repo).await?;
        let r = put_blob(ctx, &loc, blob.digest.as_str(), &blob.data).await?;
        created(&r, &blob)?;
        blob_is_served(ctx, repo, &blob).await
    })
    .await;
    rec.case("push/blob/client-streamed-roundtrip", CAT, async {
        let blob = Blob::random(70_000);
        let reader = std::io::Cursor::new(blob.data.clone());
        let pushed = ctx
            .client
            .push_blob_streamed(repo, reader, &Default::default())
            .await
            .map_err(|e| check::fail(format!("client push_blob_streamed: {e}")))?;
        ctx.pushed_blob(repo, &pushed.digest);
        if pushed.digest != blob.digest {
            return Err(check::fail(format!(
                "client computed {}, expected {}",
                pushed.digest, blob.digest
            )));
        }
        blob_is_served(ctx, repo, &blob).await
    })
    .await;
}

async fn errors(ctx: &Ctx, rec: &mut Recorder, repo: &RepoName) {
    rec.case("push/blob/digest-mismatch-400", CAT, async {
        let blob = Blob::random(300);
        let other = unknown_digest();
        let (_, loc) = open(ctx, repo).await?;
        let r = put_blob(ctx, &loc, other.as_str(), &blob.data).await?;
        check::error(&r, 400, "DIGEST_INVALID")?;
        let g = ctx.get(format!("/v2/{repo}/blobs/{other}")).await?;
        check::status(&g, &[404])
    })
    .await;
    rec.case("push/blob/malformed-digest-400", CAT, async {
        let (_, loc) = open(ctx, repo).await?;
        let r = put_blob(ctx, &loc, "sha256:not-a-hex-digest", b"abc").await?;
        check::error(&r, 400, "DIGEST_INVALID")
    })
    .await;
    rec.case_at(Level::Should, "push/upload/cancel-204", CAT, async {
        let (_, loc) = open(ctx, repo).await?;
        let d = ctx.delete(loc.clone()).await?;
        check::status(&d, &[204])?;
        let g = ctx.get(loc).await?;
        check::error(&g, 404, "BLOB_UPLOAD_UNKNOWN")
    })
    .await;
    // A registry must answer even when it refuses a request before reading its body:
    // a client still sending a large chunk to a dead session must get the 404, not a
    // reset connection. Losing the answer is a race, so the request is repeated.
    for (id, method) in [
        ("push/upload/cancelled-put-with-body-404", Method::PUT),
        ("push/upload/cancelled-patch-with-body-404", Method::PATCH),
    ] {
        rec.case(id, CAT, async {
            let blob = Blob::random(LARGE_BODY);
            for _ in 0..EARLY_ANSWER_TRIES {
                let (_, loc) = open(ctx, repo).await?;
                let d = ctx.delete(loc.clone()).await?;
                check::status(&d, &[204])?;
                let mut req = RawRequest::new(method.clone(), loc)
                    .header("Content-Type", "application/octet-stream")
                    .body(blob.data.clone());
                req = if method == Method::PUT {
                    req.query("digest", blob.digest.as_str())
                } else {
                    req.header("Content-Range", format!("0-{}", LARGE_BODY - 1))
                };
                let r = ctx.send(req).await?;
                check::error(&r, 404, "BLOB_UPLOAD_UNKNOWN")?;
            }
            Ok(())
        })
        .await;
    }
    rec.case("push/upload/unknown-session-404", CAT, async {
        let r = ctx
            .get(format!(
                "/v2/{repo}/blobs/uploads/{}",
                unknown_digest().hex()
            ))
            .await?;
        check::error(&r, 404, "BLOB_UPLOAD_UNKNOWN")
    })
    .await;
}

async fn mounts(ctx: &Ctx, rec: &mut Recorder) {
    let source = &ctx.mount_source;
    let target = ctx.repo("mount-target");
    let blob = Blob::random(900);
    let setup = ctx.push_blob(source, &blob).await;
    rec.case("push/mount/setup", CAT, async { setup.clone() })
        .await;
    rec.case_at(Level::May, "push/mount/from-201", CAT, async {
        check::need(&setup, "push/mount/setup")?;
        let r = ctx
            .send(
                RawRequest::new(Method::POST, format!("/v2/{target}/blobs/uploads/"))
                    .query("mount", blob.digest.as_str())
                    .query("from", source.as_str()),
            )
            .await?;
        check::status(&r, &[201])?;
        let loc = check::location(&r)?;
        let want = format!("/v2/{target}/blobs/{}", blob.digest);
        check::ensure(
            loc.ends_with(&want),
            &r,
            format!("Location ending in {want}"),
            &loc,
        )?;
        check::content_digest(&r, &blob.digest)?;
        blob_is_served(ctx, &target, &blob).await
    })
    .await;
    rec.case_at(Level::Should, "push/mount/missing-blob-202", CAT, async {
        check::need(&setup, "push/mount/setup")?;
        let r = ctx
            .send(
                RawRequest::new(Method::POST, format!("/v2/{target}/blobs/uploads/"))
                    .query("mount", unknown_digest().as_str())
                    .query("from", source.as_str()),
            )
            .await?;
        session_started(&r, &target)
    })
    .await;
    rec.case_at(Level::Should, "push/mount/without-from-202", CAT, async {
        let r = ctx
            .send(
                RawRequest::new(Method::POST, format!("/v2/{target}/blobs/uploads/"))
                    .query("mount", unknown_digest().as_str()),
            )
            .await?;
        session_started(&r, &target)
    })
    .await;
}

/// A 202 whose `Location` is an upload session of `repo`.
fn session_started(r: &RawResponse, repo: &RepoName) -> Step {
    check::status(r, &[202])?;
    let loc = check::location(r)?;
    let prefix = format!("/v2/{repo}/blobs/uploads/");
    check::ensure(
        loc.contains(&prefix),
        r,
        format!("Location of an upload session under {prefix}"),
        &loc,
    )
}

async fn names(ctx: &Ctx, rec: &mut Recorder) {
    for (id, name) in [
        ("push/name/uppercase-400", format!("{}/Invalid", ctx.ns)),
        ("push/name/double-dot-400", format!("{}/a..b", ctx.ns)),
        (
            "push/name/trailing-separator-400",
            format!("{}/bad-", ctx.ns),
        ),
    ] {
        rec.case(id, CAT, async {
            let r = ctx
                .send(RawRequest::new(
                    Method::POST,
                    format!("/v2/{name}/blobs/uploads/"),
                ))
                .await?;
            check::error(&r, 400, "NAME_INVALID")
        })
        .await;
    }
    rec.case("push/name/manifest-uppercase-400", CAT, async {
        let r = ctx
            .send(
                RawRequest::new(Method::PUT, format!("/v2/{}/Upper/manifests/v1", ctx.ns))
                    .header("Content-Type", imgflow::oci::OCI_MANIFEST)
                    .body(b"{}".to_vec()),
            )
            .await?;
        check::error(&r, 400, "NAME_INVALID")
    })
    .await;
}
