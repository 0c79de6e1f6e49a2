//! Upload sessions: chunks are appended to a staging file while being hashed.
//!
//! A session's durable state is its database row plus its staging file; the file's
//! length is the session's offset. The running hash is kept in memory and rebuilt
//! from the file when the server restarted in between. Every append is fsynced
//! before it is acknowledged, and an append that fails half-way (aborted body, size
//! mismatch) is rolled back by truncating the file to where it started.

use super::error::{Result, StorageError};
use crate::oci::{Algorithm, Digest, DigestHasher};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// Bytes gathered before they are handed to the disk in one write.
const WRITE_BUFFER: usize = 512 * 1024;

/// In-memory state of one session, behind its own async lock.
pub struct Session {
    /// Staging file.
    pub path: PathBuf,
    /// Bytes held.
    pub size: u64,
    /// Hash of those bytes, `None` until rebuilt after a restart.
    pub hasher: Option<DigestHasher>,
}

/// Table of live sessions; each entry is locked while a request works on it.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Session>>>>,
}

impl Sessions {
    /// The session `id`, loading it from `path` if it is not in memory.
    pub fn get_or_load(&self, id: &str, path: PathBuf) -> Arc<tokio::sync::Mutex<Session>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id.to_string())
            .or_insert_with(|| {
                let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                Arc::new(tokio::sync::Mutex::new(Session {
                    path,
                    size,
                    hasher: None,
                }))
            })
            .clone()
    }

    /// Register a new, empty session hashed with `algorithm`.
    pub fn insert_new(&self, id: &str, path: PathBuf, algorithm: Algorithm) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(
            id.to_string(),
            Arc::new(tokio::sync::Mutex::new(Session {
                path,
                size: 0,
                hasher: Some(algorithm.hasher()),
            })),
        );
    }

    /// Drop session `id` from memory.
    pub fn remove(&self, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }
}

fn join_err(e: tokio::task::JoinError) -> StorageError {
    StorageError::Io(std::io::Error::other(e))
}

/// Hash the first `len` bytes of `path` with `algorithm` (on the blocking pool).
pub async fn hash_file(path: &Path, len: u64, algorithm: Algorithm) -> Result<DigestHasher> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<DigestHasher> {
        let mut h = algorithm.hasher();
        let mut f = std::fs::File::open(&path)?.take(len);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h)
    })
    .await
    .map_err(join_err)?
    .map_err(StorageError::Io)
}

/// Dirty bytes after which writeback of a staging file is started in the background,
/// so the fsync that acknowledges an upload finds little left to do.
const WRITEBACK_STEP: u64 = 16 * 1024 * 1024;

/// Ask the kernel to start writing `offset..offset+len` of `file` to disk, without
/// waiting for it (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`). Advisory only.
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is valid for the duration of the call and the call only
    // reads its arguments.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// A writer that overlaps disk writes with receiving and hashing the next bytes.
struct Writer {
    file: Option<std::fs::File>,
    pending: Option<JoinHandle<std::io::Result<std::fs::File>>>,
    /// File offset the next write lands at.
    pos: u64,
    /// Offset up to which writeback has been started.
    flushed: u64,
}

impl Writer {
    async fn take_file(&mut self) -> Result<std::fs::File> {
        if let Some(task) = self.pending.take() {
            return task.await.map_err(join_err)?.map_err(StorageError::Io);
        }
        self.file
            .take()
            .ok_or_else(|| StorageError::Io(std::io::Error::other("upload writer lost its file")))
    }

    async fn write(&mut self, data: Bytes) -> Result<()> {
        let mut file = self.take_file().await?;
        self.pos += data.len() as u64;
        let kick = (self.pos - self.flushed >= WRITEBACK_STEP).then(|| {
            let range = (self.flushed, self.pos - self.flushed);
            self.flushed = self.pos;
            range
        });
        self.pending = Some(tokio::task::spawn_blocking(move || {
            file.write_all(&data)?;
            if let Some((offset, len)) = kick {
                start_writeback(&file, offset, len);
            }
            Ok(file)
        }));
        Ok(())
    }

    async fn finish(mut self) -> Result<()> {
        let file = self.take_file().await?;
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(join_err)?
            .map_err(StorageError::Io)
    }
}

/// Append `body` to `session`, hashing it. With `offset`, the chunk must start exactly
/// where the session ends; `expected_len` is the announced length, if any. On any error
/// the file is truncated back and the session is unchanged.
pub async fn append<S, E>(
    session: &mut Session,
    offset: Option<u64>,
    body: S,
    expected_len: Option<u64>,
) -> Result<u64>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let start = session.size;
    if let Some(got) = offset.filter(|&o| o != start) {
        return Err(StorageError::RangeMismatch {
            current: start,
            got,
        });
    }
    let mut hasher = match &session.hasher {
        Some(h) => h.clone(),
        None => hash_file(&session.path, start, Algorithm::Sha256).await?,
    };
    let result = append_inner(session, body, expected_len, &mut hasher).await;
    match result {
        Ok(n) => {
            session.size = start + n;
            session.hasher = Some(hasher);
            Ok(n)
        }
        Err(e) => {
            if let Err(err) = truncate(&session.path, start).await {
                tracing::error!(path = %session.path.display(), %err, "could not roll back a failed chunk");
            }
            Err(e)
        }
    }
}

/// Cut the staging file back to `len` bytes.
async fn truncate(path: &Path, len: u64) -> Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        f.sync_data()
    })
    .await
    .map_err(join_err)?
    .map_err(StorageError::Io)
}

async fn append_inner<S, E>(
    session: &Session,
    body: S,
    expected_len: Option<u64>,
    hasher: &mut DigestHasher,
) -> Result<u64>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let path = session.path.clone();
    let file = tokio::task::spawn_blocking(move || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    })
    .await
    .map_err(join_err)??;
    let mut writer = Writer {
        file: Some(file),
        pending: None,
        pos: session.size,
        flushed: session.size,
    };
    let received = receive(&mut writer, body, expected_len, hasher).await;
    // Always drain the writer, so a rollback never races an in-flight write.
    let flushed = writer.finish().await;
    let total = received?;
    flushed?;
    if let Some(limit) = expected_len {
        if total != limit {
            return Err(StorageError::SizeInvalid(format!(
                "received {total} bytes, the request announced {limit}"
            )));
        }
    }
    Ok(total)
}

async fn receive<S, E>(
    writer: &mut Writer,
    mut body: S,
    expected_len: Option<u64>,
    hasher: &mut DigestHasher,
) -> Result<u64>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut buf = BytesMut::with_capacity(WRITE_BUFFER);
    let mut total: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| StorageError::BodyFailed(e.to_string()))?;
        total += chunk.len() as u64;
        if let Some(limit) = expected_len {
            if total > limit {
                return Err(StorageError::SizeInvalid(format!(
                    "body is longer than the announced {limit} bytes"
                )));
            }
        }
        hasher.update(&chunk);
        buf.extend_from_slice(&chunk);
        if buf.len() >= WRITE_BUFFER {
            writer.write(buf.split().freeze()).await?;
            buf.reserve(WRITE_BUFFER);
        }
    }
    if !buf.is_empty() {
        writer.write(buf.freeze()).await?;
    }
    Ok(total)
}

/// The digest of everything in `session`, computed with `algorithm`.
pub async fn digest_of(session: &Session, algorithm: Algorithm) -> Result<Digest> {
    match &session.hasher {
        Some(h) if h.algorithm() == algorithm => Ok(h.clone().finish()),
        _ => Ok(hash_file(&session.path, session.size, algorithm)
            .await?
            .finish()),
    }
}
