//! Blob endpoints: `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.

use super::error::ApiResult;
use super::headers::{byte_range, CONTENT_DIGEST};
use super::{hname, respond, AppState};
use crate::oci::{Digest, RepoName};
use axum::body::Body;
use http::{header, HeaderMap, StatusCode};

/// Send a blob, or the requested range of it (206; 416 with `Content-Range: bytes */SIZE`
/// when the range is invalid or lies past the end).
pub(super) async fn get(
    app: &AppState,
    repo: &RepoName,
    digest: &Digest,
    headers: &HeaderMap,
    head_only: bool,
) -> ApiResult {
    let mut common = vec![
        (hname(CONTENT_DIGEST), digest.to_string()),
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (header::ACCEPT_RANGES, "bytes".to_string()),
        (header::ETAG, format!("\"{digest}\"")),
        (
            header::CACHE_CONTROL,
            "max-age=31536000, immutable".to_string(),
        ),
    ];
    if head_only {
        let size = app.storage.blob_size(repo, digest).await?;
        common.push((header::CONTENT_LENGTH, size.to_string()));
        return Ok(respond(StatusCode::OK, &common, Body::empty()));
    }
    let range = byte_range(headers);
    let read = app.storage.read_blob(repo, digest, range).await?;
    let (start, end) = read.range;
    common.push((header::CONTENT_LENGTH, (end - start).to_string()));
    let status = if range.is_some() {
        common.push((
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{}", start, end - 1, read.size),
        ));
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    Ok(respond(status, &common, Body::from_stream(read.body)))
}

/// Unlink a blob from the repository (202).
pub(super) async fn delete(app: &AppState, repo: &RepoName, digest: &Digest) -> ApiResult {
    app.storage.delete_blob(repo, digest).await?;
    Ok(respond(
        StatusCode::ACCEPTED,
        &[(header::CONTENT_LENGTH, "0".into())],
        Body::empty(),
    ))
}
