//! Content discovery: tags list, catalog and referrers.

use super::error::{ApiError, ApiResult};
use super::headers::OCI_FILTERS_APPLIED;
use super::{hname, respond, AppState, Query};
use crate::access::Caller;
use crate::oci::{Digest, RepoName, OCI_INDEX};
use http::{header, HeaderName, StatusCode};

/// Largest page served when the client asks for none or for more.
const MAX_PAGE: u32 = 10_000;

/// `n` and `last` pagination parameters.
fn page(query: &Query) -> Result<(u32, Option<&str>), ApiError> {
    let n = match query.get("n") {
        None | Some("") => MAX_PAGE,
        Some(n) => n
            .parse::<u32>()
            .map_err(|_| ApiError::BadRequest(format!("invalid n={n:?}: expected a count")))?
            .min(MAX_PAGE),
    };
    Ok((n, query.get("last").filter(|l| !l.is_empty())))
}

/// A JSON 200 response, with a `Link` to the next page when the page is full.
fn paged(json: serde_json::Value, next: Option<String>) -> axum::response::Response {
    let mut headers: Vec<(HeaderName, String)> =
        vec![(header::CONTENT_TYPE, "application/json".into())];
    if let Some(next) = next {
        headers.push((header::LINK, format!("<{next}>; rel=\"next\"")));
    }
    respond(StatusCode::OK, &headers, json.to_string())
}

fn next_link(path: &str, n: u32, items: &[String]) -> Option<String> {
    let last = items.last()?;
    (items.len() as u32 == n && n > 0).then(|| {
        let enc = percent_encoding::utf8_percent_encode(last, percent_encoding::NON_ALPHANUMERIC);
        format!("{path}?n={n}&last={enc}")
    })
}

/// `GET /v2/<name>/tags/list`.
pub(super) async fn tags(app: &AppState, repo: &RepoName, query: &Query) -> ApiResult {
    let (n, last) = page(query)?;
    let tags = app.storage.tags(repo, n, last).await?;
    let next = next_link(&format!("/v2/{repo}/tags/list"), n, &tags);
    Ok(paged(
        serde_json::json!({ "name": repo.as_str(), "tags": tags }),
        next,
    ))
}

/// `GET /v2/_catalog`: the repositories the caller may pull (it may list them).
pub(super) async fn catalog(app: &AppState, caller: &Caller, query: &Query) -> ApiResult {
    /// Repositories read from storage at a time while filtering.
    const BATCH: u32 = 1000;
    let (n, last) = page(query)?;
    let mut repos: Vec<String> = Vec::new();
    let mut after = last.map(str::to_string);
    while (repos.len() as u32) < n {
        let batch = app.storage.catalog(BATCH, after.as_deref()).await?;
        let full = batch.len() as u32 == BATCH;
        after = batch.last().cloned();
        repos.extend(batch.into_iter().filter(|r| app.gate.may_pull(caller, r)));
        if !full {
            break;
        }
    }
    repos.truncate(n as usize);
    let next = next_link("/v2/_catalog", n, &repos);
    Ok(paged(serde_json::json!({ "repositories": repos }), next))
}

/// `GET /v2/<name>/referrers/<digest>`: always an image index.
pub(super) async fn referrers(
    app: &AppState,
    repo: &RepoName,
    subject: &Digest,
    query: &Query,
) -> ApiResult {
    let filter = query.get("artifactType").filter(|a| !a.is_empty());
    let found = app.storage.referrers(repo, subject, filter).await?;
    let manifests: Vec<serde_json::Value> = found
        .into_iter()
        .map(|r| {
            let mut d = serde_json::json!({
                "mediaType": r.media_type,
                "digest": r.digest.as_str(),
                "size": r.size,
            });
            if let Some(at) = r.artifact_type {
                d["artifactType"] = at.into();
            }
            if let Some(ann) = r.annotations.and_then(|a| serde_json::from_str(&a).ok()) {
                d["annotations"] = ann;
            }
            d
        })
        .collect();
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    let mut headers = vec![(header::CONTENT_TYPE, OCI_INDEX.to_string())];
    if filter.is_some() {
        headers.push((hname(OCI_FILTERS_APPLIED), "artifactType".into()));
    }
    Ok(respond(StatusCode::OK, &headers, body.to_string()))
}
