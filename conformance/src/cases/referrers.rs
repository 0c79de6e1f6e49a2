//! Content discovery: the referrers API (`GET /v2/<name>/referrers/<digest>`), with and
//! without the `artifactType` filter, for image and index subjects.

use crate::check::{self, need, Step};
use crate::ctx::{Ctx, Recorder};
use crate::fixtures::{
    annotations_of, simple_image, unknown_digest, Blob, Doc, ManifestBuilder, ANNOTATION_KEY,
};
use crate::report::{Category, Level};
use imgflow::client::{RawResponse, OCI_FILTERS_APPLIED_HEADER};
use imgflow::oci::{self, Digest, RepoName};
use serde_json::Value;

const CAT: Category = Category::Discovery;
const TYPE_A: &str = "application/vnd.conformance.type-a";
const TYPE_B: &str = "application/vnd.conformance.type-b";

/// A referrer the registry must list: its document and the `artifactType` expected.
struct Expected {
    doc: Doc,
    artifact_type: &'static str,
    label: &'static str,
}

struct Fixture {
    repo: RepoName,
    subject: Doc,
    referrers: Vec<Expected>,
    orphan_subject: Digest,
    orphan: Doc,
}

async fn setup(ctx: &Ctx) -> Step<Fixture> {
    let repo = ctx.repo("referrers");
    let config = Blob::config(&ctx.run_id, "referrers");
    let layer = Blob::random(256);
    let payload = Blob::new(format!("referrer payload {}", ctx.run_id).into_bytes());
    let config_a = Blob::new(format!("{{\"run\":\"{}\"}}", ctx.run_id).into_bytes());
    let empty = Blob::empty_json();
    ctx.push_blobs(&repo, &[&config, &layer, &payload, &config_a, &empty])
        .await?;
    let subject = simple_image(&config, &[&layer], "referrers-subject");
    // A referrer pushed before its subject must be listed too.
    let by_config = ManifestBuilder::image(
        config_a.descriptor(TYPE_A),
        vec![payload.descriptor("application/octet-stream")],
    )
    .subject(subject.descriptor())
    .annotation(ANNOTATION_KEY, "config-type")
    .build();
    ctx.push_doc(&repo, &by_config, None).await?;
    ctx.push_doc(&repo, &subject, Some("subject")).await?;
    let by_field = ManifestBuilder::image(
        empty.descriptor(oci::OCI_EMPTY),
        vec![payload.descriptor("application/octet-stream")],
    )
    .artifact_type(TYPE_B)
    .subject(subject.descriptor())
    .annotation(ANNOTATION_KEY, "artifact-type")
    .build();
    ctx.push_doc(&repo, &by_field, None).await?;
    let index = ManifestBuilder::index(vec![by_config.descriptor()])
        .artifact_type(TYPE_B)
        .subject(subject.descriptor())
        .annotation(ANNOTATION_KEY, "index")
        .build();
    ctx.push_doc(&repo, &index, None).await?;
    let orphan_subject = unknown_digest();
    let orphan = ManifestBuilder::image(empty.descriptor(oci::OCI_EMPTY), vec![])
        .artifact_type(TYPE_A)
        .subject(serde_json::json!({
            "mediaType": oci::OCI_MANIFEST, "digest": orphan_subject.as_str(), "size": 100
        }))
        .annotation(ANNOTATION_KEY, "orphan")
        .build();
    ctx.push_doc(&repo, &orphan, None).await?;
    Ok(Fixture {
        repo,
        subject,
        referrers: vec![
            Expected {
                doc: by_config,
                artifact_type: TYPE_A,
                label: "config-type",
            },
            Expected {
                doc: by_field,
                artifact_type: TYPE_B,
                label: "artifact-type",
            },
            Expected {
                doc: index,
                artifact_type: TYPE_B,
                label: "index",
            },
        ],
        orphan_subject,
        orphan,
    })
}

/// GET referrers; checks 200 and the index media type; returns the descriptors.
async fn list(ctx: &Ctx, target: String) -> Step<(Vec<Value>, RawResponse)> {
    let r = ctx.get(target).await?;
    check::status(&r, &[200])?;
    check::header_eq(&r, "Content-Type", oci::OCI_INDEX)?;
    let body = check::json(&r)?;
    check::ensure(
        body.get("schemaVersion") == Some(&Value::from(2)),
        &r,
        "an image index with schemaVersion 2",
        r.body_text(),
    )?;
    match body.get("manifests") {
        Some(Value::Array(items)) => Ok((items.clone(), r)),
        _ => Err(check::mismatch(&r, "a manifests array", r.body_text())),
    }
}

