//! One memory budget shared by every manifest body being received.
//!
//! A manifest `PUT` is buffered whole before it is parsed, so without a bound many
//! clients (or many HTTP/2 streams of one client) could each make the registry hold up
//! to the manifest size limit. Each `PUT` therefore reserves its `Content-Length` (the
//! manifest size limit when the length is not announced) from one shared budget before
//! it reads a byte; when the budget is spent it waits a bounded time for room, then is
//! answered `429 TOOMANYREQUESTS` with a `Retry-After` header.

use super::error::ApiError;
use super::headers::body_stream;
use super::AppState;
use crate::storage::StorageError;
use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::HeaderMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Reservations are counted in units of this many bytes.
const UNIT: u64 = 1024;

/// The memory all manifest bodies in flight may use together.
#[derive(Debug, Clone)]
pub struct ManifestBudget {
    units: Arc<Semaphore>,
    total_units: u32,
    wait: Duration,
}

/// Room held for one manifest body; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

impl ManifestBudget {
    /// A budget of `total_bytes` (at least 1 KiB); a request waits at most `wait` for room.
    pub fn new(total_bytes: u64, wait: Duration) -> ManifestBudget {
        let total_units = u32::try_from(total_bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .max(1);
        ManifestBudget {
            units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            wait,
        }
    }

    /// Reserve room for `bytes` (a body larger than the whole budget takes all of it).
    async fn reserve(&self, bytes: u64) -> Result<Reservation, ApiError> {
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_units);
        match tokio::time::timeout(self.wait, self.units.clone().acquire_many_owned(units)).await {
            Ok(Ok(permit)) => Ok(Reservation { _permit: permit }),
            Ok(Err(_)) | Err(_) => Err(ApiError::TooManyRequests {
                retry_after: self.wait.max(Duration::from_secs(1)),
            }),
        }
    }
}

/// Read a manifest `PUT`'s body, of at most the manifest size limit, within the shared
/// budget. The body is subject to the same idle timeout and minimum rate as uploads, so
/// a stalled client cannot hold its share of the budget for long. The reservation must
/// be kept for as long as the bytes are.
pub(super) async fn read_manifest(
    app: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, Reservation), ApiError> {
    let limit = app.storage.max_manifest_bytes();
    let too_large = |size| StorageError::ManifestTooLarge { size, limit };
    let announced = super::headers::content_length(headers)?;
    if let Some(len) = announced {
        if len > limit {
            return Err(too_large(len).into());
        }
    }
    let cap = announced.unwrap_or(limit);
    let reservation = app.manifest_budget.reserve(cap).await?;
    let mut body = body_stream(body, app.body_idle_timeout, app.min_upload_rate);
    // Content-Length known: exactly that much is held; otherwise grow up to the limit.
    let mut buf = BytesMut::with_capacity(announced.unwrap_or(64 << 10).min(cap) as usize);
    while let Some(data) = body.next().await {
        let data = data.map_err(|e| StorageError::BodyFailed(format!("manifest body: {e}")))?;
        let size = (buf.len() + data.len()) as u64;
        if size > cap {
            return Err(match announced {
                None => too_large(size).into(),
                Some(len) => ApiError::UploadInvalid(format!(
                    "manifest body is longer than its Content-Length of {len} bytes"
                )),
            });
        }
        buf.extend_from_slice(&data);
    }
    Ok((buf.freeze(), reservation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_then_refuses_and_gives_back() {
        let budget = ManifestBudget::new(10 * UNIT, Duration::from_millis(50));
        let a = budget.reserve(6 * UNIT).await.expect("room for the first");
        let b = budget
            .reserve(4 * UNIT - 100)
            .await
            .expect("room for the second");
        assert!(matches!(
            budget.reserve(1).await,
            Err(ApiError::TooManyRequests { .. })
        ));
        drop(a);
        // Larger than the whole budget: takes all of it once it is free.
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(100 * UNIT).await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(b);
        assert!(
            waiting.await.unwrap(),
            "a big body waits for the whole budget"
        );
        assert_eq!(budget.units.available_permits(), 10);
    }
}
