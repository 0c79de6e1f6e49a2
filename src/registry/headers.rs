//! Header names and the parsing of request headers into typed values.

use super::error::ApiError;
use crate::storage::ByteRange;
use axum::body::Body;
use bytes::Bytes;
use futures::Stream;
use http::{header, HeaderMap};
use std::time::Duration;

/// API version header sent on every response.
pub const API_VERSION: &str = "docker-distribution-api-version";
/// Digest of the content a response is about.
pub const CONTENT_DIGEST: &str = "docker-content-digest";
/// Upload session id.
pub const UPLOAD_UUID: &str = "docker-upload-uuid";
/// Subject of a pushed manifest.
pub const OCI_SUBJECT: &str = "oci-subject";
/// Filters applied to a referrers listing.
pub const OCI_FILTERS_APPLIED: &str = "oci-filters-applied";

/// The `Range` value describing an upload of `size` bytes (`0-<last byte>`).
pub fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

/// `Content-Length`, if present and valid.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    match headers.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| ApiError::UploadInvalid("invalid Content-Length".into())),
    }
}

/// The `Content-Type` without parameters.
pub fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim())
}

/// An upload chunk's `Content-Range` (`<start>-<end>`, inclusive; `bytes` prefixes and a
/// `/<total>` suffix are tolerated), as (start, length).
pub fn chunk_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || ApiError::UploadInvalid("invalid Content-Range: expected <start>-<end>".into());
    let s = v.to_str().map_err(|_| bad())?.trim();
    let s = s
        .strip_prefix("bytes=")
        .or_else(|| s.strip_prefix("bytes "))
        .unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s);
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let start: u64 = a.trim().parse().map_err(|_| bad())?;
    let end: u64 = b.trim().parse().map_err(|_| bad())?;
    if end < start {
        return Err(bad());
    }
    Ok(Some((start, end - start + 1)))
}

/// The expected offset and length of an upload chunk, checking Content-Range against
/// Content-Length when both are given.
pub fn chunk_bounds(headers: &HeaderMap) -> Result<(Option<u64>, Option<u64>), ApiError> {
    let len = content_length(headers)?;
    match chunk_range(headers)? {
        None => Ok((None, len)),
        Some((start, range_len)) => {
            if len.is_some_and(|l| l != range_len) {
                return Err(ApiError::UploadInvalid(format!(
                    "Content-Range covers {range_len} bytes but Content-Length is {}",
                    len.unwrap_or_default()
                )));
            }
            Ok((Some(start), Some(range_len)))
        }
    }
}

/// A blob GET's `Range: bytes=...` header (a single range).
pub fn byte_range(headers: &HeaderMap) -> Result<Option<ByteRange>, ApiError> {
    let Some(v) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let bad =
        || ApiError::BadRequest("invalid Range header: expected bytes=<start>-[<end>]".into());
    let s = v.to_str().map_err(|_| bad())?.trim();
    let spec = s.strip_prefix("bytes=").ok_or_else(bad)?;
    if spec.contains(',') {
        return Err(ApiError::BadRequest(
            "multiple ranges are not supported".into(),
        ));
    }
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let (a, b) = (a.trim(), b.trim());
    let num = |x: &str| x.parse::<u64>().map_err(|_| bad());
    let range = match (a.is_empty(), b.is_empty()) {
        (true, false) => ByteRange::Suffix(num(b)?),
        (false, true) => ByteRange::From(num(a)?),
        (false, false) => {
            let (s, e) = (num(a)?, num(b)?);
            if e < s {
                return Err(bad());
            }
            ByteRange::FromTo(s, e)
        }
        (true, true) => return Err(bad()),
    };
    Ok(Some(range))
}

/// Error of a request body that stopped arriving or broke off.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// No bytes arrived for the idle timeout.
    #[error("no data received for {0:?}; upload abandoned")]
    Idle(Duration),
    /// The connection failed or the client aborted.
    #[error("{0}")]
    Transport(String),
}

/// The request body as a stream of chunks. A body that stays silent for `idle` ends
/// with an error; one that keeps sending, however slowly, is never cut.
pub fn body_stream(
    body: Body,
    idle: Duration,
) -> impl Stream<Item = Result<Bytes, BodyError>> + Unpin + Send {
    use futures::StreamExt;
    let data = body.into_data_stream();
    Box::pin(futures::stream::unfold(
        Some(data),
        move |state| async move {
            let mut data = state?;
            match tokio::time::timeout(idle, data.next()).await {
                Err(_) => Some((Err(BodyError::Idle(idle)), None)),
                Ok(None) => None,
                Ok(Some(Ok(b))) => Some((Ok(b), Some(data))),
                Ok(Some(Err(e))) => Some((Err(BodyError::Transport(e.to_string())), None)),
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(name: header::HeaderName, v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(name, HeaderValue::from_str(v).unwrap());
        m
    }

    #[test]
    fn ranges() {
        assert_eq!(upload_range(0), "0-0");
        assert_eq!(upload_range(10), "0-9");
        assert_eq!(
            chunk_range(&h(header::CONTENT_RANGE, "0-9")).unwrap(),
            Some((0, 10))
        );
        assert_eq!(
            chunk_range(&h(header::CONTENT_RANGE, "bytes 5-9/*")).unwrap(),
            Some((5, 5))
        );
        assert!(chunk_range(&h(header::CONTENT_RANGE, "9-5")).is_err());
        assert!(chunk_range(&h(header::CONTENT_RANGE, "x")).is_err());
        assert_eq!(
            byte_range(&h(header::RANGE, "bytes=0-99")).unwrap(),
            Some(ByteRange::FromTo(0, 99))
        );
        assert_eq!(
            byte_range(&h(header::RANGE, "bytes=-5")).unwrap(),
            Some(ByteRange::Suffix(5))
        );
        assert_eq!(
            byte_range(&h(header::RANGE, "bytes=7-")).unwrap(),
            Some(ByteRange::From(7))
        );
        assert!(byte_range(&h(header::RANGE, "bytes=1-2,4-5")).is_err());
        assert!(byte_range(&h(header::RANGE, "items=1-2")).is_err());
    }
}
