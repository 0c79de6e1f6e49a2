//! Requests in flight on one connection, so that an HTTP/2 connection with no open
//! stream can be closed after an idle timeout even while it answers PINGs (hyper's
//! keep-alive only checks that the peer is alive, not that it does anything).
//!
//! A request counts as active from the moment its headers reach the service until its
//! response body has been sent (or dropped): a long blob download keeps its connection
//! busy although the handler returned at once.

use axum::body::Body;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Notify;

/// Counts the requests in flight on one connection.
#[derive(Default)]
pub(super) struct Activity {
    active: AtomicUsize,
    changed: Notify,
}

impl Activity {
    /// A request started; it ends when the returned guard is dropped.
    pub(super) fn begin(self: &Arc<Self>) -> InFlight {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
        InFlight(self.clone())
    }

    /// Resolves once no request has been in flight for `idle` without interruption.
    pub(super) async fn idle_for(&self, idle: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so no change between the check and the wait
            // is missed.
            changed.as_mut().enable();
            if self.active.load(Ordering::Acquire) == 0 {
                tokio::select! {
                    () = tokio::time::sleep(idle) => return,
                    () = changed => {}
                }
            } else {
                changed.await;
            }
        }
    }
}

/// One request in flight; dropping it ends the request.
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

/// A response body that keeps its request in flight until it is sent or dropped.
pub(super) fn track(body: Body, in_flight: InFlight) -> Body {
    Body::new(Tracked {
        inner: body,
        _in_flight: in_flight,
    })
}

struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_only_after_the_last_request_ends() {
        let activity = Arc::new(Activity::default());
        let idle = Duration::from_millis(200);
        let guard = activity.begin();
        let start = std::time::Instant::now();
        let a = activity.clone();
        let waiter = tokio::spawn(async move { a.idle_for(idle).await });
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(!waiter.is_finished(), "idle while a request was in flight");
        drop(guard);
        // Activity in the middle of the idle period starts it again.
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(activity.begin());
        waiter.await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(900));
    }
}
