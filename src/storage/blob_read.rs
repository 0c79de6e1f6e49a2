//! Reading blob files for downloads: from the page cache when the bytes are there, with
//! `O_DIRECT` when they are not.
//!
//! Uploads are written with `O_DIRECT`, so a blob just pushed is not (or only partly) in
//! the page cache, and right after a push every node of the cluster pulls exactly those
//! layers. A buffered read of uncached data makes the kernel allocate and fill page-cache
//! pages and then copy them, CPU the TLS encryption of the download needs on a small
//! host; a direct read has the disk write into our buffer. For each chunk `mincore` on a
//! mapping of the file (which touches no page) tells how much of it is cached: that part
//! is read through the cache, the rest directly, in block-aligned buffers, one chunk ahead
//! of the one being sent. (`preadv2(RWF_NOWAIT)` would tell too, but it starts readahead of
//! what is missing, filling the cache the direct read is there to avoid.) Background
//! warming ([`super::blobs::BlobStore::warm`]) still fills the cache for later pulls. On a
//! filesystem without `O_DIRECT` (tmpfs), reads are buffered.

use bytes::Bytes;
use std::alloc::Layout;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Alignment of direct reads (offset, length and buffer address).
const BLOCK: usize = 4096;

/// A heap buffer aligned to [`BLOCK`], of which the first `len` bytes are filled.
///
/// It is a plain allocation one block larger than needed, used from its first aligned
/// byte: glibc serves block-aligned requests (`posix_memalign`) by splitting its free
/// chunks, which under many concurrent downloads left the heap fragmented (peak RSS up
/// by a third at 64 clients).
struct AlignedChunk {
    base: std::ptr::NonNull<u8>,
    layout: Layout,
    /// Offset of the first aligned byte from `base`.
    skew: usize,
    /// Usable bytes from the aligned start.
    capacity: usize,
    /// Bytes filled from the aligned start.
    len: usize,
    /// The share of a memory budget this buffer stands for, given back when it is freed.
    _held: Option<tokio::sync::OwnedSemaphorePermit>,
}

// SAFETY: the buffer is uniquely owned heap memory.
unsafe impl Send for AlignedChunk {}
// SAFETY: shared access is read-only (through `as_ref`).
unsafe impl Sync for AlignedChunk {}

impl AlignedChunk {
    /// An uninitialised buffer of `capacity` bytes (a multiple of [`BLOCK`], non-zero),
    /// holding `held` until it is freed.
    fn new(capacity: usize, held: Option<tokio::sync::OwnedSemaphorePermit>) -> AlignedChunk {
        let capacity = capacity.max(BLOCK);
        let layout = Layout::from_size_align(capacity + BLOCK, 16)
            .unwrap_or_else(|_| unreachable!("a small layout"));
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        let base =
            std::ptr::NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        let skew = (BLOCK - raw as usize % BLOCK) % BLOCK;
        AlignedChunk {
            base,
            layout,
            skew,
            capacity,
            len: 0,
            _held: held,
        }
    }

    /// The first aligned byte.
    fn start(&self) -> *mut u8 {
        // SAFETY: `skew < BLOCK`, within the allocation of `capacity + BLOCK` bytes.
        unsafe { self.base.as_ptr().add(self.skew) }
    }

    /// The unfilled tail as a raw pointer and its length.
    fn spare(&mut self) -> (*mut u8, usize) {
        // SAFETY: `len <= capacity`, so the pointer stays within the allocation.
        (
            unsafe { self.start().add(self.len) },
            self.capacity - self.len,
        )
    }
}

impl AsRef<[u8]> for AlignedChunk {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes from the aligned start were written by `pread`.
        unsafe { std::slice::from_raw_parts(self.start(), self.len) }
    }
}

impl Drop for AlignedChunk {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.base.as_ptr(), self.layout) }
    }
}

/// One blob file opened for reading, buffered and (where the filesystem allows) direct.
pub(super) struct BlobFile {
    buffered: File,
    direct: Option<File>,
    /// A read-only mapping of the whole file, only ever passed to `mincore`.
    map: Option<(std::ptr::NonNull<libc::c_void>, usize)>,
}

// SAFETY: the mapping is never dereferenced, only passed to `mincore`; the files are
// only used through `pread`, which needs no exclusive access.
unsafe impl Send for BlobFile {}
// SAFETY: as above.
unsafe impl Sync for BlobFile {}

impl Drop for BlobFile {
    fn drop(&mut self) {
        if let Some((ptr, len)) = self.map.take() {
            // SAFETY: mapped in `new` with this length, unmapped once.
            unsafe { libc::munmap(ptr.as_ptr(), len) };
        }
    }
}

/// How a read is made.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Plain buffered read.
    Buffered,
    /// `O_DIRECT`.
    Direct,
}

