//! Content-addressed blob data behind `object_store`.
//!
//! Committed blobs live at `blobs/<algorithm>/<first two hex>/<hex>` in the object
//! store, one copy however many repositories link them. Uploads are staged as local
//! files under `uploads/` in the same root and published with an atomic rename, so a
//! blob path only ever holds complete, verified content.

use super::blob_read::BlobFile;
use super::error::{Result, StorageError};
use crate::oci::Digest;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Size of the chunks a blob is read and sent in.
const READ_CHUNK: usize = 256 * 1024;

/// How far ahead of the reader the kernel is asked to read a blob.
const READ_AHEAD: u64 = 16 * 1024 * 1024;
/// How often (in bytes read) that request is renewed.
const READ_AHEAD_STEP: u64 = 4 * 1024 * 1024;
/// New blobs read into the page cache at once.
const WARMERS: usize = 2;
/// Buffer each of them reads through.
const WARM_BUFFER: usize = 1024 * 1024;

/// Ask the kernel to start reading `offset..offset+len` of `file` into the page cache
/// (`posix_fadvise(WILLNEED)`); advisory only.
pub(crate) fn advise_will_need(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is valid for the duration of the call, which only reads
    // its integer arguments.
    unsafe {
        libc::posix_fadvise(
            file.as_raw_fd(),
            offset as libc::off_t,
            len as libc::off_t,
            libc::POSIX_FADV_WILLNEED,
        );
    }
}

/// A stream of blob bytes.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Blob data store: an object store rooted at the data directory.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<LocalFileSystem>,
    root: PathBuf,
    warmers: Arc<tokio::sync::Semaphore>,
}

/// Read `path` to its end, discarding the bytes, so that it lands in the page cache.
/// (`posix_fadvise(WILLNEED)` alone caches only a part of a large file here.)
fn read_through(path: &Path) -> std::io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; WARM_BUFFER];
    let mut offset = 0;
    loop {
        if offset % READ_AHEAD_STEP < WARM_BUFFER as u64 {
            advise_will_need(&file, offset, READ_AHEAD);
        }
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        offset += n as u64;
    }
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
    /// A store rooted at `root` (created if missing).
    pub fn open(root: &Path) -> Result<BlobStore> {
        std::fs::create_dir_all(root.join("uploads"))?;
        std::fs::create_dir_all(root.join("blobs"))?;
        let root = root.canonicalize()?;
        let store = LocalFileSystem::new_with_prefix(&root)?;
        Ok(BlobStore {
            store: Arc::new(store),
            root,
            warmers: Arc::new(tokio::sync::Semaphore::new(WARMERS)),
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

    /// Read blob `digest` into the page cache in the background. A blob just written
    /// with `O_DIRECT` is not cached, and right after a push every node pulls exactly
    /// the new layers. At most [`WARMERS`] blobs are read at once, each through one
    /// [`WARM_BUFFER`]; best effort, errors are ignored.
    pub fn warm(&self, digest: &Digest) {
        let Ok(path) = self.store.path_to_filesystem(&blob_path(digest)) else {
            return;
        };
        let warmers = self.warmers.clone();
        tokio::spawn(async move {
            let Ok(_permit) = warmers.acquire_owned().await else {
                return;
            };
            let _ = tokio::task::spawn_blocking(move || read_through(&path)).await;
        });
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
            GetResultPayload::File(file, path) => Ok(file_stream(file, path, start, end)),
            GetResultPayload::Stream(s) => Ok(s.map_err(std::io::Error::other).boxed()),
        }
    }
}

/// Read `start..end` of the local blob file `file` (at `path`) in large chunks on the
/// blocking pool, one chunk ahead of the one being sent, from the page cache or directly
/// (see [`super::blob_read`]).
fn file_stream(file: std::fs::File, path: PathBuf, start: u64, end: u64) -> ByteStream {
    type Read = tokio::task::JoinHandle<std::io::Result<(BlobFile, Bytes)>>;
    /// Read the chunk at `pos` on the blocking pool.
    fn read_chunk(mut blob: BlobFile, pos: u64, end: u64) -> Read {
        let want = (end - pos).min(READ_CHUNK as u64) as usize;
        tokio::task::spawn_blocking(move || {
            let chunk = blob.read_chunk(pos, want)?;
            Ok((blob, chunk))
        })
    }
    // Opening the direct descriptor is file-system work: on the blocking pool too.
    let first =
        tokio::task::spawn_blocking(move || Ok::<_, std::io::Error>(BlobFile::new(file, &path)));
    let state = (start, None::<Read>, Some(first));
    stream::try_unfold(state, move |(pos, next, opening)| async move {
        if pos >= end {
            return Ok(None);
        }
        let pending = match (next, opening) {
            (Some(read), _) => read,
            (None, Some(open)) => {
                let blob = open.await.map_err(std::io::Error::other)??;
                read_chunk(blob, pos, end)
            }
            (None, None) => return Ok(None),
        };
        let (blob, chunk) = pending.await.map_err(std::io::Error::other)??;
        let pos = pos + chunk.len() as u64;
        let next = (pos < end).then(|| read_chunk(blob, pos, end));
        Ok(Some((chunk, (pos, next, None))))
    })
    .boxed()
}
