//! Content-addressed blob data behind `object_store`.
//!
//! Committed blobs live at `blobs/<algorithm>/<first two hex>/<hex>` in the object
//! store, one copy however many repositories link them. Uploads are staged as local
//! files under `uploads/` in the same root and published with an atomic rename, so a
//! blob path only ever holds complete, verified content.

use super::blob_read::BlobFile;
use super::error::{Result, StorageError};
use super::warm::{Download, Warmer};
use crate::oci::Digest;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Size of the chunks a blob is read and sent in.
const READ_CHUNK: usize = 256 * 1024;
/// Chunk reads a download keeps in flight ahead of the one being sent: direct reads
/// wait for the disk while earlier chunks are encrypted (measured on a 2-core VM, a blob
/// pulled right after its push: 1 read ahead 0.5-0.9 GB/s, 2: 1.0-1.2, 3: 1.2-1.4,
/// 4: no better). The first is every download's own; the others share the store's
/// read-ahead budget and are only started when it has room.
const READS_AHEAD: usize = 3;

/// A stream of blob bytes.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Blob data store: an object store rooted at the data directory.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<LocalFileSystem>,
    root: PathBuf,
    warmer: Warmer,
    /// Read-ahead chunks beyond each download's first, in [`READ_CHUNK`] units.
    read_ahead: Arc<Semaphore>,
}

fn blob_path(digest: &Digest) -> ObjectPath {
    let hex = digest.hex();
    ObjectPath::from(format!(
        "blobs/{}/{}/{}",
        digest.algorithm().as_str(),
        &hex[..2],
        hex
    ))
}

fn upload_path(id: &str) -> ObjectPath {
    ObjectPath::from(format!("uploads/{id}"))
}

