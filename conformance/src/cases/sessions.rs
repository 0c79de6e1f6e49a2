//! Push, stale upload URLs: once a session is completed or cancelled, every method on
//! its URL (`GET`, `PATCH`, `PUT`, `DELETE`) answers 404 `BLOB_UPLOAD_UNKNOWN`.

use crate::check::{self, Step};
use crate::ctx::{Ctx, Recorder};
use crate::fixtures::Blob;
use crate::report::Category;
use imgflow::client::{Method, RawRequest};
use imgflow::oci::RepoName;

const CAT: Category = Category::Push;

/// Every method on the stale session URL `loc` must get 404 `BLOB_UPLOAD_UNKNOWN`.
async fn all_unknown(ctx: &Ctx, loc: &str) -> Step {
    let chunk = Blob::random(16);
    let requests = [
        RawRequest::new(Method::GET, loc),
        RawRequest::new(Method::PATCH, loc)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("0-{}", chunk.data.len() - 1))
            .body(chunk.data.clone()),
        RawRequest::new(Method::PUT, loc)
            .query("digest", chunk.digest.as_str())
            .header("Content-Type", "application/octet-stream")
            .body(chunk.data.clone()),
        RawRequest::new(Method::DELETE, loc),
    ];
    for req in requests {
        let r = ctx.send(req).await?;
        check::error(&r, 404, "BLOB_UPLOAD_UNKNOWN")?;
    }
    Ok(())
}

/// `POST` a session: its resolved `Location`.
async fn open(ctx: &Ctx, repo: &RepoName) -> Step<String> {
    let r = ctx.start_upload(repo).await?;
    check::status(&r, &[202])?;
    check::location(&r)
}

/// Run the stale session cases.
pub async fn run(ctx: &Ctx, rec: &mut Recorder) {
    let repo = ctx.repo("sessions");
    rec.case("push/upload/stale-after-complete-404", CAT, async {
        let blob = Blob::random(256);
        let loc = open(ctx, &repo).await?;
        let r = ctx
            .send(
                RawRequest::new(Method::PUT, loc.clone())
                    .query("digest", blob.digest.as_str())
                    .header("Content-Type", "application/octet-stream")
                    .body(blob.data.clone()),
            )
            .await?;
        check::status(&r, &[201])?;
        all_unknown(ctx, &loc).await
    })
    .await;
    rec.case("push/upload/stale-after-cancel-404", CAT, async {
        let loc = open(ctx, &repo).await?;
        let d = ctx.delete(loc.clone()).await?;
        // 204 is a SHOULD (push/upload/cancel-204); any success will do here.
        check::status(&d, &[200, 202, 204])?;
        all_unknown(ctx, &loc).await
    })
    .await;
}
