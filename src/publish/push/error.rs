//! Errors of the push pipeline.

use crate::client::ClientError;
use crate::oci::Digest;
use std::path::PathBuf;

/// Why pushing an image (or moving its tags) failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The `docker save` archive is not readable or not in a known layout.
    #[error("{}: {reason}", path.display())]
    Archive {
        /// The archive file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A local file operation failed (reading the archive, temp files, the cache).
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A layer's content does not have the diff id the image config names.
    #[error("layer {index} of {path}: content is {actual}, the config says {expected}")]
    DiffIdMismatch {
        /// The archive file.
        path: PathBuf,
        /// Position of the layer in the image.
        index: usize,
        /// The diff id in the image config.
        expected: Digest,
        /// The digest of the uncompressed content.
        actual: Digest,
    },
    /// The registry refused a request (not worth retrying), or answered unexpectedly.
    #[error("{context}: {source}")]
    Registry {
        /// What was being done.
        context: String,
        /// The client error.
        #[source]
        source: Box<ClientError>,
    },
    /// A transient failure went on past the retry budget.
    #[error("{context}: gave up after {attempts} attempts: {source}")]
    RetriesExhausted {
        /// What was being done.
        context: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        #[source]
        source: Box<ClientError>,
    },
    /// What the registry serves back differs from what was pushed.
    #[error("verification failed: {0}")]
    Verify(String),
    /// A caller-given value cannot be used (tag, annotation, option).
    #[error("invalid input: {0}")]
    Invalid(String),
}

impl PushError {
    /// An [`PushError::Io`] with its context.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> PushError {
        PushError::Io {
            context: context.into(),
            source,
        }
    }

    /// A [`PushError::Registry`] with its context.
    pub(crate) fn registry(context: impl Into<String>, source: ClientError) -> PushError {
        PushError::Registry {
            context: context.into(),
            source: Box::new(source),
        }
    }
}
