//! Errors of the storage layer. They carry no HTTP knowledge; the registry maps them.

use crate::oci::{Digest, ManifestError};

/// Everything that can go wrong when reading or writing registry content.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The blob is not in this repository.
    #[error("blob unknown to registry: {0}")]
    BlobUnknown(Digest),
    /// No such upload session (finished, cancelled or never started).
    #[error("upload session unknown: {0}")]
    UploadUnknown(String),
    /// A chunk did not start where the upload currently ends.
    #[error("chunk starts at byte {got} but the upload has {current} bytes")]
    RangeMismatch {
        /// Bytes the session holds.
        current: u64,
        /// Where the rejected chunk said it starts.
        got: u64,
    },
    /// The upload body was unusable (bad Content-Range, ...).
    #[error("blob upload invalid: {0}")]
    UploadInvalid(String),
    /// The upload body broke off or went silent before its end.
    #[error("upload body failed: {0}")]
    BodyFailed(String),
    /// The content's digest is not the one the client announced.
    #[error("digest mismatch: client said {expected}, content is {actual}")]
    DigestMismatch {
        /// Digest the client announced.
        expected: Digest,
        /// Digest of the bytes received.
        actual: Digest,
    },
    /// The content's length is not the one the client announced.
    #[error("size mismatch: {0}")]
    SizeInvalid(String),
    /// A requested byte range lies outside the blob.
    #[error("range not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable {
        /// Size of the blob.
        size: u64,
    },
    /// The manifest is malformed or of an unsupported kind.
    #[error(transparent)]
    ManifestInvalid(#[from] ManifestError),
    /// The manifest is over the configured size limit.
    #[error("manifest is {size} bytes; the limit is {limit} bytes")]
    ManifestTooLarge {
        /// Bytes received (at least).
        size: u64,
        /// Configured limit.
        limit: u64,
    },
    /// The manifest references a blob or manifest this repository does not hold.
    #[error("manifest references {0}, which is not in this repository")]
    ManifestBlobUnknown(Digest),
    /// The manifest (tag or digest) is not in this repository.
    #[error("manifest unknown: {0}")]
    ManifestUnknown(String),
    /// The repository holds no content.
    #[error("repository name not known to registry: {0}")]
    NameUnknown(String),
    /// A manifest of the repository still references the blob or manifest being
    /// deleted.
    #[error(
        "{target} is referenced by manifest {by} in this repository; delete that manifest first"
    )]
    InUse {
        /// What the client asked to delete.
        target: Digest,
        /// A manifest that references it.
        by: Digest,
    },
    /// Too many upload sessions are open (in all, or for this client).
    #[error("too many upload sessions: {0}; finish or cancel some, or retry later")]
    TooManyUploads(String),
    /// The operation is valid but not supported here.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Disk or file-system error.
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Metadata database error.
    #[error("metadata database error: {0}")]
    Db(#[from] sqlx::Error),
    /// Object store error.
    #[error("object store error: {0}")]
    ObjectStore(#[from] object_store::Error),
}

/// SQLite's primary result code `SQLITE_FULL` ("database or disk is full").
const SQLITE_FULL: i32 = 13;

impl StorageError {
    /// Whether the data volume is full or over quota: `ENOSPC` or `EDQUOT` from the file
    /// system, or `SQLITE_FULL` from the metadata database, anywhere in the source chain
    /// (object_store and sqlx wrap the underlying `io::Error`).
    pub fn is_storage_full(&self) -> bool {
        chain_is_full(self)
    }
}

/// Looks at `err`, everything it wraps, and its sources.
fn chain_is_full(err: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        let errno = io.raw_os_error();
        if errno == Some(libc::ENOSPC)
            || errno == Some(libc::EDQUOT)
            || io.kind() == std::io::ErrorKind::StorageFull
        {
            return true;
        }
        // `io::Error::source` skips a custom error's own value; look at it directly.
        if let Some(inner) = io.get_ref() {
            if chain_is_full(inner) {
                return true;
            }
        }
    }
    if let Some(sqlx::Error::Database(db)) = err.downcast_ref::<sqlx::Error>() {
        // sqlx reports SQLite's extended code; the primary code is its low byte.
        let code = db.code().and_then(|c| c.parse::<i32>().ok());
        if code.is_some_and(|c| c & 0xff == SQLITE_FULL) {
            return true;
        }
    }
    err.source().is_some_and(chain_is_full)
}

impl From<tokio::task::JoinError> for StorageError {
    /// A blocking file operation panicked or was cancelled.
    fn from(e: tokio::task::JoinError) -> Self {
        StorageError::Io(std::io::Error::other(e))
    }
}

/// Result alias for the storage layer.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
