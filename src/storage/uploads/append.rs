//! Appending a chunk to an upload session's staging file, and taking it back.
//!
//! A chunk is hashed as it is written; the session's size and running hash change only
//! once every byte is written and the file is fsynced. Any failure (aborted body, size
//! mismatch, I/O error) cuts the file back to where the chunk started and leaves size
//! and hash as they were. If even that cut fails, the session is marked `dirty` and the
//! next operation cuts it before anything else.

use super::writer::{StagingWriter, UploadBuffers};
use super::Session;
use crate::oci::{Algorithm, Digest, DigestHasher};
use crate::storage::error::{Result, StorageError};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::io::Read;
use std::path::Path;

/// Hash the first `len` bytes of `path` with `algorithm` (on the blocking pool).
pub(super) async fn hash_file(path: &Path, len: u64, algorithm: Algorithm) -> Result<DigestHasher> {
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
pub(super) async fn append<S, E>(
    session: &mut Session,
    offset: Option<u64>,
    body: S,
    expected_len: Option<u64>,
    buffers: &UploadBuffers,
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
    let result = append_inner(session, body, expected_len, &mut hasher, buffers).await;
    match result {
        Ok(n) => {
            session.size = start + n;
            session.hasher = Some(hasher);
            Ok(n)
        }
        Err(e) => {
            cut_back(session).await;
            Err(e)
        }
    }
}

/// Cut the staging file back to the session's size. On failure the session is marked
/// dirty (and its running hash dropped), so the next operation tries again first.
pub(super) async fn cut_back(session: &mut Session) {
    match truncate(&session.path, session.size).await {
        Ok(()) => session.dirty = false,
        Err(err) => {
            tracing::error!(path = %session.path.display(), %err, "could not roll back a chunk");
            session.dirty = true;
            session.hasher = None;
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
    buffers: &UploadBuffers,
) -> Result<u64>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut writer = StagingWriter::open(&session.path, session.size, buffers).await?;
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
pub(super) async fn digest_of(session: &Session, algorithm: Algorithm) -> Result<Digest> {
    match &session.hasher {
        Some(h) if h.algorithm() == algorithm => Ok(h.clone().finish()),
        _ => Ok(hash_file(&session.path, session.size, algorithm)
            .await?
            .finish()),
    }
}
