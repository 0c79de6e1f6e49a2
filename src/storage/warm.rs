//! Bringing newly committed blobs into the page cache without slowing their first pull.
//!
//! Uploads are written with `O_DIRECT`, so a blob just acknowledged is on disk but not in
//! the page cache. Later pulls are fastest from the cache, so each committed blob is read
//! through once in the background. The first pull, though, usually comes right after the
//! push (every Swarm node pulls the new layers), and a read-through racing it doubles the
//! disk reads and takes the CPU its TLS encryption needs: downloads read what is not
//! cached directly (see [`super::blob_read`]), and the read-through of a blob waits while
//! a download of that blob is running (up to [`MAX_YIELD`] in all), then goes on from
//! where it stopped.

use crate::oci::Digest;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How far ahead of the read-through the kernel is asked to read.
const READ_AHEAD: u64 = 16 * 1024 * 1024;
/// How often (in bytes read) that request is renewed.
const READ_AHEAD_STEP: u64 = 4 * 1024 * 1024;
/// Blobs read through at once.
const WARMERS: usize = 2;
/// Buffer each read-through reads into.
const WARM_BUFFER: usize = 1024 * 1024;
/// How often a waiting read-through looks again whether the downloads are over.
const YIELD_POLL: Duration = Duration::from_millis(20);
/// Longest a read-through waits for downloads of its blob, in all: a slow client
/// pulling for minutes must not keep a blob out of the cache for the others.
const MAX_YIELD: Duration = Duration::from_secs(30);

/// Background read-through of committed blobs, and the downloads it yields to.
#[derive(Clone)]
pub(super) struct Warmer {
    permits: Arc<tokio::sync::Semaphore>,
    downloads: Arc<Mutex<HashMap<Digest, usize>>>,
}

/// A download of one blob in progress; dropping it ends it.
pub(super) struct Download {
    downloads: Arc<Mutex<HashMap<Digest, usize>>>,
    digest: Digest,
}

impl Drop for Download {
    fn drop(&mut self) {
        let mut map = lock(&self.downloads);
        if let Some(n) = map.get_mut(&self.digest) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.digest);
            }
        }
    }
}

fn lock(m: &Mutex<HashMap<Digest, usize>>) -> std::sync::MutexGuard<'_, HashMap<Digest, usize>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Warmer {
    /// No read-through running, no download.
    pub(super) fn new() -> Warmer {
        Warmer {
            permits: Arc::new(tokio::sync::Semaphore::new(WARMERS)),
            downloads: Arc::default(),
        }
    }

    /// Record a download of `digest` until the returned value is dropped.
    pub(super) fn download(&self, digest: &Digest) -> Download {
        *lock(&self.downloads).entry(digest.clone()).or_insert(0) += 1;
        Download {
            downloads: self.downloads.clone(),
            digest: digest.clone(),
        }
    }

    fn downloading(&self, digest: &Digest) -> bool {
        lock(&self.downloads).contains_key(digest)
    }

    /// Read blob `digest`, stored at `path`, into the page cache in the background. At
    /// most [`WARMERS`] blobs are read at once; best effort, errors are ignored.
    pub(super) fn warm(&self, digest: &Digest, path: PathBuf) {
        let this = self.clone();
        let digest = digest.clone();
        tokio::spawn(async move {
            let Ok(_permit) = this.permits.clone().acquire_owned().await else {
                return;
            };
            let _ = tokio::task::spawn_blocking(move || {
                read_through(&path, || this.downloading(&digest))
            })
            .await;
        });
    }
}

/// Read `path` to its end, discarding the bytes, so that it lands in the page cache
/// (`posix_fadvise(WILLNEED)` alone caches only a part of a large file here). While
/// `busy()` says so, wait, up to [`MAX_YIELD`] in all.
fn read_through(path: &Path, busy: impl Fn() -> bool) -> std::io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; WARM_BUFFER];
    let mut offset = 0;
    let mut waited = Duration::ZERO;
    loop {
        while waited < MAX_YIELD && busy() {
            let t = Instant::now();
            std::thread::sleep(YIELD_POLL);
            waited += t.elapsed();
        }
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

/// Ask the kernel to start reading `offset..offset+len` of `file` into the page cache
/// (`posix_fadvise(WILLNEED)`); advisory only.
fn advise_will_need(file: &std::fs::File, offset: u64, len: u64) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn downloads_are_counted_until_dropped() {
        let w = Warmer::new();
        let d: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        assert!(!w.downloading(&d));
        let one = w.download(&d);
        let two = w.download(&d);
        drop(one);
        assert!(w.downloading(&d));
        drop(two);
        assert!(!w.downloading(&d));
        assert!(lock(&w.downloads).is_empty());
    }

    #[test]
    fn read_through_waits_while_busy_then_reads_to_the_end() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("blob");
        std::fs::write(&path, vec![7u8; 3 * WARM_BUFFER + 5]).unwrap();
        // Busy for the first three looks: the read-through must look again until it is not.
        let looks = AtomicUsize::new(0);
        read_through(&path, || looks.fetch_add(1, Ordering::SeqCst) < 3).unwrap();
        // Three busy answers, then one look per buffer read (4 full or partial, 1 at EOF).
        assert_eq!(looks.load(Ordering::SeqCst), 3 + 5);
    }
}
