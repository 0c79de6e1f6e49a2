//! Upload endpoints: `POST /v2/<name>/blobs/uploads/` and the session URL.

use super::error::{ApiError, ApiResult};
use super::headers::{
    body_stream, chunk_bounds, content_length, upload_range, CONTENT_DIGEST, UPLOAD_UUID,
};
use super::{hname, respond, AppState, Query};
use crate::access::Caller;
use crate::oci::{Algorithm, Digest, RepoName};
use crate::storage::UploadStatus;
use axum::body::Body;
use axum::response::Response;
use http::{header, HeaderMap, StatusCode};

fn digest_param(query: &Query) -> Result<Option<Digest>, ApiError> {
    query
        .get("digest")
        .map(|d| d.parse())
        .transpose()
        .map_err(ApiError::from)
}

/// 201 for a blob now in the repository.
fn created(app: &AppState, repo: &RepoName, digest: &Digest) -> Response {
    respond(
        StatusCode::CREATED,
        &[
            (
                header::LOCATION,
                app.location(&format!("/v2/{repo}/blobs/{digest}")),
            ),
            (hname(CONTENT_DIGEST), digest.to_string()),
            (header::CONTENT_LENGTH, "0".into()),
        ],
        Body::empty(),
    )
}

/// The headers describing an open session.
fn session(app: &AppState, repo: &RepoName, status: StatusCode, up: &UploadStatus) -> Response {
    respond(
        status,
        &[
            (
                header::LOCATION,
                app.location(&format!("/v2/{repo}/blobs/uploads/{}", up.id)),
            ),
            (header::RANGE, upload_range(up.size)),
            (hname(UPLOAD_UUID), up.id.clone()),
            (header::CONTENT_LENGTH, "0".into()),
        ],
        Body::empty(),
    )
}

/// Start an upload; or push a whole blob (`?digest=`); or mount one (`?mount=[&from=]`).
pub(super) async fn start(
    app: &AppState,
    caller: &Caller,
    repo: &RepoName,
    parts: &http::request::Parts,
    query: &Query,
    body: Body,
) -> ApiResult {
    let headers = &parts.headers;
    let client = Some(caller.ip);
    if let Some(mount) = query.get("mount") {
        let digest: Digest = mount.parse()?;
        let from: Option<RepoName> = query
            .get("from")
            .map(|f| f.parse())
            .transpose()
            .map_err(ApiError::Name)?;
        // A mount takes the blob from another repository: only from one the caller may
        // pull. Otherwise the client uploads it as usual (the spec's fallback).
        let source = match from {
            Some(from) => app.gate.may_pull(caller, from.as_str()).then_some(from),
            None => mountable_from(app, caller, &digest).await?,
        };
        if let Some(source) = source {
            if app.storage.mount_blob(repo, &digest, Some(&source)).await? {
                return Ok(created(app, repo, &digest));
            }
        }
        let up = app
            .storage
            .start_upload(repo, digest.algorithm(), client)
            .await?;
        return Ok(session(app, repo, StatusCode::ACCEPTED, &up));
    }
    if let Some(digest) = digest_param(query)? {
        let len = content_length(headers)?;
        let body = body_stream(body, app.body_idle_timeout, app.min_upload_rate);
        app.storage
            .put_blob(repo, &digest, len, body, client)
            .await?;
        return Ok(created(app, repo, &digest));
    }
    let up = app
        .storage
        .start_upload(repo, Algorithm::Sha256, client)
        .await?;
    Ok(session(app, repo, StatusCode::ACCEPTED, &up))
}

/// A repository holding `digest` that `caller` may pull, for a mount without `from`.
async fn mountable_from(
    app: &AppState,
    caller: &Caller,
    digest: &Digest,
) -> Result<Option<RepoName>, ApiError> {
    /// Repositories looked at; a blob shared more widely than this is uploaded again.
    const CANDIDATES: u32 = 100;
    let repos = app.storage.blob_repositories(digest, CANDIDATES).await?;
    Ok(repos
        .into_iter()
        .find(|r| app.gate.may_pull(caller, r))
        .and_then(|r| r.parse().ok()))
}

/// Where an upload stands (204 with `Range`).
pub(super) async fn status(app: &AppState, repo: &RepoName, id: &str) -> ApiResult {
    let up = app.storage.upload_status(repo, id).await?;
    Ok(session(app, repo, StatusCode::NO_CONTENT, &up))
}

/// Append a chunk (202).
pub(super) async fn patch(
    app: &AppState,
    repo: &RepoName,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult {
    let (offset, len) = chunk_bounds(headers)?;
    let body = body_stream(body, app.body_idle_timeout, app.min_upload_rate);
    let up = app
        .storage
        .append_upload(repo, id, (offset, len, body))
        .await?;
    Ok(session(app, repo, StatusCode::ACCEPTED, &up))
}

/// Close an upload with an optional last chunk; the content must match `?digest=` (201).
pub(super) async fn finish(
    app: &AppState,
    repo: &RepoName,
    id: &str,
    headers: &HeaderMap,
    query: &Query,
    body: Body,
) -> ApiResult {
    let digest = digest_param(query)?.ok_or(ApiError::MissingDigest("digest"))?;
    let (offset, len) = chunk_bounds(headers)?;
    let body = body_stream(body, app.body_idle_timeout, app.min_upload_rate);
    app.storage
        .finish_upload(repo, id, &digest, Some((offset, len, body)))
        .await?;
    Ok(created(app, repo, &digest))
}

/// Abandon an upload (204).
pub(super) async fn cancel(app: &AppState, repo: &RepoName, id: &str) -> ApiResult {
    app.storage.cancel_upload(repo, id).await?;
    Ok(respond(
        StatusCode::NO_CONTENT,
        &[(header::CONTENT_LENGTH, "0".into())],
        Body::empty(),
    ))
}
