//! Registry content storage. Knows nothing of HTTP.
//!
//! - [`db`]: metadata (blob links, manifests, tags, referrers, references, upload
//!   sessions) in SQLite.
//! - [`blobs`]: blob bytes behind `object_store`, published by atomic rename.
//! - [`uploads`]: the upload-session lifecycle: streaming, hashed, resumable, durable.
//! - [`cache`]: an exact, bounded cache of manifest and blob-size reads.
//! - [`sweep`]: expiry of idle sessions and removal of orphan files.
//!
//! [`Storage`] is the facade the API layer calls. Blob data is shared by every
//! repository; a repository sees a blob only through its link to it. Commit, delete
//! and the orphan sweep of the same digest are serialised by a striped lock, so data
//! is never removed under a link that is being added. Reference integrity (a manifest
//! is accepted only with its blobs present; a referenced blob cannot be deleted) is
//! checked inside the metadata transaction that makes the change.

mod blob_read;
pub mod blobs;
mod cache;
pub mod db;
pub mod error;
mod manifests;
mod sweep;
pub mod uploads;
mod warm;

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod tests;

pub use blobs::ByteStream;
pub use db::{Referrer, StoredManifest};
pub use error::{Result, StorageError};
pub use manifests::PutManifest;
pub use sweep::SweepReport;
pub use uploads::{Body, Chunk, UploadLimits};

use crate::oci::{Digest, RepoName};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Number of locks digests are striped over.
const DIGEST_LOCKS: usize = 64;
/// Uploads streaming into staging files at once. Each holds up to two write buffers
/// (1 MiB), so this bounds upload memory however many clients push; further chunks wait
/// (unread, in the client's socket) for a slot.
const ACTIVE_UPLOADS: usize = 64;

/// Storage settings.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// Directory for the database, blobs and uploads.
    pub data_dir: PathBuf,
    /// Largest manifest accepted, in bytes.
    pub max_manifest_bytes: u64,
    /// Upload sessions without acknowledged activity for longer than this are removed.
    pub upload_expiry: Duration,
    /// Limits on upload sessions open at once.
    pub upload_limits: UploadLimits,
    /// Bytes of manifests and blob sizes kept in memory (0: no cache).
    pub cache_bytes: u64,
    /// Memory for downloads' read-ahead buffers beyond each download's first chunk.
    pub read_ahead_bytes: u64,
}

/// A byte range requested of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `start-`: from `start` to the end.
    From(u64),
    /// `start-end`, inclusive.
    FromTo(u64, u64),
    /// `-n`: the last `n` bytes.
    Suffix(u64),
    /// A `bytes=` range that no blob can satisfy (malformed, or ending before it starts).
    /// The size of the blob is only known after the lookup, so the refusal waits for it.
    Invalid,
}

impl ByteRange {
    /// Resolve against a blob of `size` bytes to a half-open `start..end`; a range that
    /// starts past the end, is empty or [`ByteRange::Invalid`] is not satisfiable.
    pub fn resolve(self, size: u64) -> Result<(u64, u64)> {
        let (start, end) = match self {
            ByteRange::From(s) => (s, size),
            ByteRange::FromTo(s, e) => (s, e.saturating_add(1).min(size)),
            ByteRange::Suffix(n) => (size.saturating_sub(n), size),
            ByteRange::Invalid => return Err(StorageError::RangeNotSatisfiable { size }),
        };
        if start >= size || start >= end {
            return Err(StorageError::RangeNotSatisfiable { size });
        }
        Ok((start, end))
    }
}

/// A blob ready to be sent.
pub struct BlobRead {
    /// Total size of the blob.
    pub size: u64,
    /// The half-open range being sent (the whole blob when no range was asked).
    pub range: (u64, u64),
    /// The bytes.
    pub body: ByteStream,
}

/// Where an upload session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    /// Session id.
    pub id: String,
    /// Bytes received so far.
    pub size: u64,
}

