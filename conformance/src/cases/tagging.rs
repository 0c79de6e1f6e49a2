//! Push, manifest references: re-pointing a tag, `?tag=` on a push by digest (several
//! tags, `OCI-Tag`), SHA-512 manifest digests, and manifests without a `mediaType` field
//! whose type must come from their content.

use crate::check::{self, need, Step};
use crate::ctx::{Ctx, Recorder};
use crate::fixtures::{simple_image, Blob, Doc, ManifestBuilder, DOCKER_PULL_ACCEPT};
use crate::report::{Category, Level};
use imgflow::client::{Method, RawRequest, RawResponse, CONTENT_DIGEST_HEADER};
use imgflow::oci::{self, Algorithm, Digest, RepoName};
use std::collections::BTreeSet;

const CAT: Category = Category::Push;
/// The response header naming the tags a push by digest accepted.
const OCI_TAG: &str = "OCI-Tag";

struct Fixture {
    repo: RepoName,
    config: Blob,
    layer: Blob,
}

async fn setup(ctx: &Ctx) -> Step<Fixture> {
    let repo = ctx.repo("tagging");
    let config = Blob::config(&ctx.run_id, "tagging");
    let layer = Blob::random(512);
    ctx.push_blobs(&repo, &[&config, &layer]).await?;
    Ok(Fixture {
        repo,
        config,
        layer,
    })
}

/// `PUT /v2/<repo>/manifests/<reference>?tag=...` with `content_type` (none when `None`).
async fn put(
    ctx: &Ctx,
    repo: &RepoName,
    reference: &str,
    tags: &[&str],
    content_type: Option<&str>,
    body: &[u8],
) -> Step<RawResponse> {
    let mut req = RawRequest::new(Method::PUT, format!("/v2/{repo}/manifests/{reference}"))
        .body(body.to_vec());
    for t in tags {
        req = req.query("tag", *t);
    }
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    ctx.send(req).await
}

/// `GET` (or `HEAD`) `/v2/<repo>/manifests/<reference>` with `accept`.
async fn fetch(
    ctx: &Ctx,
    method: Method,
    repo: &RepoName,
    reference: &str,
    accept: &str,
) -> Step<RawResponse> {
    ctx.send(
        RawRequest::new(method, format!("/v2/{repo}/manifests/{reference}"))
            .header("Accept", accept),
    )
    .await
}

/// Tag `tag` serves `doc`: 200, its bytes, and its digest when one is announced.
async fn tag_serves(ctx: &Ctx, repo: &RepoName, tag: &str, doc: &Doc) -> Step {
    let r = fetch(ctx, Method::GET, repo, tag, doc.media_type).await?;
    check::status(&r, &[200])?;
    check::header_eq_if_present(&r, CONTENT_DIGEST_HEADER, doc.digest.as_str())?;
    check::body_eq(&r, &doc.body)
}

