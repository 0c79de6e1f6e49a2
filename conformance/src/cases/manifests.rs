//! Push, manifests: by tag and by digest, without layers, with missing blobs, invalid,
//! with a `subject` (`OCI-Subject`), artifacts with the empty config, image indexes,
//! Docker schema 2.

use crate::check::{self, need, Step};
use crate::ctx::{Ctx, Recorder};
use crate::fixtures::{simple_image, unknown_digest, Blob, Doc, ManifestBuilder};
use crate::report::{Category, Level};
use imgflow::client::{Method, RawRequest, RawResponse, CONTENT_DIGEST_HEADER, OCI_SUBJECT_HEADER};
use imgflow::oci::{self, RepoName};

const CAT: Category = Category::Push;

struct Fixture {
    repo: RepoName,
    config: Blob,
    layer: Blob,
}

async fn setup(ctx: &Ctx) -> Step<Fixture> {
    let repo = ctx.repo("manifests");
    let config = Blob::config(&ctx.run_id, "manifests");
    let layer = Blob::random(1024);
    ctx.push_blobs(&repo, &[&config, &layer, &Blob::empty_json()])
        .await?;
    Ok(Fixture {
        repo,
        config,
        layer,
    })
}

/// `PUT /v2/<repo>/manifests/<reference>` with the document's media type.
async fn put(ctx: &Ctx, repo: &RepoName, reference: &str, doc: &Doc) -> Step<RawResponse> {
    ctx.send(
        RawRequest::new(Method::PUT, format!("/v2/{repo}/manifests/{reference}"))
            .header("Content-Type", doc.media_type)
            .body(doc.body.clone()),
    )
    .await
}

/// A 201 for `doc` with `Location` and the right `Docker-Content-Digest`.
fn created(r: &RawResponse, doc: &Doc) -> Step {
    check::status(r, &[201])?;
    check::location(r)?;
    check::header_eq(r, CONTENT_DIGEST_HEADER, doc.digest.as_str())
}

/// `GET` the manifest by digest with `Accept: media type`: same bytes and type.
async fn served(ctx: &Ctx, repo: &RepoName, doc: &Doc) -> Step {
    let r = ctx
        .send(
            RawRequest::new(Method::GET, format!("/v2/{repo}/manifests/{}", doc.digest))
                .header("Accept", doc.media_type),
        )
        .await?;
    check::status(&r, &[200])?;
    check::header_eq(&r, "Content-Type", doc.media_type)?;
    check::body_eq(&r, &doc.body)
}

/// Run the manifest push cases.
pub async fn run(ctx: &Ctx, rec: &mut Recorder) {
    let fx = setup(ctx).await;
    rec.case("push/manifest/setup", CAT, async {
        need(&fx, "setup").map(|_| ())
    })
    .await;
    rec.case("push/manifest/put-by-tag-201", CAT, async {
        let f = need(&fx, "setup")?;
        let doc = simple_image(&f.config, &[&f.layer], "by-tag");
        for tag in ["test0", "test1", "test2", "test3"] {
            let r = put(ctx, &f.repo, tag, &doc).await?;
            created(&r, &doc)?;
        }
        served(ctx, &f.repo, &doc).await
    })
    .await;
    rec.case("push/manifest/put-by-digest-201", CAT, async {
        let f = need(&fx, "setup")?;
        let doc = simple_image(&f.config, &[&f.layer], "by-digest");
        let r = put(ctx, &f.repo, doc.digest.as_str(), &doc).await?;
        created(&r, &doc)?;
        served(ctx, &f.repo, &doc).await
    })
    .await;
    rec.case("push/manifest/no-layers-201", CAT, async {
        let f = need(&fx, "setup")?;
        let doc = simple_image(&f.config, &[], "no-layers");
        let r = put(ctx, &f.repo, "no-layers", &doc).await?;
        created(&r, &doc)?;
        served(ctx, &f.repo, &doc).await
    })
    .await;
    rec.case_at(Level::Should, "push/manifest/large-201", CAT, async {
        // Registries should accept manifests of up to 4 MiB; stay just below.
        let f = need(&fx, "setup")?;
        let filler = "x".repeat(4 * 1024 * 1024 - 4096);
        let doc = ManifestBuilder::image(f.config.descriptor(oci::OCI_CONFIG), vec![])
            .annotation("org.opencontainers.conformance.filler", &filler)
            .build();
        let r = put(ctx, &f.repo, "large", &doc).await?;
        created(&r, &doc)?;
        served(ctx, &f.repo, &doc).await
    })
    .await;
    rec.case_at(Level::May, "push/manifest/missing-blob-400", CAT, async {
        let f = need(&fx, "setup")?;
        let missing = Blob::random(64);
        let doc = simple_image(&f.config, &[&f.layer, &missing], "missing-blob");
        let r = put(ctx, &f.repo, "missing-blob", &doc).await?;
        check::error(&r, 400, "MANIFEST_BLOB_UNKNOWN")
    })
    .await;
    rec.case_at(
        Level::May,
        "push/manifest/blob-in-other-repo-400",
        CAT,
        async {
            // Blobs are scoped to repositories: one pushed elsewhere does not count.
            let f = need(&fx, "setup")?;
            let elsewhere = Blob::random(80);
            ctx.push_blob(&ctx.repo("manifests-other"), &elsewhere)
                .await?;
            let doc = simple_image(&f.config, &[&elsewhere], "blob-elsewhere");
            let r = put(ctx, &f.repo, "blob-elsewhere", &doc).await?;
            check::error(&r, 400, "MANIFEST_BLOB_UNKNOWN")
        },
    )
    .await;
    rec.case("push/manifest/invalid-json-400", CAT, async {
        let f = need(&fx, "setup")?;
        let r = ctx
            .send(
                RawRequest::new(Method::PUT, format!("/v2/{}/manifests/invalid", f.repo))
                    .header("Content-Type", oci::OCI_MANIFEST)
                    .body(b"{\"schemaVersion\": 2, \"config\": ".to_vec()),
            )
            .await?;
        check::error(&r, 400, "MANIFEST_INVALID")
    })
    .await;
    rec.case("push/manifest/digest-mismatch-400", CAT, async {
        let f = need(&fx, "setup")?;
        let doc = simple_image(&f.config, &[&f.layer], "mismatch");
        let r = put(ctx, &f.repo, unknown_digest().as_str(), &doc).await?;
        check::error(&r, 400, "DIGEST_INVALID")
    })
    .await;
    artifacts(ctx, rec, &fx).await;
}