/// The descriptors must be exactly `want` (any order), with their artifact types,
/// sizes, media types and annotations.
fn matches(r: &RawResponse, got: &[Value], want: &[&Expected]) -> Step {
    let digests = |v: &Value| {
        v.get("digest")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut got_d: Vec<String> = got.iter().map(digests).collect();
    let mut want_d: Vec<String> = want.iter().map(|e| e.doc.digest.to_string()).collect();
    got_d.sort();
    want_d.sort();
    check::ensure(
        got_d == want_d,
        r,
        format!("referrers {want_d:?}"),
        format!("{got_d:?}"),
    )?;
    for e in want {
        let Some(d) = got.iter().find(|d| digests(d) == e.doc.digest.as_str()) else {
            continue;
        };
        let text = |k: &str| d.get(k).and_then(Value::as_str);
        let ok = text("mediaType") == Some(e.doc.media_type)
            && d.get("size").and_then(Value::as_u64) == Some(e.doc.body.len() as u64)
            && text("artifactType") == Some(e.artifact_type)
            && annotations_of(d).get(ANNOTATION_KEY).map(String::as_str) == Some(e.label);
        let expected = format!(
            "descriptor of {} with mediaType {}, size {}, artifactType {}, annotation {}={}",
            e.doc.digest,
            e.doc.media_type,
            e.doc.body.len(),
            e.artifact_type,
            ANNOTATION_KEY,
            e.label
        );
        check::ensure(ok, r, expected, d)?;
    }
    Ok(())
}

/// Run the referrers cases.
pub async fn run(ctx: &Ctx, rec: &mut Recorder) {
    let fx = setup(ctx).await;
    rec.case("discovery/referrers/setup", CAT, async {
        need(&fx, "setup").map(|_| ())
    })
    .await;
    rec.case("discovery/referrers/empty-200", CAT, async {
        let f = need(&fx, "setup")?;
        let (got, r) = list(
            ctx,
            format!("/v2/{}/referrers/{}", f.repo, unknown_digest()),
        )
        .await?;
        check::ensure(got.is_empty(), &r, "an empty manifests list", r.body_text())
    })
    .await;
    rec.case("discovery/referrers/list-200", CAT, async {
        let f = need(&fx, "setup")?;
        let (got, r) = list(
            ctx,
            format!("/v2/{}/referrers/{}", f.repo, f.subject.digest),
        )
        .await?;
        let want: Vec<&Expected> = f.referrers.iter().collect();
        matches(&r, &got, &want)
    })
    .await;
    rec.case_at(
        Level::Should,
        "discovery/referrers/filter-artifact-type",
        CAT,
        async {
            let f = need(&fx, "setup")?;
            let target = format!(
                "/v2/{}/referrers/{}?artifactType={}",
                f.repo, f.subject.digest, TYPE_B
            );
            let (got, r) = list(ctx, target).await?;
            check::header_eq(&r, OCI_FILTERS_APPLIED_HEADER, "artifactType")?;
            let want: Vec<&Expected> = f
                .referrers
                .iter()
                .filter(|e| e.artifact_type == TYPE_B)
                .collect();
            matches(&r, &got, &want)
        },
    )
    .await;
    rec.case("discovery/referrers/missing-subject-200", CAT, async {
        let f = need(&fx, "setup")?;
        let (got, r) = list(
            ctx,
            format!("/v2/{}/referrers/{}", f.repo, f.orphan_subject),
        )
        .await?;
        let orphan = Expected {
            doc: f.orphan.clone(),
            artifact_type: TYPE_A,
            label: "orphan",
        };
        matches(&r, &got, &[&orphan])
    })
    .await;
    rec.case_at(Level::Should, "discovery/referrers/client-list", CAT, async {
        let f = need(&fx, "setup")?;
        let found = ctx
            .client
            .referrers(&f.repo, &f.subject.digest, Some(TYPE_A))
            .await
            .map_err(|e| check::fail(format!("client referrers: {e}")))?;
        let got: Vec<&Digest> = found.manifests.iter().map(|d| &d.digest).collect();
        let want = &f.referrers[0].doc.digest;
        if got == [want] && found.filters_applied == ["artifactType"] {
            Ok(())
        } else {
            Err(check::fail(format!(
                "client referrers with artifactType {TYPE_A}: got {got:?} (filters {:?}), expected [{want}] filtered",
                found.filters_applied
            )))
        }
    })
    .await;
    rec.case("discovery/referrers/index-subject", CAT, async {
        // The subject may be an image index: its referrers are listed like any other.
        let f = need(&fx, "setup")?;
        let index = ManifestBuilder::index(vec![f.subject.platform_descriptor("amd64")])
            .annotation(ANNOTATION_KEY, "index-subject")
            .build();
        ctx.push_doc(&f.repo, &index, Some("index-subject")).await?;
        let signature =
            ManifestBuilder::image(Blob::empty_json().descriptor(oci::OCI_EMPTY), vec![])
                .artifact_type(TYPE_A)
                .subject(index.descriptor())
                .annotation(ANNOTATION_KEY, "of-index")
                .build();
        ctx.push_doc(&f.repo, &signature, None).await?;
        let (got, r) = list(ctx, format!("/v2/{}/referrers/{}", f.repo, index.digest)).await?;
        let want = Expected {
            doc: signature,
            artifact_type: TYPE_A,
            label: "of-index",
        };
        matches(&r, &got, &[&want])
    })
    .await;
    rec.case("discovery/referrers/invalid-digest-400", CAT, async {
        let f = need(&fx, "setup")?;
        let r = ctx
            .get(format!("/v2/{}/referrers/sha256:not-hex", f.repo))
            .await?;
        check::status(&r, &[400])
    })
    .await;
}
