//! Content management: deleting a tag only, a manifest by digest, a blob, and what
//! the registry serves afterwards.

use crate::check::{self, need, Step};
use crate::ctx::{Ctx, Recorder};
use crate::fixtures::{simple_image, unknown_digest, Blob, Doc, ManifestBuilder};
use crate::report::Category;
use imgflow::client::RawResponse;
use imgflow::oci::{self, RepoName};
use serde_json::Value;

const CAT: Category = Category::Management;

struct Fixture {
    repo: RepoName,
    kept: Doc,
    deleted: Doc,
    blob: Blob,
    referrer: Doc,
}

async fn setup(ctx: &Ctx) -> Step<Fixture> {
    let repo = ctx.repo("management");
    let config = Blob::config(&ctx.run_id, "management");
    let layer = Blob::random(300);
    let blob = Blob::random(400);
    let empty = Blob::empty_json();
    ctx.push_blobs(&repo, &[&config, &layer, &blob, &empty])
        .await?;
    let kept = simple_image(&config, &[&layer], "kept");
    ctx.push_doc(&repo, &kept, Some("keep")).await?;
    ctx.push_doc(&repo, &kept, Some("drop")).await?;
    let deleted = simple_image(&config, &[&layer], "deleted");
    ctx.push_doc(&repo, &deleted, Some("gone")).await?;
    let referrer = ManifestBuilder::image(empty.descriptor(oci::OCI_EMPTY), vec![])
        .artifact_type("application/vnd.conformance.note")
        .subject(kept.descriptor())
        .build();
    ctx.push_doc(&repo, &referrer, None).await?;
    Ok(Fixture {
        repo,
        kept,
        deleted,
        blob,
        referrer,
    })
}

/// A 400 (`UNSUPPORTED`) or 405 answer to a DELETE means deletion is disabled, which
/// the spec permits: the case is skipped. Otherwise the status must be 202.
fn deleted_or_disabled(r: &RawResponse, what: &str) -> Step {
    let unsupported =
        r.status.as_u16() == 400 && r.oci_errors().iter().any(|e| e.code == "UNSUPPORTED");
    if unsupported || r.status.as_u16() == 405 {
        return Err(check::skip(format!(
            "{what} deletion is disabled on this registry ({}), which the spec permits",
            check::actual(r)
        )));
    }
    check::status(r, &[202])
}

async fn tags_of(ctx: &Ctx, repo: &RepoName) -> Step<(Vec<String>, RawResponse)> {
    let r = ctx.get(format!("/v2/{repo}/tags/list")).await?;
    check::status(&r, &[200])?;
    let body = check::json(&r)?;
    let tags = body
        .get("tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok((tags, r))
}

/// Run the content management cases.
pub async fn run(ctx: &Ctx, rec: &mut Recorder) {
    let fx = setup(ctx).await;
    rec.case("management/setup", CAT, async {
        need(&fx, "setup").map(|_| ())
    })
    .await;
    rec.case("management/tag/delete-202", CAT, async {
        let f = need(&fx, "setup")?;
        let r = ctx.delete(format!("/v2/{}/manifests/drop", f.repo)).await?;
        deleted_or_disabled(&r, "tag")?;
        let g = ctx.get(format!("/v2/{}/manifests/drop", f.repo)).await?;
        check::error(&g, 404, "MANIFEST_UNKNOWN")?;
        for reference in [f.kept.digest.to_string(), "keep".to_string()] {
            let k = ctx
                .get(format!("/v2/{}/manifests/{reference}", f.repo))
                .await?;
            check::status(&k, &[200])?;
            check::body_eq(&k, &f.kept.body)?;
        }
        let (tags, t) = tags_of(ctx, &f.repo).await?;
        let ok = tags.iter().any(|t| t == "keep") && !tags.iter().any(|t| t == "drop");
        check::ensure(
            ok,
            &t,
            "tags with keep and without drop",
            format!("{tags:?}"),
        )
    })
    .await;
    rec.case("management/manifest/delete-by-digest-202", CAT, async {
        let f = need(&fx, "setup")?;
        let r = ctx
            .delete(format!("/v2/{}/manifests/{}", f.repo, f.deleted.digest))
            .await?;
        deleted_or_disabled(&r, "manifest")?;
        for reference in [f.deleted.digest.to_string(), "gone".to_string()] {
            let g = ctx
                .get(format!("/v2/{}/manifests/{reference}", f.repo))
                .await?;
            check::error(&g, 404, "MANIFEST_UNKNOWN")?;
        }
        let (tags, t) = tags_of(ctx, &f.repo).await?;
        let ok = !tags.iter().any(|t| t == "gone");
        check::ensure(ok, &t, "tags without gone", format!("{tags:?}"))
    })
    .await;
    rec.case("management/manifest/delete-unknown-404", CAT, async {
        let f = need(&fx, "setup")?;
        let r = ctx
            .delete(format!("/v2/{}/manifests/{}", f.repo, unknown_digest()))
            .await?;
        check::error(&r, 404, "MANIFEST_UNKNOWN")
    })
    .await;
    rec.case("management/blob/delete-202", CAT, async {
        let f = need(&fx, "setup")?;
        let target = format!("/v2/{}/blobs/{}", f.repo, f.blob.digest);
        let r = ctx.delete(target.clone()).await?;
        deleted_or_disabled(&r, "blob")?;
        let g = ctx.get(target.clone()).await?;
        check::error(&g, 404, "BLOB_UNKNOWN")?;
        let h = ctx.head(target).await?;
        check::status(&h, &[404])
    })
    .await;
    rec.case("management/blob/delete-unknown-404", CAT, async {
        let f = need(&fx, "setup")?;
        let r = ctx
            .delete(format!("/v2/{}/blobs/{}", f.repo, unknown_digest()))
            .await?;
        check::error(&r, 404, "BLOB_UNKNOWN")
    })
    .await;
    rec.case("management/referrers/delete-updates-list", CAT, async {
        let f = need(&fx, "setup")?;
        let listing = format!("/v2/{}/referrers/{}", f.repo, f.kept.digest);
        let before = ctx.get(listing.clone()).await?;
        check::status(&before, &[200])?;
        let has = |r: &RawResponse| r.body_text().contains(f.referrer.digest.as_str());
        check::ensure(
            has(&before),
            &before,
            format!("{} listed", f.referrer.digest),
            before.body_text(),
        )?;
        let d = ctx
            .delete(format!("/v2/{}/manifests/{}", f.repo, f.referrer.digest))
            .await?;
        check::status(&d, &[202])?;
        let after = ctx.get(listing).await?;
        check::status(&after, &[200])?;
        check::ensure(
            !has(&after),
            &after,
            format!("{} no longer listed", f.referrer.digest),
            after.body_text(),
        )
    })
    .await;
}
