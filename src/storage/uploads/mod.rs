//! Upload sessions: the one owner of their lifecycle.
//!
//! ```text
//!   open ──(append)──> open ──(finish)──> committing ──> committed
//!     │                                        └──(digest mismatch, lost file)──> cancelled
//!     ├──(DELETE)──> cancelled
//!     └──(idle past upload_expiry)──> expired
//! ```
//!
//! A session is one [`Session`] behind its own async lock, in a table that is the only
//! way to reach it. Every operation takes the lock, then checks the session is still
//! open and belongs to the repository named in the URL; a request that reaches a
//! session that was committed, cancelled or expired meanwhile gets
//! [`StorageError::UploadUnknown`] and changes nothing. A session leaves the table when
//! it ends, under its lock.
//!
//! Its durable state is its database row (the size acknowledged to the client, the time
//! of the last acknowledged activity) plus its staging file, which is only ever created
//! by [`Storage::start_upload`] (never re-created implicitly). A chunk is acknowledged
//! (202) only after it is fsynced and the new size is recorded; after a restart the
//! file is cut back to the recorded size, dropping any unacknowledged tail.
//!
//! Work that changes a session runs in a task of its own, which holds the session's
//! lock until the work is complete or rolled back: a request dropped half-way (client
//! gone, HTTP/2 stream reset) cannot leave a half-written chunk for the next request.
//! Commit checks, from the file itself, that its length is the acknowledged size; the
//! running hash is used for the digest because it provably covers exactly those bytes
//! (it is advanced only by bytes written to the file under the lock and is reset when
//! a chunk is taken back), else the file is hashed again.

mod append;
mod writer;
pub(crate) use writer::UploadBuffers;

use super::error::{Result, StorageError};
use super::{now_secs, remove_file_quietly, Storage, UploadStatus};
use crate::oci::{Algorithm, Digest, DigestHasher, RepoName};
use bytes::Bytes;
use futures::Stream;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedMutexGuard;

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Accepting chunks.
    Open,
    /// Being verified and published.
    Committing,
    /// Published as a blob.
    Committed,
    /// Deleted by the client, or ended by a failed commit.
    Cancelled,
    /// Removed after a period without activity.
    Expired,
}

/// One upload session; reached only through its lock.
pub(super) struct Session {
    id: String,
    repo: String,
    client: Option<IpAddr>,
    /// Staging file.
    path: PathBuf,
    state: State,
    /// Bytes acknowledged (and recorded).
    size: u64,
    /// Hash of the file's first `size` bytes, when known.
    hasher: Option<DigestHasher>,
    /// Last acknowledged activity (unix seconds).
    last_active: i64,
    /// The file may hold bytes past `size` (a roll-back failed): cut before use.
    dirty: bool,
}

/// Limits on upload sessions.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Sessions open at once in the whole registry.
    pub max_sessions: usize,
    /// Sessions open at once for one client address.
    pub max_sessions_per_client: usize,
}

type Shared = Arc<tokio::sync::Mutex<Session>>;

#[derive(Default)]
struct Table {
    map: HashMap<String, Shared>,
    per_client: HashMap<IpAddr, usize>,
}

/// The table of open sessions, with their counts per client.
pub(super) struct Sessions {
    table: Mutex<Table>,
    limits: UploadLimits,
}