/// The registry's content store.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    db: db::Db,
    blobs: blobs::BlobStore,
    sessions: uploads::Sessions,
    cache: cache::MetaCache,
    digest_locks: Vec<tokio::sync::Mutex<()>>,
    upload_slots: tokio::sync::Semaphore,
    opts: StorageOptions,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Storage {
    /// Open the store in `opts.data_dir`, creating it if needed: load the upload
    /// sessions (cut back to what was acknowledged), then sweep orphan files.
    pub async fn open(opts: StorageOptions) -> Result<Storage> {
        std::fs::create_dir_all(&opts.data_dir)?;
        let db = db::Db::open(&opts.data_dir.join("metadata.db")).await?;
        let blobs = blobs::BlobStore::open(&opts.data_dir, opts.read_ahead_bytes)?;
        let storage = Storage {
            inner: Arc::new(Inner {
                db,
                blobs,
                sessions: uploads::Sessions::new(opts.upload_limits),
                cache: cache::MetaCache::new(opts.cache_bytes),
                digest_locks: (0..DIGEST_LOCKS).map(|_| Default::default()).collect(),
                upload_slots: tokio::sync::Semaphore::new(ACTIVE_UPLOADS),
                opts,
            }),
        };
        let loaded = storage.load_uploads().await?;
        if loaded > 0 {
            tracing::info!(sessions = loaded, "resumed upload sessions");
        }
        let report = storage.sweep().await?;
        if report.removed() > 0 {
            tracing::info!(?report, "start-up sweep");
        }
        Ok(storage)
    }

    /// Upload sessions open now.
    pub fn open_uploads(&self) -> usize {
        self.inner.sessions.len()
    }

    /// The configured manifest size limit.
    pub fn max_manifest_bytes(&self) -> u64 {
        self.inner.opts.max_manifest_bytes
    }

    fn digest_lock(&self, digest: &Digest) -> &tokio::sync::Mutex<()> {
        let b = digest.hex().as_bytes();
        let idx = (usize::from(b[0]) * 31 + usize::from(b[1])) % DIGEST_LOCKS;
        &self.inner.digest_locks[idx]
    }

    /// Size of blob `digest` in `repo`.
    pub async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        let cache = &self.inner.cache;
        let v = cache.version(repo);
        if let Some(size) = cache.blob_size(repo, v, digest) {
            return Ok(size);
        }
        let size = self
            .inner
            .db
            .repo_blob_size(repo, digest)
            .await?
            .ok_or_else(|| StorageError::BlobUnknown(digest.clone()))?;
        cache.put_blob_size(repo, v, digest, size);
        Ok(size)
    }

    /// Open blob `digest` of `repo`, optionally a range of it.
    pub async fn read_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobRead> {
        let size = self.blob_size(repo, digest).await?;
        let range = match range {
            Some(r) => r.resolve(size)?,
            None => (0, size),
        };
        let body = self.inner.blobs.read(digest, range.0, range.1).await?;
        Ok(BlobRead { size, range, body })
    }

    /// Remove blob `digest` from `repo`, unless a manifest of `repo` references it
    /// ([`StorageError::InUse`]); its data goes when no repository links it.
    pub async fn delete_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let _guard = self.digest_lock(digest).lock().await;
        let unlinked = self.inner.db.unlink_blob(repo, digest).await?;
        self.inner.cache.changed(repo);
        match unlinked {
            None => Err(StorageError::BlobUnknown(digest.clone())),
            Some(true) => self.inner.blobs.delete(digest).await,
            Some(false) => Ok(()),
        }
    }

    /// Link blob `digest` into `repo` from `from`, or from anywhere in the registry when
    /// `from` is `None`. False when the source does not hold it.
    pub async fn mount_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<bool> {
        let _guard = self.digest_lock(digest).lock().await;
        let linked = self.inner.db.link_blob(repo, digest, from).await?;
        self.inner.cache.changed(repo);
        Ok(linked)
    }

    /// Up to `limit` repositories that link blob `digest` (where a mount without
    /// `from` could take it from), sorted.
    pub async fn blob_repositories(&self, digest: &Digest, limit: u32) -> Result<Vec<String>> {
        self.inner.db.blob_repositories(digest, limit).await
    }

    /// Tags of `repo`, sorted, at most `n`, strictly after `last`; `None` if the
    /// repository does not exist.
    pub async fn tags(&self, repo: &RepoName, n: u32, last: Option<&str>) -> Result<Vec<String>> {
        if !self.inner.db.repo_exists(repo).await? {
            return Err(StorageError::NameUnknown(repo.to_string()));
        }
        self.inner.db.tags(repo, last, n).await
    }

    /// Repository names, sorted, at most `n`, strictly after `last`.
    pub async fn catalog(&self, n: u32, last: Option<&str>) -> Result<Vec<String>> {
        self.inner.db.repositories(last, n).await
    }

    /// Manifests in `repo` whose subject is `subject`.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        self.inner.db.referrers(repo, subject, artifact_type).await
    }
}

async fn remove_file_quietly(path: PathBuf) {
    if let Err(e) = tokio::fs::remove_file(&path).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "could not remove staging file");
        }
    }
}
