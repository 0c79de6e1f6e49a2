//! Registry content storage. Knows nothing of HTTP.
//!
//! - [`db`]: metadata (blob links, manifests, tags, referrers, upload sessions) in SQLite.
//! - [`blobs`]: blob bytes behind `object_store`, published by atomic rename.
//! - [`uploads`]: streaming, hashed, resumable upload sessions.
//!
//! [`Storage`] is the facade the API layer calls. Blob data is shared by every
//! repository; a repository sees a blob only through its link to it. Commit and
//! delete of the same digest are serialised by a striped lock so data is never
//! removed under a link that is being added.

pub mod blobs;
pub mod db;
pub mod error;
mod manifests;
pub mod uploads;
mod writer;

#[cfg(test)]
mod tests;

pub use blobs::ByteStream;
pub use db::{Referrer, StoredManifest};
pub use error::{Result, StorageError};
pub use manifests::PutManifest;

use crate::oci::{Algorithm, Digest, RepoName};
use bytes::Bytes;
use futures::Stream;
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
    /// Upload sessions idle longer than this are removed.
    pub upload_expiry: Duration,
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
    /// Open the store in `opts.data_dir`, creating it if needed.
    pub async fn open(opts: StorageOptions) -> Result<Storage> {
        std::fs::create_dir_all(&opts.data_dir)?;
        let db = db::Db::open(&opts.data_dir.join("metadata.db")).await?;
        let blobs = blobs::BlobStore::open(&opts.data_dir)?;
        Ok(Storage {
            inner: Arc::new(Inner {
                db,
                blobs,
                sessions: uploads::Sessions::default(),
                digest_locks: (0..DIGEST_LOCKS).map(|_| Default::default()).collect(),
                upload_slots: tokio::sync::Semaphore::new(ACTIVE_UPLOADS),
                opts,
            }),
        })
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
        self.inner
            .db
            .repo_blob_size(repo, digest)
            .await?
            .ok_or_else(|| StorageError::BlobUnknown(digest.clone()))
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

    /// Remove blob `digest` from `repo`; its data goes when no repository links it.
    pub async fn delete_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let _guard = self.digest_lock(digest).lock().await;
        match self.inner.db.unlink_blob(repo, digest).await? {
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
        self.inner.db.link_blob(repo, digest, from).await
    }

    /// Start an upload session in `repo`. `algorithm` is the digest the client will most
    /// likely name at the end (hashing starts with it).
    pub async fn start_upload(
        &self,
        repo: &RepoName,
        algorithm: Algorithm,
    ) -> Result<UploadStatus> {
        let id = uuid::Uuid::new_v4().to_string();
        let path = self.inner.blobs.upload_file(&id);
        let file_path = path.clone();
        tokio::task::spawn_blocking(move || std::fs::File::create(file_path))
            .await
            .map_err(|e| StorageError::Io(std::io::Error::other(e)))??;
        self.inner.db.add_upload(&id, repo, now_secs()).await?;
        self.inner.sessions.insert_new(&id, path, algorithm);
        Ok(UploadStatus { id, size: 0 })
    }

    async fn session(
        &self,
        repo: &RepoName,
        id: &str,
    ) -> Result<Arc<tokio::sync::Mutex<uploads::Session>>> {
        let valid_id = uuid::Uuid::parse_str(id).is_ok();
        let owner = if valid_id {
            self.inner.db.upload_repo(id).await?
        } else {
            None
        };
        if owner.as_deref() != Some(repo.as_str()) {
            return Err(StorageError::UploadUnknown(id.to_string()));
        }
        Ok(self
            .inner
            .sessions
            .get_or_load(id, self.inner.blobs.upload_file(id)))
    }

    /// Stream `body` into a session, within the limit of uploads active at once.
    async fn append<S, E>(
        &self,
        session: &mut uploads::Session,
        offset: Option<u64>,
        body: S,
        len: Option<u64>,
    ) -> Result<u64>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let _slot = self
            .inner
            .upload_slots
            .acquire()
            .await
            .map_err(|e| StorageError::Io(std::io::Error::other(e)))?;
        uploads::append(session, offset, body, len).await
    }

    /// How many bytes session `id` holds.
    pub async fn upload_status(&self, repo: &RepoName, id: &str) -> Result<UploadStatus> {
        let session = self.session(repo, id).await?;
        let s = session.lock().await;
        Ok(UploadStatus {
            id: id.to_string(),
            size: s.size,
        })
    }

    /// Append a chunk to session `id`. With `offset`, the chunk must start exactly where
    /// the session ends; with `len`, the body must be exactly that long.
    pub async fn append_upload<S, E>(
        &self,
        repo: &RepoName,
        id: &str,
        offset: Option<u64>,
        len: Option<u64>,
        body: S,
    ) -> Result<UploadStatus>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let session = self.session(repo, id).await?;
        let mut s = session.lock().await;
        self.append(&mut s, offset, body, len).await?;
        Ok(UploadStatus {
            id: id.to_string(),
            size: s.size,
        })
    }

    /// Append an optional last chunk, verify the content is `digest`, and publish it.
    /// A digest mismatch ends the session.
    pub async fn finish_upload<S, E>(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        last_chunk: Option<(Option<u64>, Option<u64>, S)>,
    ) -> Result<u64>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let session = self.session(repo, id).await?;
        let mut s = session.lock().await;
        if let Some((offset, len, body)) = last_chunk {
            self.append(&mut s, offset, body, len).await?;
        }
        let actual = uploads::digest_of(&s, digest.algorithm()).await?;
        if &actual != digest {
            drop(s);
            self.cancel_upload(repo, id).await?;
            return Err(StorageError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let size = s.size;
        {
            let _guard = self.digest_lock(digest).lock().await;
            if self.inner.db.blob_size(digest).await?.is_some() {
                // Already held: keep the existing copy.
                remove_file_quietly(self.inner.blobs.upload_file(id)).await;
            } else {
                self.inner.blobs.commit(id, digest).await?;
            }
            self.inner.db.add_blob(repo, digest, size, Some(id)).await?;
        }
        self.inner.sessions.remove(id);
        Ok(size)
    }

    /// Push a whole blob in one call (monolithic upload).
    pub async fn put_blob<S, E>(
        &self,
        repo: &RepoName,
        digest: &Digest,
        len: Option<u64>,
        body: S,
    ) -> Result<u64>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let status = self.start_upload(repo, digest.algorithm()).await?;
        let result = self
            .finish_upload(repo, &status.id, digest, Some((None, len, body)))
            .await;
        if result.is_err() {
            // The session was never handed to the client: do not leave it behind.
            let _ = self.cancel_upload(repo, &status.id).await;
        }
        result
    }

    /// Abandon upload session `id` and delete what it received.
    pub async fn cancel_upload(&self, repo: &RepoName, id: &str) -> Result<()> {
        let session = self.session(repo, id).await?;
        let _s = session.lock().await;
        if !self.inner.db.remove_upload(id).await? {
            return Err(StorageError::UploadUnknown(id.to_string()));
        }
        remove_file_quietly(self.inner.blobs.upload_file(id)).await;
        self.inner.sessions.remove(id);
        Ok(())
    }

    /// Remove upload sessions older than the configured expiry, and staging files that
    /// belong to no session (left by a crash between creating the file and its row).
    pub async fn expire_uploads(&self) -> Result<usize> {
        let cutoff = now_secs() - self.inner.opts.upload_expiry.as_secs() as i64;
        let old = self.inner.db.uploads_older_than(cutoff).await?;
        let mut removed = 0;
        for id in old {
            if self.inner.db.remove_upload(&id).await? {
                remove_file_quietly(self.inner.blobs.upload_file(&id)).await;
                self.inner.sessions.remove(&id);
                removed += 1;
            }
        }
        let dir = self.inner.blobs.uploads_dir();
        let names: Vec<String> = tokio::task::spawn_blocking(move || {
            std::fs::read_dir(dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .filter_map(|e| e.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default()
        })
        .await
        .unwrap_or_default();
        for name in names {
            if self.inner.db.upload_repo(&name).await?.is_none() {
                remove_file_quietly(self.inner.blobs.upload_file(&name)).await;
                removed += 1;
            }
        }
        Ok(removed)
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