impl Sessions {
    /// An empty table enforcing `limits`.
    pub(super) fn new(limits: UploadLimits) -> Sessions {
        Sessions {
            table: Mutex::new(Table::default()),
            limits,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add `session`, locked, within the limits unless `force` (sessions loaded at
    /// start-up are kept whatever the limits).
    fn insert(&self, session: Session, force: bool) -> Result<OwnedMutexGuard<Session>> {
        let mut t = self.table();
        if !force {
            if t.map.len() >= self.limits.max_sessions {
                return Err(StorageError::TooManyUploads(format!(
                    "the registry has {} upload sessions open, its limit",
                    t.map.len()
                )));
            }
            if let Some(ip) = session.client {
                let n = t.per_client.get(&ip).copied().unwrap_or(0);
                if n >= self.limits.max_sessions_per_client {
                    return Err(StorageError::TooManyUploads(format!(
                        "{ip} has {n} upload sessions open, the limit per client"
                    )));
                }
            }
        }
        if let Some(ip) = session.client {
            *t.per_client.entry(ip).or_default() += 1;
        }
        let id = session.id.clone();
        let shared = Arc::new(tokio::sync::Mutex::new(session));
        let guard = shared
            .clone()
            .try_lock_owned()
            .map_err(|_| StorageError::Io(std::io::Error::other("new session already locked")))?;
        t.map.insert(id, shared);
        Ok(guard)
    }

    fn get(&self, id: &str) -> Option<Shared> {
        self.table().map.get(id).cloned()
    }

    fn snapshot(&self) -> Vec<Shared> {
        self.table().map.values().cloned().collect()
    }

    fn contains(&self, id: &str) -> bool {
        self.table().map.contains_key(id)
    }

    /// End `session` (held locked by the caller): it leaves the table for good.
    fn end(&self, session: &mut Session, state: State) {
        session.state = state;
        let mut t = self.table();
        if t.map.remove(&session.id).is_some() {
            if let Some(ip) = session.client {
                if let Some(n) = t.per_client.get_mut(&ip) {
                    *n -= 1;
                    if *n == 0 {
                        t.per_client.remove(&ip);
                    }
                }
            }
        }
    }

    /// Sessions open now.
    pub(super) fn len(&self) -> usize {
        self.table().map.len()
    }
}

/// Run `work` to its end in a task of its own, so that dropping the request that
/// asked for it cannot stop it half-way.
async fn run_to_end<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(work).await.map_err(StorageError::from)?
}

/// An upload body: a stream of chunks that can be moved into a task.
pub trait Body:
    Stream<Item = std::result::Result<Bytes, Self::Error>> + Unpin + Send + 'static
{
    /// The stream's error.
    type Error: std::fmt::Display + Send + 'static;
}

impl<S, E> Body for S
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    type Error = E;
}

/// A chunk: its announced start offset and length, and its bytes.
pub type Chunk<S> = (Option<u64>, Option<u64>, S);

impl Storage {
    /// Start an upload session in `repo` for `client`. `algorithm` is the digest the
    /// client will most likely name at the end (hashing starts with it).
    pub async fn start_upload(
        &self,
        repo: &RepoName,
        algorithm: Algorithm,
        client: Option<IpAddr>,
    ) -> Result<UploadStatus> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_secs();
        let mut guard = self.inner.sessions.insert(
            Session {
                id: id.clone(),
                repo: repo.to_string(),
                client,
                path: self.inner.blobs.upload_file(&id),
                state: State::Open,
                size: 0,
                hasher: Some(algorithm.hasher()),
                last_active: now,
                dirty: false,
            },
            false,
        )?;
        let this = self.clone();
        let repo = repo.clone();
        run_to_end(async move {
            let path = guard.path.clone();
            let created = tokio::task::spawn_blocking(move || {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)
            })
            .await
            .map_err(StorageError::from)
            .and_then(|r| r.map_err(StorageError::from));
            let client = client.map(|ip| ip.to_string());
            let recorded = match created {
                Ok(_) => {
                    this.inner
                        .db
                        .add_upload(&id, &repo, client.as_deref(), now)
                        .await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = recorded {
                remove_file_quietly(guard.path.clone()).await;
                this.inner.sessions.end(&mut guard, State::Cancelled);
                return Err(e);
            }
            Ok(UploadStatus { id, size: 0 })
        })
        .await
    }

    /// Lock session `id` of `repo`, which must be open.
    async fn open_session(&self, repo: &RepoName, id: &str) -> Result<OwnedMutexGuard<Session>> {
        let unknown = || StorageError::UploadUnknown(id.to_string());
        let shared = self.inner.sessions.get(id).ok_or_else(unknown)?;
        let mut s = shared.lock_owned().await;
        if s.state != State::Open || s.repo != repo.as_str() {
            return Err(unknown());
        }
        if s.dirty {
            append::cut_back(&mut s).await;
            if s.dirty {
                return Err(StorageError::Io(std::io::Error::other(
                    "the upload's staging file could not be cut back to its acknowledged size",
                )));
            }
        }
        Ok(s)
    }

