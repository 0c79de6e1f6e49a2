//! Header names and the parsing of request headers into typed values.

use super::error::ApiError;
use crate::storage::ByteRange;
use axum::body::Body;
use bytes::Bytes;
use futures::Stream;
use http::{header, HeaderMap};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

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

/// Error of a request body that stopped arriving, crawled, or broke off.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// No bytes arrived for the idle timeout.
    #[error("no data received for {0:?}; upload abandoned")]
    Idle(Duration),
    /// The body averaged less than the minimum rate over the sliding window.
    #[error(
        "upload body averaged {average} bytes/s over the last {window:?}, below the minimum \
         of {minimum} bytes/s; upload abandoned"
    )]
    TooSlow {
        /// Average rate over the window, in bytes per second.
        average: u64,
        /// The configured minimum, in bytes per second.
        minimum: u64,
        /// The span the average was taken over.
        window: Duration,
    },
    /// The connection failed or the client aborted.
    #[error("{0}")]
    Transport(String),
}

/// The slowest an upload body may arrive: once `grace` has passed since its first
/// byte was asked for, a body averaging fewer than `bytes_per_sec` over the last
/// `window` is cut, so that a client trickling bytes cannot hold an upload slot for
/// long. A rate of 0 turns the floor off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    /// Minimum average rate, in bytes per second (0: no minimum).
    pub bytes_per_sec: u64,
    /// Time from the start of the body during which it is never cut for its rate
    /// (at least `window` is always allowed).
    pub grace: Duration,
    /// Span the average is taken over.
    pub window: Duration,
}

impl MinRate {
    /// No minimum rate.
    pub const NONE: MinRate = MinRate {
        bytes_per_sec: 0,
        grace: Duration::ZERO,
        window: Duration::ZERO,
    };

    /// How often the rate is sampled and checked.
    fn step(&self) -> Duration {
        (self.window / 8).max(Duration::from_millis(10))
    }
}

/// Progress of one body against its [`MinRate`].
struct RateWatch {
    min: MinRate,
    started: Instant,
    total: u64,
    /// (time, bytes received by then), oldest first, one per `min.step()` at most.
    samples: VecDeque<(Instant, u64)>,
}

impl RateWatch {
    fn new(min: MinRate, now: Instant) -> RateWatch {
        RateWatch {
            min,
            started: now,
            total: 0,
            samples: VecDeque::from([(now, 0)]),
        }
    }

    fn received(&mut self, n: usize) {
        self.total += n as u64;
    }

    /// Sample progress at `now`; the error when the body is below the floor.
    fn check(&mut self, now: Instant) -> Result<(), BodyError> {
        if self.min.bytes_per_sec == 0 {
            return Ok(());
        }
        if self
            .samples
            .back()
            .is_none_or(|s| now >= s.0 + self.min.step())
        {
            self.samples.push_back((now, self.total));
        }
        if now.duration_since(self.started) < self.min.grace.max(self.min.window) {
            return Ok(());
        }
        // The newest sample at least a window old is the start of the average.
        let Some(cutoff) = now.checked_sub(self.min.window) else {
            return Ok(());
        };
        while self.samples.len() >= 2 && self.samples[1].0 <= cutoff {
            self.samples.pop_front();
        }
        let Some(&(since, base)) = self.samples.front().filter(|s| s.0 <= cutoff) else {
            return Ok(());
        };
        let span = now.duration_since(since);
        let bytes = self.total - base;
        let average = (bytes as f64 / span.as_secs_f64()) as u64;
        if (bytes as f64) < self.min.bytes_per_sec as f64 * span.as_secs_f64() {
            return Err(BodyError::TooSlow {
                average,
                minimum: self.min.bytes_per_sec,
                window: span,
            });
        }
        Ok(())
    }
}

/// The request body as a stream of chunks. A body that stays silent for `idle`, or
/// that falls below `min_rate` (see [`MinRate`]), ends with an error; one that keeps
/// sending above the floor is never cut, however long it takes. The clocks start
/// when the body is first asked for (not while the request waits for an upload slot).
pub fn body_stream(
    body: Body,
    idle: Duration,
    min_rate: MinRate,
) -> impl Stream<Item = Result<Bytes, BodyError>> + Unpin + Send {
    use futures::StreamExt;
    struct State {
        data: axum::body::BodyDataStream,
        rate: Option<RateWatch>,
        last_data: Instant,
    }
    let state = State {
        data: body.into_data_stream(),
        rate: None,
        last_data: Instant::now(),
    };
    Box::pin(futures::stream::unfold(
        Some(state),
        move |state| async move {
            let mut st = state?;
            if st.rate.is_none() {
                let now = Instant::now();
                st.rate = Some(RateWatch::new(min_rate, now));
                st.last_data = now;
            }
            let rate = st.rate.as_mut()?;
            let step = if min_rate.bytes_per_sec == 0 {
                idle
            } else {
                min_rate.step()
            };
            loop {
                let idle_at = st.last_data + idle;
                let wake = idle_at.min(Instant::now() + step);
                match tokio::time::timeout_at(wake.into(), st.data.next()).await {
                    Ok(None) => return None,
                    Ok(Some(Ok(b))) => {
                        let now = Instant::now();
                        st.last_data = now;
                        rate.received(b.len());
                        if let Err(e) = rate.check(now) {
                            return Some((Err(e), None));
                        }
                        return Some((Ok(b), Some(st)));
                    }
                    Ok(Some(Err(e))) => {
                        return Some((Err(BodyError::Transport(e.to_string())), None))
                    }
                    Err(_) => {
                        let now = Instant::now();
                        if now >= idle_at {
                            return Some((Err(BodyError::Idle(idle)), None));
                        }
                        if let Err(e) = rate.check(now) {
                            return Some((Err(e), None));
                        }
                    }
                }
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

    #[test]
    fn rate_floor() {
        let min = MinRate {
            bytes_per_sec: 1000,
            grace: Duration::from_secs(5),
            window: Duration::from_secs(4),
        };
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // 2000 bytes/s every 100 ms for a minute: never cut.
        let mut fast = RateWatch::new(min, t0);
        for i in 1..=600 {
            fast.received(200);
            fast.check(at(i * 100))
                .expect("a body above the floor was cut");
        }
        assert!(fast.samples.len() <= 12, "samples are bounded");
        // Nothing during the grace period, even when silent; cut right after it.
        let mut slow = RateWatch::new(min, t0);
        slow.received(1);
        for i in 1..50 {
            slow.check(at(i * 100))
                .expect("cut during the grace period");
        }
        assert!(matches!(
            slow.check(at(5000)),
            Err(BodyError::TooSlow { minimum: 1000, .. })
        ));
        // Fast for the grace period, then slower than the floor: cut within a window.
        let mut stalls = RateWatch::new(min, t0);
        let mut cut = None;
        for i in 1..=200 {
            stalls.received(if i <= 60 { 500 } else { 50 });
            if stalls.check(at(i * 100)).is_err() {
                cut = Some(i * 100);
                break;
            }
        }
        let cut = cut.expect("a body below the floor was never cut");
        assert!((6000..=6000 + 4000 + 500).contains(&cut), "cut at {cut} ms");
        // A floor of 0 never cuts.
        let mut off = RateWatch::new(MinRate::NONE, t0);
        assert!(off.check(at(3_600_000)).is_ok());
    }
}