async fn artifacts(ctx: &Ctx, rec: &mut Recorder, fx: &Step<Fixture>) {
    rec.case("push/manifest/subject-oci-subject-header", CAT, async {
        let f = need(fx, "setup")?;
        let subject = simple_image(&f.config, &[&f.layer], "subject");
        ctx.push_doc(&f.repo, &subject, Some("subject")).await?;
        let doc = ManifestBuilder::image(Blob::empty_json().descriptor(oci::OCI_EMPTY), vec![])
            .artifact_type("application/vnd.conformance.signature")
            .subject(subject.descriptor())
            .build();
        let r = put(ctx, &f.repo, doc.digest.as_str(), &doc).await?;
        created(&r, &doc)?;
        check::header_eq(&r, OCI_SUBJECT_HEADER, subject.digest.as_str())
    })
    .await;
    rec.case("push/manifest/subject-missing-201", CAT, async {
        let f = need(fx, "setup")?;
        let absent = unknown_digest();
        let doc = ManifestBuilder::image(Blob::empty_json().descriptor(oci::OCI_EMPTY), vec![])
            .artifact_type("application/vnd.conformance.signature")
            .subject(serde_json::json!({
                "mediaType": oci::OCI_MANIFEST, "digest": absent.as_str(), "size": 123
            }))
            .build();
        let r = put(ctx, &f.repo, doc.digest.as_str(), &doc).await?;
        created(&r, &doc)?;
        check::header_eq(&r, OCI_SUBJECT_HEADER, absent.as_str())
    })
    .await;
    rec.case("push/manifest/artifact-empty-config-201", CAT, async {
        let f = need(fx, "setup")?;
        let payload = Blob::new(b"an SBOM, say".to_vec());
        ctx.push_blob(&f.repo, &payload).await?;
        let doc = ManifestBuilder::image(
            Blob::empty_json().descriptor(oci::OCI_EMPTY),
            vec![payload.descriptor("application/vnd.conformance.sbom.v1+json")],
        )
        .artifact_type("application/vnd.conformance.sbom")
        .build();
        let r = put(ctx, &f.repo, "artifact", &doc).await?;
        created(&r, &doc)?;
        served(ctx, &f.repo, &doc).await
    })
    .await;
    rec.case("push/manifest/index-201", CAT, async {
        let f = need(fx, "setup")?;
        let amd = simple_image(&f.config, &[&f.layer], "amd64");
        let arm = simple_image(&f.config, &[], "arm64");
        ctx.push_doc(&f.repo, &amd, None).await?;
        ctx.push_doc(&f.repo, &arm, None).await?;
        let index = ManifestBuilder::index(vec![
            amd.platform_descriptor("amd64"),
            arm.platform_descriptor("arm64"),
        ])
        .build();
        let r = put(ctx, &f.repo, "multi", &index).await?;
        created(&r, &index)?;
        served(ctx, &f.repo, &index).await
    })
    .await;
    rec.case("push/manifest/docker-schema2-201", CAT, async {
        let f = need(fx, "setup")?;
        let doc = ManifestBuilder::image(
            f.config.descriptor(oci::DOCKER_CONFIG),
            vec![f.layer.descriptor(oci::DOCKER_LAYER_GZIP)],
        )
        .media_type(oci::DOCKER_MANIFEST)
        .build();
        let r = put(ctx, &f.repo, "docker", &doc).await?;
        created(&r, &doc)?;
        served(ctx, &f.repo, &doc).await
    })
    .await;
}