impl BlobFile {
    /// Open `path` (its buffered descriptor is `file`, already open).
    pub(super) fn new(file: File, path: &Path) -> BlobFile {
        let direct = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok();
        let len = file.metadata().map_or(0, |m| m.len()) as usize;
        let map = (direct.is_some() && len > 0)
            .then(|| {
                // SAFETY: a fresh read-only shared mapping of a file we hold open; it is
                // never read through, only handed to `mincore`.
                let ptr = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        len,
                        libc::PROT_READ,
                        libc::MAP_SHARED,
                        file.as_raw_fd(),
                        0,
                    )
                };
                (ptr != libc::MAP_FAILED)
                    .then(|| std::ptr::NonNull::new(ptr).map(|p| (p, len)))
                    .flatten()
            })
            .flatten();
        BlobFile {
            buffered: file,
            direct,
            map,
        }
    }

    /// How many bytes from `base` (block-aligned) on, of the next `span`, are in the page
    /// cache (whole pages from the start; 0 when unknown).
    fn cached_prefix(&self, base: u64, span: usize) -> usize {
        let Some((ptr, len)) = self.map else {
            return 0;
        };
        let base = base as usize;
        if base >= len {
            return 0;
        }
        let span = span.min(len - base);
        let mut resident = [0u8; 128];
        let pages = span.div_ceil(BLOCK).min(resident.len());
        // SAFETY: the range lies within the mapping and `resident` has a byte per page.
        let rc = unsafe {
            libc::mincore(
                ptr.as_ptr().cast::<u8>().add(base).cast(),
                pages * BLOCK,
                resident.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return 0;
        }
        resident[..pages].iter().take_while(|r| *r & 1 == 1).count() * BLOCK
    }

    /// Read bytes `pos..pos + want` (the file must hold them). The chunk holds `held`
    /// (a share of a memory budget) until its last reference is dropped.
    pub(super) fn read_chunk(
        &self,
        pos: u64,
        want: usize,
        held: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> std::io::Result<Bytes> {
        let base = pos - pos % BLOCK as u64;
        let skip = (pos - base) as usize;
        let span = (skip + want).div_ceil(BLOCK) * BLOCK;
        let mut buf = AlignedChunk::new(span, held);
        let need = skip + want;
        let cached = match self.direct {
            Some(_) => self.cached_prefix(base, span).min(need),
            None => need,
        };
        if cached > 0 {
            self.fill(&mut buf, base, cached, Mode::Buffered)?;
        }
        if buf.len < need {
            // Direct reads need a block-aligned offset and buffer address: the cached
            // prefix is whole pages, so the rest starts aligned.
            let mode = if self.direct.is_some() && buf.len % BLOCK == 0 {
                Mode::Direct
            } else {
                Mode::Buffered
            };
            self.fill(&mut buf, base, need, mode)?;
        }
        Ok(Bytes::from_owner(buf).slice(skip..need))
    }

    /// Read into `buf` from `base + buf.len` until it holds `need` bytes.
    fn fill(
        &self,
        buf: &mut AlignedChunk,
        base: u64,
        need: usize,
        mut mode: Mode,
    ) -> std::io::Result<()> {
        while buf.len < need {
            if mode == Mode::Direct && buf.len % BLOCK != 0 {
                // A short direct read (not at the end): finish unaligned, buffered.
                mode = Mode::Buffered;
            }
            let (ptr, spare) = buf.spare();
            let len = match mode {
                // Whole blocks up to the end of the buffer; the file's end makes it short.
                Mode::Direct => spare,
                _ => need - buf.len,
            };
            let offset = (base + buf.len as u64) as libc::off_t;
            let n = match mode {
                Mode::Buffered => {
                    // SAFETY: `len` writable bytes at `ptr` within `buf`'s allocation.
                    unsafe { libc::pread(self.buffered.as_raw_fd(), ptr.cast(), len, offset) }
                }
                Mode::Direct => {
                    let fd = self.direct.as_ref().map_or(-1, |f| f.as_raw_fd());
                    // SAFETY: as above; `ptr`, `len` and `offset` are block-aligned.
                    unsafe { libc::pread(fd, ptr.cast(), len, offset) }
                }
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "blob file is shorter than recorded",
                ));
            }
            buf.len += n as usize;
        }
        // A direct read may run past `need` up to the block boundary; keep `need`.
        buf.len = buf.len.min(need);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn chunks_read_back_exactly_at_any_offset_cached_or_not() {
        // /var/tmp is on disk here (O_DIRECT works); tmpfs falls back to buffered reads.
        for dir in [std::env::temp_dir(), std::path::PathBuf::from("/var/tmp")] {
            let Ok(tmp) = tempfile::tempdir_in(&dir) else {
                continue;
            };
            let path = tmp.path().join("blob");
            let data = pattern(3 * 1024 * 1024 + 123);
            std::fs::write(&path, &data).unwrap();
            let file = File::open(&path).unwrap();
            file.sync_all().unwrap();
            // Drop the file from the page cache so the direct path is taken.
            // SAFETY: plain advisory call on a valid descriptor.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            let blob = BlobFile::new(file, &path);
            if blob.direct.is_some() {
                // Nothing cached after DONTNEED of clean pages; all of it after a read.
                assert_eq!(blob.cached_prefix(0, 256 * 1024), 0, "{}", dir.display());
                let _ = std::fs::read(&path).unwrap();
                assert_eq!(blob.cached_prefix(0, 256 * 1024), 256 * 1024);
                // SAFETY: as above.
                unsafe {
                    libc::posix_fadvise(blob.buffered.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED)
                };
            }
            for (pos, want) in [
                (0u64, 256 * 1024usize),
                (1, 4095),
                (4095, 2),
                (1_000_000, 262_144),
                (data.len() as u64 - 10, 10),
                (data.len() as u64 - 300_000, 300_000),
            ] {
                let got = blob.read_chunk(pos, want, None).unwrap();
                assert_eq!(
                    &got[..],
                    &data[pos as usize..pos as usize + want],
                    "{} at {pos}+{want}",
                    dir.display()
                );
            }
            // Past the end: an error, never short data.
            assert!(blob.read_chunk(data.len() as u64 - 5, 10, None).is_err());
        }
    }
}
