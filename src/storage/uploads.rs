//! Upload sessions: chunks are appended to a staging file while being hashed.
//!
//! A session's durable state is its database row plus its staging file; the file's
//! length is the session's offset. The running hash is kept in memory and rebuilt
//! from the file when the server restarted in between. Every append is fsynced
//! before it is acknowledged, and an append that fails half-way (aborted body, size
//! mismatch) is rolled back by truncating the file to where it started.

use super::error::{Result, StorageError};
use super::writer::StagingWriter;
use crate::oci::{Algorithm, Digest, DigestHasher};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    .map_err(StorageError::from)?
    .map_err(StorageError::Io)
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
    .map_err(StorageError::from)?
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
    let mut writer = StagingWriter::open(&session.path, session.size).await?;
    let received = receive(&mut writer, body, expected_len, hasher).await;
    // Always settle the writer, so a rollback never races an in-flight write.
    let total = match received {
        Ok(total) => total,
        Err(e) => {
            writer.abandon().await;
            return Err(e);
        }
    };
    writer.finish().await?;
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
    writer: &mut StagingWriter,
    mut body: S,
    expected_len: Option<u64>,
    hasher: &mut DigestHasher,
) -> Result<u64>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
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
        writer.push(&chunk).await?;
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