/// fsync a directory so a rename or create inside it is durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl BlobStore {
    /// A store rooted at `root` (created if missing), whose downloads read ahead with at
    /// most `read_ahead_bytes` of buffers together.
    pub fn open(root: &Path, read_ahead_bytes: u64) -> Result<BlobStore> {
        std::fs::create_dir_all(root.join("uploads"))?;
        std::fs::create_dir_all(root.join("blobs"))?;
        let root = root.canonicalize()?;
        let store = LocalFileSystem::new_with_prefix(&root)?;
        Ok(BlobStore {
            store: Arc::new(store),
            root,
            warmer: Warmer::new(),
            read_ahead: Arc::new(Semaphore::new(
                usize::try_from(read_ahead_bytes / READ_CHUNK as u64)
                    .unwrap_or(usize::MAX)
                    .min(Semaphore::MAX_PERMITS),
            )),
        })
    }

    /// The local staging file of upload `id`.
    pub fn upload_file(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    /// The directory holding staged uploads.
    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// Publish the staged upload `id` as blob `digest` (atomic rename, then fsync).
    pub async fn commit(&self, id: &str, digest: &Digest) -> Result<()> {
        let to = blob_path(digest);
        self.store.rename(&upload_path(id), &to).await?;
        let file = self.store.path_to_filesystem(&to)?;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(dir) = file.parent() {
                sync_dir(dir)?;
                if let Some(parent) = dir.parent() {
                    sync_dir(parent)?;
                }
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(())
    }

    /// Read blob `digest` into the page cache in the background, yielding to downloads
    /// of it (see [`super::warm`]).
    pub fn warm(&self, digest: &Digest) {
        if let Ok(path) = self.store.path_to_filesystem(&blob_path(digest)) {
            self.warmer.warm(digest, path);
        }
    }

    /// Every blob file present, by digest (files with names that are not digests are
    /// skipped).
    pub async fn list(&self) -> Result<Vec<Digest>> {
        let root = self.root.join("blobs");
        let found = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<Digest>> {
            let mut out = Vec::new();
            for alg in std::fs::read_dir(&root)? {
                let alg = alg?;
                let alg_name = alg.file_name().to_string_lossy().into_owned();
                for prefix in std::fs::read_dir(alg.path())? {
                    for file in std::fs::read_dir(prefix?.path())? {
                        let name = file?.file_name().to_string_lossy().into_owned();
                        if let Ok(d) = format!("{alg_name}:{name}").parse::<Digest>() {
                            out.push(d);
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(StorageError::from)??;
        Ok(found)
    }

    /// Remove the data of blob `digest` (missing data is not an error).
    pub async fn delete(&self, digest: &Digest) -> Result<()> {
        match self.store.delete(&blob_path(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Stream bytes `start..end` of blob `digest`.
    pub async fn read(&self, digest: &Digest, start: u64, end: u64) -> Result<ByteStream> {
        if start >= end {
            return Ok(stream::empty().boxed());
        }
        let opts = GetOptions {
            range: Some(GetRange::Bounded(start..end)),
            ..Default::default()
        };
        let got = match self.store.get_opts(&blob_path(digest), opts).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StorageError::BlobUnknown(digest.clone()))
            }
            Err(e) => return Err(e.into()),
        };
        match got.payload {
            GetResultPayload::File(file, path) => Ok(file_stream(
                file,
                path,
                start,
                end,
                self.warmer.download(digest),
                self.read_ahead.clone(),
            )),
            GetResultPayload::Stream(s) => Ok(s.map_err(std::io::Error::other).boxed()),
        }
    }
}

/// Read `start..end` of the local blob file `file` (at `path`) in large chunks on the
/// blocking pool, [`READS_AHEAD`] chunks ahead of the one being sent, from the page
/// cache or directly (see [`super::blob_read`]).
fn file_stream(
    file: std::fs::File,
    path: PathBuf,
    start: u64,
    end: u64,
    download: Download,
    budget: Arc<Semaphore>,
) -> ByteStream {
    /// Chunk reads in flight for one download.
    struct Ahead {
        blob: Arc<BlobFile>,
        /// Where the next read to start begins.
        scheduled: u64,
        end: u64,
        reads: VecDeque<JoinHandle<std::io::Result<Bytes>>>,
        budget: Arc<Semaphore>,
        /// Held for as long as the stream lives.
        _download: Download,
    }
    impl Ahead {
        fn start_reads(&mut self) {
            while self.reads.len() < READS_AHEAD && self.scheduled < self.end {
                // The first read in flight is the download's own; the others hold a
                // share of the budget until their chunk is freed, or are not started.
                let held = if self.reads.is_empty() {
                    None
                } else {
                    match self.budget.clone().try_acquire_owned() {
                        Ok(permit) => Some(permit),
                        Err(_) => break,
                    }
                };
                let (blob, pos) = (self.blob.clone(), self.scheduled);
                let want = (self.end - pos).min(READ_CHUNK as u64) as usize;
                self.reads.push_back(tokio::task::spawn_blocking(move || {
                    blob.read_chunk(pos, want, held)
                }));
                self.scheduled += want as u64;
            }
        }
    }
    enum State {
        Opening(JoinHandle<BlobFile>, Download, Arc<Semaphore>),
        Reading(Ahead),
    }
    // Opening the direct descriptor is file-system work: on the blocking pool too.
    let opening = tokio::task::spawn_blocking(move || BlobFile::new(file, &path));
    stream::try_unfold(
        State::Opening(opening, download, budget),
        move |state| async move {
            let mut ahead = match state {
                State::Reading(ahead) => ahead,
                State::Opening(open, download, budget) => Ahead {
                    blob: Arc::new(open.await.map_err(std::io::Error::other)?),
                    scheduled: start,
                    end,
                    reads: VecDeque::new(),
                    budget,
                    _download: download,
                },
            };
            ahead.start_reads();
            let Some(read) = ahead.reads.pop_front() else {
                return Ok(None);
            };
            let chunk = read.await.map_err(std::io::Error::other)??;
            ahead.start_reads();
            Ok(Some((chunk, State::Reading(ahead))))
        },
    )
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blob of `len` patterned bytes written straight into `store`'s blob directory.
    fn put(store: &BlobStore, len: usize) -> (Digest, Vec<u8>) {
        use sha2::Digest as _;
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let digest: Digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&data)))
            .parse()
            .unwrap();
        let path = store.store.path_to_filesystem(&blob_path(&digest)).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &data).unwrap();
        (digest, data)
    }

    async fn read_all(store: &BlobStore, digest: &Digest, start: u64, end: u64) -> Vec<u8> {
        let chunks: Vec<Bytes> = store
            .read(digest, start, end)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        chunks.concat()
    }

    #[tokio::test]
    async fn downloads_read_back_exactly_with_or_without_read_ahead_budget() {
        // /var/tmp is on disk here (direct reads); the temp dir may be tmpfs (buffered).
        for (dir, budget) in [("/var/tmp", 0), ("/var/tmp", 64 << 20), ("/tmp", 1 << 20)] {
            let tmp = tempfile::tempdir_in(dir).unwrap();
            let store = BlobStore::open(tmp.path(), budget).unwrap();
            let (digest, data) = put(&store, 5 * READ_CHUNK + 4321);
            let len = data.len() as u64;
            for (start, end) in [
                (0, len),
                (1, len - 1),
                (READ_CHUNK as u64 - 3, 3 * READ_CHUNK as u64 + 7),
            ] {
                let got = read_all(&store, &digest, start, end).await;
                assert!(
                    got == data[start as usize..end as usize],
                    "{dir} budget {budget}: {start}..{end}"
                );
            }
            // Every share of the budget is given back once the chunks are dropped.
            let total = usize::try_from(budget / READ_CHUNK as u64).unwrap();
            assert_eq!(
                store.read_ahead.available_permits(),
                total,
                "{dir} budget {budget}"
            );
        }
    }

    #[tokio::test]
    async fn read_ahead_beyond_the_first_chunk_waits_for_room_in_the_budget() {
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        // Room for one chunk ahead across all downloads.
        let store = BlobStore::open(tmp.path(), READ_CHUNK as u64).unwrap();
        let (digest, data) = put(&store, 8 * READ_CHUNK);
        let mut a = store.read(&digest, 0, data.len() as u64).await.unwrap();
        let first = a.try_next().await.unwrap().unwrap();
        // `a` holds the budget's only share for a chunk read ahead (or is about to).
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(store.read_ahead.available_permits(), 0);
        // Another download still gets every byte, from its own chunks alone.
        let got = read_all(&store, &digest, 0, data.len() as u64).await;
        assert!(got == data);
        let mut rest = first.to_vec();
        while let Some(chunk) = a.try_next().await.unwrap() {
            rest.extend_from_slice(&chunk);
        }
        assert!(rest == data);
        drop(a);
        assert_eq!(store.read_ahead.available_permits(), 1);
    }
}
