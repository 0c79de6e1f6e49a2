//! Reading what is left of a request body after the request was refused.
//!
//! An HTTP/1.1 server that answers before reading the body and then closes leaves
//! unread bytes in its socket; the kernel answers them with a reset and the client
//! never sees the error. The dispatcher therefore hands handlers a body it can take
//! back, and drains the remainder (bounded in size and time) before answering an error.

use axum::body::Body;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// Most bytes read and discarded after an error.
const DRAIN_LIMIT: u64 = 64 << 20;
/// Longest time spent draining after an error.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// The request body, reachable both by the handler and by the dispatcher.
pub(super) type Slot = Arc<Mutex<Option<Body>>>;

struct SharedBody(Slot);

impl HttpBody for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .map(HttpBody::size_hint)
            .unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

/// A body for the handler, and the slot through which the rest can be drained.
pub(super) fn shared(body: Body) -> (Body, Slot) {
    let slot: Slot = Arc::new(Mutex::new(Some(body)));
    (Body::new(SharedBody(slot.clone())), slot)
}

/// Read and discard what is left of the body. True when it was read to its end.
pub(super) async fn rest(slot: &Slot) -> bool {
    let body = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    let Some(body) = body else { return true };
    if body.is_end_stream() {
        return true;
    }
    let work = async {
        let mut body = body;
        let mut seen: u64 = 0;
        while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
            match frame {
                Ok(f) => {
                    seen += f.data_ref().map_or(0, |d| d.len() as u64);
                    if seen > DRAIN_LIMIT {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, work).await.unwrap_or(false)
}
