//! Writing upload bytes into a staging file.
//!
//! Bytes are gathered into two block-aligned buffers that take turns: while one is
//! written on the blocking pool, the next is filled from the network. Block-aligned
//! runs are written with `O_DIRECT`, which skips the copy into the page cache (the
//! largest cost of a big upload on a small machine) and a second trip to the disk at
//! fsync time; unaligned heads and tails, and file systems without `O_DIRECT`, use
//! ordinary writes whose writeback is started as they go. Nothing is acknowledged
//! before [`StagingWriter::finish`] has fsynced the file.

use crate::storage::error::{Result, StorageError};
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use tokio::task::JoinHandle;

/// Alignment required by `O_DIRECT` (memory, offset and length).
const BLOCK: usize = 4096;
/// Size of one write.
const BUFFER: usize = 512 * 1024;
/// Buffered bytes after which their writeback is started in the background.
const WRITEBACK_STEP: u64 = 16 * 1024 * 1024;

/// A heap buffer whose data starts on a [`BLOCK`] boundary.
struct AlignedBuf {
    mem: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    fn new() -> AlignedBuf {
        let mem = vec![0u8; BUFFER + BLOCK];
        let start = mem.as_ptr().align_offset(BLOCK).min(BLOCK);
        AlignedBuf { mem, start, len: 0 }
    }

    fn filled(&self) -> &[u8] {
        &self.mem[self.start..self.start + self.len]
    }

    /// Copy as much of `data` as fits below `limit` bytes; returns how much.
    fn push(&mut self, data: &[u8], limit: usize) -> usize {
        let n = limit.saturating_sub(self.len).min(data.len());
        let at = self.start + self.len;
        self.mem[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }
}

/// The staging file, opened twice: for direct I/O (if supported) and buffered.
struct Files {
    buffered: File,
    direct: Option<File>,
}

/// Write `data` at `pos`: its block-aligned part directly when possible.
fn write_at(files: &mut Files, data: &[u8], pos: u64) -> std::io::Result<()> {
    let mut direct_len = 0;
    if let Some(direct) = &files.direct {
        let aligned = pos % BLOCK as u64 == 0 && data.as_ptr().align_offset(BLOCK) == 0;
        direct_len = if aligned {
            data.len() / BLOCK * BLOCK
        } else {
            0
        };
        if direct_len > 0 {
            if let Err(e) = direct.write_all_at(&data[..direct_len], pos) {
                if e.raw_os_error() != Some(libc::EINVAL) {
                    return Err(e);
                }
                // The file system refuses direct I/O after all: stay buffered.
                files.direct = None;
                direct_len = 0;
            }
        }
    }
    files
        .buffered
        .write_all_at(&data[direct_len..], pos + direct_len as u64)
}

/// Ask the kernel to start writing `offset..offset+len` to disk without waiting
/// (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`); advisory only.
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is valid for the duration of the call, which only reads
    // its integer arguments.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

type WriteTask = JoinHandle<std::io::Result<(Files, AlignedBuf)>>;

/// Streams bytes into a staging file from a given offset; see the module docs.
pub(super) struct StagingWriter {
    files: Option<Files>,
    pending: Option<WriteTask>,
    spare: Option<AlignedBuf>,
    current: AlignedBuf,
    /// File offset where `current` will land.
    pos: u64,
    /// Offset up to which writeback has been started.
    flushed: u64,
}

impl StagingWriter {
    /// Open the existing staging file `path` to write from byte `pos` on. A missing file
    /// is an error, never silently re-created: the session it belonged to is over.
    pub(super) async fn open(path: &Path, pos: u64) -> Result<StagingWriter> {
        let path = path.to_path_buf();
        let files = tokio::task::spawn_blocking(move || -> std::io::Result<Files> {
            let buffered = std::fs::OpenOptions::new().write(true).open(&path)?;
            let direct = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(&path)
                .ok();
            Ok(Files { buffered, direct })
        })
        .await
        .map_err(StorageError::from)??;
        Ok(StagingWriter {
            files: Some(files),
            pending: None,
            spare: None,
            current: AlignedBuf::new(),
            pos,
            flushed: pos,
        })
    }

    /// Bytes the current buffer takes before it is written: a full buffer, or less
    /// so that the next one starts on a block boundary.
    fn limit(&self) -> usize {
        BUFFER - (self.pos % BLOCK as u64) as usize
    }

    /// Queue `data` for writing.
    pub(super) async fn push(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let limit = self.limit();
            let n = self.current.push(data, limit);
            data = &data[n..];
            if self.current.len == limit {
                self.write_current().await?;
            }
        }
        Ok(())
    }

    async fn take_files(&mut self) -> Result<Files> {
        if let Some(task) = self.pending.take() {
            let (files, mut buf) = task.await.map_err(StorageError::from)??;
            buf.len = 0;
            self.spare = Some(buf);
            return Ok(files);
        }
        self.files
            .take()
            .ok_or_else(|| StorageError::Io(std::io::Error::other("staging writer lost its file")))
    }

    async fn write_current(&mut self) -> Result<()> {
        let mut files = self.take_files().await?;
        let next = self.spare.take().unwrap_or_else(AlignedBuf::new);
        let buf = std::mem::replace(&mut self.current, next);
        let pos = self.pos;
        self.pos += buf.len as u64;
        let kick = (self.pos - self.flushed >= WRITEBACK_STEP).then(|| {
            let range = (self.flushed, self.pos - self.flushed);
            self.flushed = self.pos;
            range
        });
        self.pending = Some(tokio::task::spawn_blocking(move || {
            write_at(&mut files, buf.filled(), pos)?;
            // Buffered writes: push the data towards the disk as it goes. (Direct
            // writes are on disk already; the committed blob is read into the page
            // cache afterwards, see `BlobStore::warm`. Reading it back during the
            // upload slowed the upload and the first pull right after it.)
            if let (Some((offset, len)), None) = (kick, &files.direct) {
                start_writeback(&files.buffered, offset, len);
            }
            Ok((files, buf))
        }));
        Ok(())
    }

    /// Write what is left, wait for every write and fsync the file.
    pub(super) async fn finish(mut self) -> Result<()> {
        if self.current.len > 0 {
            self.write_current().await?;
        }
        let files = self.take_files().await?;
        tokio::task::spawn_blocking(move || files.buffered.sync_data())
            .await
            .map_err(StorageError::from)?
            .map_err(StorageError::Io)
    }

    /// Wait for any write in flight, without writing more (used before a rollback).
    pub(super) async fn abandon(mut self) {
        let _ = self.take_files().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unaligned_starts_and_odd_sizes_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::File::create(&path).unwrap();
        let data: Vec<u8> = (0..(3 * BUFFER + 12345))
            .map(|i| (i * 7 % 253) as u8)
            .collect();
        // First append ends unaligned; the second starts there.
        let cut = BUFFER + 777;
        let mut w = StagingWriter::open(&path, 0).await.unwrap();
        for piece in data[..cut].chunks(10_000) {
            w.push(piece).await.unwrap();
        }
        w.finish().await.unwrap();
        let mut w = StagingWriter::open(&path, cut as u64).await.unwrap();
        for piece in data[cut..].chunks(65_536) {
            w.push(piece).await.unwrap();
        }
        w.finish().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }
}
