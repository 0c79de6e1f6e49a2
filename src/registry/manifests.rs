//! Manifest endpoints: `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use super::error::{ApiError, ApiResult};
use super::headers::{content_type, CONTENT_DIGEST, OCI_SUBJECT};
use super::{hname, respond, AppState, Query};
use crate::oci::{Reference, RepoName, Tag};
use crate::storage::StorageError;
use axum::body::Body;
use http::{header, HeaderMap, HeaderValue, StatusCode};

/// Tag accepted from a `?tag=` query parameter of a manifest push.
const OCI_TAG: &str = "oci-tag";

/// Whether a client that sent `accept` takes a manifest of `media_type`. A client that
/// names no manifest media type at all (no header, `*/*`, `application/json`) takes any.
fn accepts(accept: &[&str], media_type: &str) -> bool {
    let named: Vec<&str> = accept
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.split(';').next().unwrap_or(t).trim())
        .filter(|t| !t.is_empty())
        .collect();
    let is_manifest_type = |t: &&str| {
        t.starts_with("application/vnd.oci.image.") || t.starts_with("application/vnd.docker.")
    };
    !named.iter().any(is_manifest_type)
        || named
            .iter()
            .any(|t| *t == media_type || *t == "*/*" || *t == "application/*")
}

/// Send a manifest with its stored media type, if the client's `Accept` allows it.
pub(super) async fn get(
    app: &AppState,
    repo: &RepoName,
    reference: &Reference,
    request_headers: &HeaderMap,
    head_only: bool,
) -> ApiResult {
    let m = app.storage.get_manifest(repo, reference).await?;
    let accept: Vec<&str> = request_headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !accepts(&accept, &m.media_type) {
        return Err(StorageError::ManifestUnknown(format!(
            "{repo}:{reference} is a {}, which the client does not accept (Accept: {})",
            m.media_type,
            accept.join(", ")
        ))
        .into());
    }
    let headers = [
        (header::CONTENT_TYPE, m.media_type.clone()),
        (hname(CONTENT_DIGEST), m.digest.to_string()),
        (header::CONTENT_LENGTH, m.content.len().to_string()),
        (header::ETAG, format!("\"{}\"", m.digest)),
    ];
    let body = if head_only {
        Body::empty()
    } else {
        Body::from(m.content)
    };
    Ok(respond(StatusCode::OK, &headers, body))
}

/// Store a manifest (201). `?tag=` on a push adds tags, each answered by an `OCI-Tag`.
pub(super) async fn put(
    app: &AppState,
    repo: &RepoName,
    reference: &Reference,
    headers: &HeaderMap,
    query: &Query,
    body: Body,
) -> ApiResult {
    let (bytes, _reserved) = super::budget::read_manifest(app, headers, body).await?;
    let mut tags: Vec<Tag> = Vec::new();
    for t in query.all("tag") {
        let tag = t.parse::<Tag>().map_err(ApiError::Name)?;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    let put = app
        .storage
        .put_manifest(repo, reference, &tags, content_type(headers), &bytes)
        .await?;
    let mut out = vec![
        (
            header::LOCATION,
            app.location(&format!("/v2/{repo}/manifests/{}", put.digest)),
        ),
        (hname(CONTENT_DIGEST), put.digest.to_string()),
        (header::CONTENT_LENGTH, "0".into()),
    ];
    if let Some(subject) = put.subject {
        out.push((hname(OCI_SUBJECT), subject.to_string()));
    }
    let mut resp = respond(StatusCode::CREATED, &out, Body::empty());
    // One `OCI-Tag` field per tag accepted from `?tag=` (the spec's wording; a field
    // repeated is the same as one comma-separated list).
    for tag in &tags {
        if let Ok(v) = HeaderValue::from_str(tag.as_str()) {
            resp.headers_mut().append(hname(OCI_TAG), v);
        }
    }
    Ok(resp)
}

/// Delete a manifest by digest, or just a tag (202).
pub(super) async fn delete(app: &AppState, repo: &RepoName, reference: &Reference) -> ApiResult {
    app.storage.delete_manifest(repo, reference).await?;
    Ok(respond(
        StatusCode::ACCEPTED,
        &[(header::CONTENT_LENGTH, "0".into())],
        Body::empty(),
    ))
}

#[cfg(test)]
mod tests {
    use super::accepts;
    use crate::oci::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};

    #[test]
    fn accept_negotiation() {
        assert!(accepts(&[], OCI_MANIFEST));
        assert!(accepts(&["*/*"], OCI_INDEX));
        assert!(accepts(&["application/json"], OCI_INDEX));
        let docker_only = format!("{DOCKER_MANIFEST}, {DOCKER_MANIFEST_LIST}");
        assert!(accepts(&[docker_only.as_str()], DOCKER_MANIFEST_LIST));
        assert!(!accepts(&[docker_only.as_str()], OCI_MANIFEST));
        assert!(accepts(
            &[
                DOCKER_MANIFEST,
                "application/vnd.oci.image.manifest.v1+json; q=0.5"
            ],
            OCI_MANIFEST
        ));
        assert!(accepts(&[DOCKER_MANIFEST, "*/*"], OCI_INDEX));
    }
}