/// The tags of every `OCI-Tag` field (each may hold a comma-separated list).
fn oci_tags(r: &RawResponse) -> BTreeSet<String> {
    r.headers
        .get_all(OCI_TAG)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether `tag` resolves in `repo` (a 200 to `HEAD`).
async fn tag_exists(ctx: &Ctx, repo: &RepoName, tag: &str, accept: &str) -> Step<bool> {
    let r = fetch(ctx, Method::HEAD, repo, tag, accept).await?;
    Ok(r.status.as_u16() == 200)
}

/// The skip of a case that needs `?tag=`, which registries MAY support.
fn no_tag_query() -> crate::report::Outcome {
    check::skip("the registry does not create tags from ?tag= (a MAY of the spec)")
}

/// Run the tag and manifest-reference cases.
pub async fn run(ctx: &Ctx, rec: &mut Recorder) {
    let fx = setup(ctx).await;
    rec.case("push/tagging/setup", CAT, async {
        need(&fx, "setup").map(|_| ())
    })
    .await;
    rec.case("push/manifest/tag-overwrite", CAT, async {
        let f = need(&fx, "setup")?;
        let first = simple_image(&f.config, &[&f.layer], "overwrite-first");
        let second = simple_image(&f.config, &[], "overwrite-second");
        for doc in [&first, &second] {
            let r = put(ctx, &f.repo, "moving", &[], Some(doc.media_type), &doc.body).await?;
            check::status(&r, &[201])?;
            tag_serves(ctx, &f.repo, "moving", doc).await?;
        }
        let h = fetch(ctx, Method::HEAD, &f.repo, "moving", oci::OCI_MANIFEST).await?;
        check::status(&h, &[200])?;
        check::header_eq(&h, CONTENT_DIGEST_HEADER, second.digest.as_str())
    })
    .await;
    rec.case_at(Level::May, "push/manifest/tag-query-201", CAT, async {
        let f = need(&fx, "setup")?;
        let doc = simple_image(&f.config, &[&f.layer], "tag-query");
        let tags = ["q-1.2.3", "q-1.2", "q-1", "q-latest"];
        let r = put(
            ctx,
            &f.repo,
            doc.digest.as_str(),
            &tags,
            Some(doc.media_type),
            &doc.body,
        )
        .await?;
        check::status(&r, &[201])?;
        check::header_eq(&r, CONTENT_DIGEST_HEADER, doc.digest.as_str())?;
        for tag in tags {
            tag_serves(ctx, &f.repo, tag, &doc).await?;
        }
        Ok(())
    })
    .await;
    rec.case("push/manifest/tag-query-oci-tag-header", CAT, async {
        // A registry supporting `?tag=` MUST answer one `OCI-Tag` per accepted tag.
        let f = need(&fx, "setup")?;
        let doc = simple_image(&f.config, &[&f.layer], "oci-tag");
        let tags = ["h-one", "h-two", "h-three"];
        let r = put(
            ctx,
            &f.repo,
            doc.digest.as_str(),
            &tags,
            Some(doc.media_type),
            &doc.body,
        )
        .await?;
        check::status(&r, &[201])?;
        let mut accepted = BTreeSet::new();
        for tag in tags {
            if tag_exists(ctx, &f.repo, tag, doc.media_type).await? {
                accepted.insert(tag.to_string());
            }
        }
        if accepted.is_empty() {
            return Err(no_tag_query());
        }
        let got = oci_tags(&r);
        check::ensure(
            got == accepted,
            &r,
            format!("OCI-Tag fields naming {accepted:?}, the tags created"),
            format!("OCI-Tag {got:?}"),
        )
    })
    .await;
    sha512(ctx, rec, &fx).await;
    detection(ctx, rec, &fx).await;
}

/// A 400 to a push by SHA-512 digest: the registry does not take that algorithm for
/// manifests, which the spec allows (it asks only for a 400).
fn unsupported_algorithm(r: &RawResponse) -> Step {
    if r.status.as_u16() == 400 {
        return Err(check::skip(format!(
            "the registry refuses SHA-512 manifest digests ({}); the spec lets a registry \
             refuse an algorithm it does not support with 400",
            check::actual(r)
        )));
    }
    Ok(())
}

async fn sha512(ctx: &Ctx, rec: &mut Recorder, fx: &Step<Fixture>) {
    let with_sha512 = |doc: &Doc| Digest::of(Algorithm::Sha512, &doc.body);
    rec.case("push/manifest/sha512-by-digest-201", CAT, async {
        // The 201's Docker-Content-Digest MUST equal the digest the client named.
        let f = need(fx, "setup")?;
        let doc = simple_image(&f.config, &[&f.layer], "sha512");
        let digest = with_sha512(&doc);
        let r = put(
            ctx,
            &f.repo,
            digest.as_str(),
            &[],
            Some(doc.media_type),
            &doc.body,
        )
        .await?;
        unsupported_algorithm(&r)?;
        check::status(&r, &[201])?;
        check::header_eq(&r, CONTENT_DIGEST_HEADER, digest.as_str())?;
        let g = fetch(ctx, Method::GET, &f.repo, digest.as_str(), doc.media_type).await?;
        check::status(&g, &[200])?;
        check::body_eq(&g, &doc.body)
    })
    .await;
    rec.case_at(
        Level::Should,
        "push/manifest/sha512-tag-keeps-digest",
        CAT,
        async {
            // Tagged in the push by digest: the tag answers the digest the client chose
            // (the spec lets a registry answer another, so this is a SHOULD).
            let f = need(fx, "setup")?;
            let doc = simple_image(&f.config, &[&f.layer], "sha512-tagged");
            let digest = with_sha512(&doc);
            let tag = "sha512-tagged";
            let r = put(
                ctx,
                &f.repo,
                digest.as_str(),
                &[tag],
                Some(doc.media_type),
                &doc.body,
            )
            .await?;
            unsupported_algorithm(&r)?;
            check::status(&r, &[201])?;
            if !tag_exists(ctx, &f.repo, tag, doc.media_type).await? {
                return Err(no_tag_query());
            }
            for method in [Method::GET, Method::HEAD] {
                let g = fetch(ctx, method.clone(), &f.repo, tag, doc.media_type).await?;
                check::status(&g, &[200])?;
                check::header_eq(&g, CONTENT_DIGEST_HEADER, digest.as_str())?;
                if method == Method::GET {
                    check::body_eq(&g, &doc.body)?;
                }
            }
            Ok(())
        },
    )
    .await;
}

async fn detection(ctx: &Ctx, rec: &mut Recorder, fx: &Step<Fixture>) {
    // A manifest without `mediaType` pushed as `application/json` (or untyped): a
    // registry that answers it as `application/json` leaves it invisible to clients that
    // negotiate manifest types, such as `docker pull`. The spec leaves this open.
    for (id, content_type) in [
        ("push/manifest/detect-type-image", Some("application/json")),
        ("push/manifest/detect-type-no-content-type", None),
    ] {
        rec.case_at(Level::May, id, CAT, async {
            let f = need(fx, "setup")?;
            let label = format!("detect-{}", content_type.is_some());
            let doc = ManifestBuilder::image(
                f.config.descriptor(oci::OCI_CONFIG),
                vec![f.layer.descriptor(oci::OCI_LAYER_TAR_GZIP)],
            )
            .annotation("org.opencontainers.conformance.label", &label)
            .without_media_type()
            .build();
            detected(ctx, &f.repo, &label, content_type, &doc).await
        })
        .await;
    }
    rec.case_at(Level::May, "push/manifest/detect-type-index", CAT, async {
        let f = need(fx, "setup")?;
        let child = simple_image(&f.config, &[&f.layer], "detect-child");
        ctx.push_doc(&f.repo, &child, None).await?;
        let doc = ManifestBuilder::index(vec![child.platform_descriptor("amd64")])
            .without_media_type()
            .build();
        detected(ctx, &f.repo, "detect-index", Some("application/json"), &doc).await
    })
    .await;
}

/// Push `doc` by `tag` with `content_type`; a `docker pull`-like GET must get it as
/// `doc.media_type`.
async fn detected(
    ctx: &Ctx,
    repo: &RepoName,
    tag: &str,
    content_type: Option<&str>,
    doc: &Doc,
) -> Step {
    let r = put(ctx, repo, tag, &[], content_type, &doc.body).await?;
    check::status(&r, &[201])?;
    let g = fetch(ctx, Method::GET, repo, tag, DOCKER_PULL_ACCEPT).await?;
    check::status(&g, &[200])?;
    check::header_eq(&g, "Content-Type", doc.media_type)?;
    check::body_eq(&g, &doc.body)
}
