//! Per-layer progress events, for a progress bar or a log.

use crate::oci::{Digest, RepoName};
use std::fmt;
use std::sync::Arc;

/// What happened to one blob of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerEvent {
    /// Compression started (`total`: uncompressed bytes).
    Compressing {
        /// Uncompressed size of the layer.
        total: u64,
    },
    /// The registry already holds the blob: nothing is sent.
    Exists {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// The blob was mounted from another repository: nothing is sent.
    Mounted {
        /// The blob.
        digest: Digest,
        /// The repository it was mounted from.
        from: RepoName,
    },
    /// A chunk was accepted: `sent` of `total` bytes are in the registry.
    Uploaded {
        /// Bytes of the blob the registry holds.
        sent: u64,
        /// Size of the blob.
        total: u64,
        /// Offset at which the accepted chunk started.
        chunk_start: u64,
    },
    /// After a failure, the upload goes on at `offset`, as the registry reported.
    Resumed {
        /// Bytes the registry reported holding.
        offset: u64,
        /// The failure that interrupted the upload.
        after: String,
    },
    /// The session was lost (the registry forgot it): the blob starts again at 0.
    Restarted {
        /// Why.
        reason: String,
    },
    /// The blob is complete in the registry.
    Done {
        /// The blob.
        digest: Digest,
    },
}

/// Which blob an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    /// Layer number `n` of the image (base layer 0).
    Layer(usize),
    /// The image config.
    Config,
}

/// The function behind a [`PushProgress`].
type Hook = dyn Fn(BlobKind, &LayerEvent) + Send + Sync;

/// A progress hook: called with each event of each blob. Cheap to clone.
#[derive(Clone)]
pub struct PushProgress(Arc<Hook>);

impl PushProgress {
    /// A hook calling `f`. It runs on the pushing task: keep it short, never block.
    pub fn new(f: impl Fn(BlobKind, &LayerEvent) + Send + Sync + 'static) -> PushProgress {
        PushProgress(Arc::new(f))
    }

    /// A hook that ignores every event.
    pub fn none() -> PushProgress {
        PushProgress::new(|_, _| {})
    }

    /// Report `event` about `blob`.
    pub fn report(&self, blob: BlobKind, event: &LayerEvent) {
        (self.0)(blob, event)
    }
}

impl Default for PushProgress {
    fn default() -> Self {
        PushProgress::none()
    }
}

impl fmt::Debug for PushProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PushProgress(..)")
    }
}
