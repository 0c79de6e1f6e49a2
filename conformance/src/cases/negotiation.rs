//! Pull, content negotiation: which `Accept` values get a stored OCI image manifest.
//!
//! The spec's content-negotiation section is still a draft, so these cases are SHOULD
//! (HTTP semantics: an acceptable stored type is served as itself) and MAY (refusing a
//! client that names only other manifest types, as Distribution does).

use crate::check::{self, need, Step};
use crate::ctx::{Ctx, Recorder};
use crate::fixtures::{simple_image, Blob, Doc};
use crate::report::{Category, Level};
use imgflow::client::{Method, RawRequest, RawResponse, CONTENT_DIGEST_HEADER};
use imgflow::oci::{self, RepoName};

const CAT: Category = Category::Pull;
const TAG: &str = "accept";

struct Fixture {
    repo: RepoName,
    doc: Doc,
}

async fn setup(ctx: &Ctx) -> Step<Fixture> {
    let repo = ctx.repo("accept");
    let config = Blob::config(&ctx.run_id, "accept");
    ctx.push_blob(&repo, &config).await?;
    let doc = simple_image(&config, &[], "accept");
    ctx.push_doc(&repo, &doc, Some(TAG)).await?;
    Ok(Fixture { repo, doc })
}

/// `GET` the fixture's tag with one `Accept` field per entry of `accept`.
async fn get(ctx: &Ctx, f: &Fixture, accept: &[&str]) -> Step<RawResponse> {
    let mut req = RawRequest::new(Method::GET, format!("/v2/{}/manifests/{TAG}", f.repo));
    for a in accept {
        req = req.header("Accept", *a);
    }
    ctx.send(req).await
}

/// The stored manifest, as stored: 200, its type, digest and bytes.
fn served(r: &RawResponse, f: &Fixture) -> Step {
    check::status(r, &[200])?;
    check::header_eq(r, "Content-Type", f.doc.media_type)?;
    check::header_eq_if_present(r, CONTENT_DIGEST_HEADER, f.doc.digest.as_str())?;
    check::body_eq(r, &f.doc.body)
}

/// Run the content negotiation cases.
pub async fn run(ctx: &Ctx, rec: &mut Recorder) {
    let fx = setup(ctx).await;
    rec.case("pull/accept/setup", CAT, async {
        need(&fx, "setup").map(|_| ())
    })
    .await;
    rec.case_at(Level::Should, "pull/accept/any-200", CAT, async {
        let f = need(&fx, "setup")?;
        served(&get(ctx, f, &["*/*"]).await?, f)
    })
    .await;
    rec.case_at(Level::Should, "pull/accept/several-types-200", CAT, async {
        // Several types in one field (with weights), and the same spread over fields.
        let f = need(&fx, "setup")?;
        let listed = format!(
            "{}, {};q=0.9, {};q=0.5",
            oci::DOCKER_MANIFEST,
            oci::OCI_INDEX,
            oci::OCI_MANIFEST
        );
        served(&get(ctx, f, &[&listed]).await?, f)?;
        let fields = [oci::DOCKER_MANIFEST_LIST, oci::OCI_MANIFEST, oci::OCI_INDEX];
        served(&get(ctx, f, &fields).await?, f)
    })
    .await;
    rec.case_at(Level::May, "pull/accept/excluded-type-404", CAT, async {
        // A client naming only Docker types cannot use an OCI manifest: Distribution
        // answers 404 MANIFEST_UNKNOWN; 406 Not Acceptable is the plain HTTP answer.
        let f = need(&fx, "setup")?;
        let r = get(ctx, f, &[oci::DOCKER_MANIFEST, oci::DOCKER_MANIFEST_LIST]).await?;
        if r.status.as_u16() == 406 {
            return Ok(());
        }
        check::error(&r, 404, "MANIFEST_UNKNOWN")
    })
    .await;
}
