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

/// A blob GET's `Range` header, read as RFC 9110 (section 14) asks.
///
/// - absent, in a unit other than `bytes` (which a server must ignore), or naming several
///   ranges (which a server may ignore; the whole blob is sent): `None`;
/// - one `bytes=` range: `first-last`, `first-` or a suffix `-n`;
/// - one `bytes=` range that cannot be read (`bytes=500-0`, `bytes=x-`):
///   [`ByteRange::Invalid`], answered 416 once the blob's size is known.
pub fn byte_range(headers: &HeaderMap) -> Option<ByteRange> {
    let v = headers.get(header::RANGE)?.to_str().ok()?.trim();
    let (unit, spec) = v.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    if spec.contains(',') {
        return None;
    }
    let (a, b) = match spec.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => return Some(ByteRange::Invalid),
    };
    let num = |x: &str| {
        if x.bytes().all(|c| c.is_ascii_digit()) {
            x.parse::<u64>().ok()
        } else {
            None
        }
    };
    let range = match (a.is_empty(), b.is_empty()) {
        (true, false) => num(b).map(ByteRange::Suffix),
        (false, true) => num(a).map(ByteRange::From),
        (false, false) => match (num(a), num(b)) {
            (Some(s), Some(e)) if s <= e => Some(ByteRange::FromTo(s, e)),
            _ => None,
        },
        (true, true) => None,
    };
    Some(range.unwrap_or(ByteRange::Invalid))
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

    /// Every `bytes=a-b`, `bytes=a-` and `bytes=-n` over small blobs resolves to exactly
    /// the bytes an independent reading of RFC 9110 selects, or is not satisfiable
    /// (with the blob's size) exactly when that selection is empty.
    #[test]
    fn ranges_resolve_like_rfc_9110() {
        use crate::storage::StorageError;
        let spec = |size: u64, a: Option<u64>, b: Option<u64>| -> Vec<u64> {
            (0..size)
                .filter(|&i| match (a, b) {
                    (Some(a), Some(b)) => a <= b && i >= a && i <= b,
                    (Some(a), None) => i >= a,
                    (None, Some(n)) => i + n >= size,
                    (None, None) => false,
                })
                .collect()
        };
        let show = |x: Option<u64>| x.map(|v| v.to_string()).unwrap_or_default();
        for size in 0..6u64 {
            for a in (0..8).map(Some).chain([None]) {
                for b in (0..8).map(Some).chain([None]) {
                    let value = format!("bytes={}-{}", show(a), show(b));
                    let want = spec(size, a, b);
                    let parsed = byte_range(&h(header::RANGE, &value)).expect("a bytes range");
                    match parsed.resolve(size) {
                        Ok((s, e)) => {
                            assert_eq!((s..e).collect::<Vec<_>>(), want, "{value}/{size}")
                        }
                        Err(StorageError::RangeNotSatisfiable { size: got }) => {
                            assert!(want.is_empty(), "{value} of {size} bytes refused");
                            assert_eq!(got, size);
                        }
                        Err(e) => panic!("{value}: {e}"),
                    }
                }
            }
        }
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
            byte_range(&h(header::RANGE, "bytes=0-99")),
            Some(ByteRange::FromTo(0, 99))
        );
        assert_eq!(
            byte_range(&h(header::RANGE, "bytes=-5")),
            Some(ByteRange::Suffix(5))
        );
        assert_eq!(
            byte_range(&h(header::RANGE, "bytes=7-")),
            Some(ByteRange::From(7))
        );
        assert_eq!(byte_range(&h(header::RANGE, "bytes=1-2,4-5")), None);
        assert_eq!(byte_range(&h(header::RANGE, "items=1-2")), None);
        assert_eq!(byte_range(&HeaderMap::new()), None);
        for invalid in [
            "bytes=500-0",
            "bytes=-",
            "bytes=x-",
            "bytes=1-y",
            "bytes=+1-2",
            "bytes=12",
        ] {
            assert_eq!(
                byte_range(&h(header::RANGE, invalid)),
                Some(ByteRange::Invalid),
                "{invalid}"
            );
        }
        assert_eq!(
            byte_range(&h(header::RANGE, "Bytes = 3-3")),
            Some(ByteRange::FromTo(3, 3))
        );
    }
}
