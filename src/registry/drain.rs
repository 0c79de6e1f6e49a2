//! Reading what is left of a request body after the request was refused.
//!
//! An HTTP/1.1 server that answers before reading the body and then closes leaves
//! unread bytes in its socket; the kernel answers them with a reset and the client
//! never sees the error. The dispatcher therefore hands handlers a body it can take
//! back, and drains the remainder before answering an error, within bounds: bodies
//! announced larger than [`DRAIN_LIMIT`], bodies that go quiet, and `Expect:
//! 100-continue` requests whose body was never asked for are not waited for (the
//! connection is closed after the answer instead).

use axum::body::Body;
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// Most bytes read and discarded after an error.
const DRAIN_LIMIT: u64 = 64 << 20;
/// Longest time spent draining after an error.
const DRAIN_TIME: Duration = Duration::from_secs(10);
/// Longest wait for the next piece of a body being drained.
const DRAIN_IDLE: Duration = Duration::from_secs(2);

/// The request body, reachable both by the handler and by the dispatcher.
pub(super) struct Slot {
    body: Mutex<Option<Body>>,
    /// Whether the handler ever asked for body data (which sends `100 Continue`).
    polled: AtomicBool,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Body>> {
        self.body.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct SharedBody(Arc<Slot>);

impl HttpBody for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.0.polled.store(true, Ordering::Relaxed);
        let mut guard = self.0.lock();
        match guard.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.lock().as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .lock()
            .as_ref()
            .map(HttpBody::size_hint)
            .unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

/// A body for the handler, and the slot through which the rest can be drained.
pub(super) fn shared(body: Body) -> (Body, Arc<Slot>) {
    let slot = Arc::new(Slot {
        body: Mutex::new(Some(body)),
        polled: AtomicBool::new(false),
    });
    (Body::new(SharedBody(slot.clone())), slot)
}

/// Read and discard what is left of the body. True when it was read to its end (the
/// connection can be reused), false when the caller should close it instead.
pub(super) async fn rest(slot: &Slot, headers: &HeaderMap) -> bool {
    let body = slot.lock().take();
    let Some(mut body) = body else { return true };
    if body.is_end_stream() {
        return true;
    }
    let expects_continue = headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue && !slot.polled.load(Ordering::Relaxed) {
        // The client waits for 100 Continue before sending: do not invite the body.
        return false;
    }
    if body.size_hint().lower() > DRAIN_LIMIT {
        return false;
    }
    let work = async {
        let mut seen: u64 = 0;
        loop {
            let next = tokio::time::timeout(DRAIN_IDLE, http_body_util::BodyExt::frame(&mut body));
            match next.await {
                Ok(None) => return true,
                Ok(Some(Ok(f))) => {
                    seen += f.data_ref().map_or(0, |d| d.len() as u64);
                    if seen > DRAIN_LIMIT {
                        return false;
                    }
                }
                Ok(Some(Err(_))) | Err(_) => return false,
            }
        }
    };
    tokio::time::timeout(DRAIN_TIME, work)
        .await
        .unwrap_or(false)
}
