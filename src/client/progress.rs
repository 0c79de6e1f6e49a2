//! Progress reporting for long transfers.

use std::fmt;
use std::sync::Arc;
use tokio::sync::watch;

/// How far a transfer has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgressEvent {
    /// Bytes accepted by the registry (uploads) or written locally (downloads) so far.
    pub done: u64,
    /// Total size, when known in advance.
    pub total: Option<u64>,
}

/// A progress hook: called with the bytes done after each chunk or buffer.
///
/// Build it from a closure ([`Progress::new`]) or get a `watch` channel
/// ([`Progress::channel`]) whose receiver always holds the latest event.
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(ProgressEvent) + Send + Sync>);

impl Progress {
    /// A hook calling `f` with each event.
    pub fn new(f: impl Fn(ProgressEvent) + Send + Sync + 'static) -> Progress {
        Progress(Arc::new(f))
    }

    /// A hook publishing each event to a `watch` channel, and its receiver.
    pub fn channel() -> (Progress, watch::Receiver<ProgressEvent>) {
        let (tx, rx) = watch::channel(ProgressEvent::default());
        let hook = Progress::new(move |event| {
            // No receiver left is not an error for the transfer.
            let _ = tx.send(event);
        });
        (hook, rx)
    }

    /// Report `event`.
    pub fn report(&self, event: ProgressEvent) {
        (self.0)(event)
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Progress(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn closure_and_channel_hooks_see_events() {
        let seen = Arc::new(AtomicU64::new(0));
        let s = seen.clone();
        let hook = Progress::new(move |e| s.store(e.done, Ordering::SeqCst));
        hook.report(ProgressEvent {
            done: 42,
            total: Some(100),
        });
        assert_eq!(seen.load(Ordering::SeqCst), 42);

        let (hook, rx) = Progress::channel();
        hook.report(ProgressEvent {
            done: 7,
            total: None,
        });
        assert_eq!(rx.borrow().done, 7);
        drop(rx);
        hook.report(ProgressEvent::default());
    }
}