    /// How many bytes session `id` holds.
    pub async fn upload_status(&self, repo: &RepoName, id: &str) -> Result<UploadStatus> {
        let s = self.open_session(repo, id).await?;
        Ok(UploadStatus {
            id: id.to_string(),
            size: s.size,
        })
    }

    /// Stream `body` into a session, within the limit of uploads active at once.
    async fn append<S: Body>(&self, session: &mut Session, chunk: Chunk<S>) -> Result<u64> {
        let (offset, len, body) = chunk;
        let _slot = self
            .inner
            .upload_slots
            .acquire()
            .await
            .map_err(|e| StorageError::Io(std::io::Error::other(e)))?;
        append::append(session, offset, body, len, &self.inner.upload_buffers).await
    }

    /// Append a chunk to session `id` and acknowledge it durably. With an offset, the
    /// chunk must start exactly where the session ends; with a length, the body must be
    /// exactly that long.
    pub async fn append_upload<S: Body>(
        &self,
        repo: &RepoName,
        id: &str,
        chunk: Chunk<S>,
    ) -> Result<UploadStatus> {
        let mut s = self.open_session(repo, id).await?;
        let this = self.clone();
        run_to_end(async move {
            let (before, hasher) = (s.size, s.hasher.clone());
            this.append(&mut s, chunk).await?;
            let now = now_secs();
            let recorded = this.inner.db.set_upload_size(&s.id, s.size, now).await;
            if !matches!(recorded, Ok(true)) {
                // Not recorded, so not acknowledged: take the chunk back.
                (s.size, s.hasher) = (before, hasher);
                append::cut_back(&mut s).await;
                return Err(recorded
                    .err()
                    .unwrap_or_else(|| StorageError::UploadUnknown(s.id.clone())));
            }
            s.last_active = now;
            Ok(UploadStatus {
                id: s.id.clone(),
                size: s.size,
            })
        })
        .await
    }

    /// Append an optional last chunk, verify the content is `digest`, and publish it.
    /// A digest mismatch ends the session; other failures leave it as it was.
    pub async fn finish_upload<S: Body>(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        last_chunk: Option<Chunk<S>>,
    ) -> Result<u64> {
        let mut s = self.open_session(repo, id).await?;
        let this = self.clone();
        let (repo, digest) = (repo.clone(), digest.clone());
        run_to_end(async move {
            let (acked, hasher) = (s.size, s.hasher.clone());
            if let Some(chunk) = last_chunk {
                this.append(&mut s, chunk).await?;
            }
            s.state = State::Committing;
            match this.commit(&mut s, &repo, &digest).await {
                Ok(size) => Ok(size),
                Err(Outcome::Reopen(e)) => {
                    (s.size, s.hasher, s.state) = (acked, hasher, State::Open);
                    append::cut_back(&mut s).await;
                    Err(e)
                }
                Err(Outcome::Ended(e)) => {
                    if let Err(err) = this.discard(&mut s, State::Cancelled).await {
                        tracing::warn!(id = %s.id, %err, "could not remove an ended upload session");
                    }
                    Err(e)
                }
            }
        })
        .await
    }

    /// Verify session `s` holds `digest` and publish it as a blob of `repo`.
    async fn commit(
        &self,
        s: &mut Session,
        repo: &RepoName,
        digest: &Digest,
    ) -> std::result::Result<u64, Outcome> {
        let path = s.path.clone();
        let on_disk = tokio::fs::metadata(&path)
            .await
            .map_err(|e| Outcome::Ended(e.into()))?
            .len();
        if on_disk != s.size {
            return Err(Outcome::Ended(StorageError::Io(std::io::Error::other(
                format!(
                    "upload {}: staging file holds {on_disk} bytes, {} were acknowledged",
                    s.id, s.size
                ),
            ))));
        }
        let actual = append::digest_of(s, digest.algorithm())
            .await
            .map_err(Outcome::Reopen)?;
        if &actual != digest {
            return Err(Outcome::Ended(StorageError::DigestMismatch {
                expected: digest.clone(),
                actual,
            }));
        }
        let size = s.size;
        let _guard = self.digest_lock(digest).lock().await;
        let held = self
            .inner
            .db
            .blob_size(digest)
            .await
            .map_err(Outcome::Reopen)?;
        if held.is_some() {
            // Already held: keep the existing copy.
            remove_file_quietly(path).await;
        } else {
            self.inner
                .blobs
                .commit(&s.id, digest)
                .await
                .map_err(Outcome::Reopen)?;
        }
        // From here the staging file is gone: any failure ends the session. A blob
        // file just published without its row is removed at once, still under the
        // digest's lock (or, after a crash, by the orphan sweep).
        if let Err(e) = self
            .inner
            .db
            .add_blob(repo, digest, size, Some(&s.id))
            .await
        {
            if held.is_none() {
                if let Err(err) = self.inner.blobs.delete(digest).await {
                    tracing::warn!(%digest, %err, "could not remove an unrecorded blob file");
                }
            }
            return Err(Outcome::Ended(e));
        }
        self.inner.cache.changed(repo);
        self.inner.sessions.end(s, State::Committed);
        if held.is_none() {
            self.inner.blobs.warm(digest);
        }
        Ok(size)
    }

    /// Push a whole blob in one call (monolithic upload).
    pub async fn put_blob<S: Body>(
        &self,
        repo: &RepoName,
        digest: &Digest,
        len: Option<u64>,
        body: S,
        client: Option<IpAddr>,
    ) -> Result<u64> {
        let status = self.start_upload(repo, digest.algorithm(), client).await?;
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
        let mut s = self.open_session(repo, id).await?;
        let this = self.clone();
        run_to_end(async move { this.discard(&mut s, State::Cancelled).await }).await
    }

    /// End session `s` as `state` and delete its row and staging file.
    async fn discard(&self, s: &mut Session, state: State) -> Result<()> {
        self.inner.sessions.end(s, state);
        let removed = self.inner.db.remove_upload(&s.id).await;
        remove_file_quietly(s.path.clone()).await;
        removed.map(|_| ())
    }

    /// End sessions idle for longer than the configured expiry (never one a request is
    /// using), then delete staging files that belong to no session. Returns how many
    /// sessions and files went.
    pub(super) async fn expire_uploads(&self) -> Result<usize> {
        let cutoff = now_secs() - self.inner.opts.upload_expiry.as_secs() as i64;
        let mut removed = 0;
        for shared in self.inner.sessions.snapshot() {
            let Ok(mut s) = shared.try_lock_owned() else {
                continue; // in use: active by definition
            };
            if s.state == State::Open && s.last_active <= cutoff {
                let this = self.clone();
                run_to_end(async move { this.discard(&mut s, State::Expired).await }).await?;
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
            // A session enters the table before its file is created, so a file of a
            // session being started is never taken for an orphan.
            if !self.inner.sessions.contains(&name) {
                remove_file_quietly(self.inner.blobs.upload_file(&name)).await;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Load the recorded sessions at start-up, cutting each staging file back to its
    /// acknowledged size. Sessions whose file is missing or short are dropped.
    pub(super) async fn load_uploads(&self) -> Result<usize> {
        let mut loaded = 0;
        for row in self.inner.db.uploads().await? {
            let path = self.inner.blobs.upload_file(&row.id);
            let on_disk = tokio::fs::metadata(&path).await.map(|m| m.len()).ok();
            let size = row.size.or(on_disk);
            let usable = matches!((on_disk, size), (Some(d), Some(s)) if d >= s);
            let (Some(size), true, Ok(_)) = (size, usable, uuid::Uuid::parse_str(&row.id)) else {
                tracing::warn!(id = %row.id, "dropping an upload session whose staging file is missing or short");
                self.inner.db.remove_upload(&row.id).await?;
                remove_file_quietly(path).await;
                continue;
            };
            let mut session = Session {
                id: row.id.clone(),
                repo: row.repo,
                client: row.client.and_then(|c| c.parse().ok()),
                path,
                state: State::Open,
                size,
                hasher: None,
                last_active: row.updated,
                dirty: on_disk != Some(size),
            };
            if session.dirty {
                append::cut_back(&mut session).await;
            }
            drop(self.inner.sessions.insert(session, true)?);
            loaded += 1;
        }
        Ok(loaded)
    }
}

/// How a failed commit leaves its session.
enum Outcome {
    /// Nothing was published and the staging file is intact: the session reopens as
    /// it was before the request.
    Reopen(StorageError),
    /// The session cannot go on.
    Ended(StorageError),
}
