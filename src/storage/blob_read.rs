//! Reading blob files for downloads: from the page cache when the bytes are there, with
//! `O_DIRECT` when they are not.
//!
//! Uploads are written with `O_DIRECT`, so a blob just pushed is not (or only partly) in
//! the page cache, and right after a push every node of the cluster pulls exactly those
//! layers. A buffered read of uncached data makes the kernel allocate and fill page-cache
//! pages and then copy them, CPU the TLS encryption of the download needs on a small
//! host; a direct read has the disk write into our buffer. Each chunk is first read with
//! `RWF_NOWAIT` (served only from the cache); what that cannot give is read directly, in
//! block-aligned buffers, one chunk ahead of the one being sent. Background warming
//! ([`super::blobs::BlobStore::warm`]) still fills the cache for later pulls. On a
//! filesystem without `O_DIRECT` (tmpfs) or without `RWF_NOWAIT`, reads are buffered.

use bytes::Bytes;
use std::alloc::Layout;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Alignment of direct reads (offset, length and buffer address).
const BLOCK: usize = 4096;

/// A heap buffer aligned to [`BLOCK`], of which the first `len` bytes are filled.
struct AlignedChunk {
    ptr: std::ptr::NonNull<u8>,
    layout: Layout,
    /// Bytes filled from the start.
    len: usize,
}

// SAFETY: the buffer is uniquely owned heap memory.
unsafe impl Send for AlignedChunk {}
// SAFETY: shared access is read-only (through `as_ref`).
unsafe impl Sync for AlignedChunk {}

impl AlignedChunk {
    /// An uninitialised buffer of `capacity` bytes (a multiple of [`BLOCK`], non-zero).
    fn new(capacity: usize) -> AlignedChunk {
        let layout = Layout::from_size_align(capacity.max(BLOCK), BLOCK)
            .unwrap_or_else(|_| unreachable!("block-aligned layout"));
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        let ptr =
            std::ptr::NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        AlignedChunk {
            ptr,
            layout,
            len: 0,
        }
    }

    /// The unfilled tail as a raw pointer and its length.
    fn spare(&mut self) -> (*mut u8, usize) {
        // SAFETY: `len <= capacity`, so the pointer stays within the allocation.
        (
            unsafe { self.ptr.as_ptr().add(self.len) },
            self.layout.size() - self.len,
        )
    }
}

impl AsRef<[u8]> for AlignedChunk {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes were written by `pread`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedChunk {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// One blob file opened for reading, buffered and (where the filesystem allows) direct.
pub(super) struct BlobFile {
    buffered: File,
    direct: Option<File>,
    nowait: bool,
}

/// How a read of `len` bytes at `offset` into `dst` is made.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// From the page cache only (`RWF_NOWAIT`): short or `EAGAIN` when not cached.
    CachedOnly,
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
        BlobFile {
            buffered: file,
            direct,
            nowait: true,
        }
    }

    /// Read bytes `pos..pos + want` (the file must hold them).
    pub(super) fn read_chunk(&mut self, pos: u64, want: usize) -> std::io::Result<Bytes> {
        let base = pos - pos % BLOCK as u64;
        let skip = (pos - base) as usize;
        let span = (skip + want).div_ceil(BLOCK) * BLOCK;
        let mut buf = AlignedChunk::new(span);
        let need = skip + want;
        if self.direct.is_some() && self.nowait {
            match self.fill(&mut buf, base, need, Mode::CachedOnly) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => self.nowait = false,
                Err(e) => return Err(e),
            }
        }
        if buf.len < need {
            // Direct reads need a block-aligned offset and buffer address; a cached-only
            // read stops at a page boundary, so the rest starts aligned.
            let mode = if self.direct.is_some() && buf.len % BLOCK == 0 {
                Mode::Direct
            } else {
                Mode::Buffered
            };
            self.fill(&mut buf, base, need, mode)?;
        }
        Ok(Bytes::from_owner(buf).slice(skip..need))
    }

    /// Read into `buf` from `base + buf.len` until it holds `need` bytes; with
    /// [`Mode::CachedOnly`], until the cache runs out (no error then).
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
                Mode::CachedOnly => {
                    let iov = libc::iovec {
                        iov_base: ptr.cast(),
                        iov_len: len,
                    };
                    // SAFETY: `iov` describes `len` writable bytes of `buf`'s allocation.
                    unsafe {
                        libc::preadv2(self.buffered.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT)
                    }
                }
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
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) if mode == Mode::CachedOnly => return Ok(()),
                    _ => return Err(e),
                }
            }
            if n == 0 {
                if mode == Mode::CachedOnly {
                    return Ok(());
                }
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "blob file is shorter than recorded",
                ));
            }
            buf.len += n as usize;
            if mode == Mode::CachedOnly && (n as usize) < len {
                // Short: the cache ran out here (or the file ended).
                return Ok(());
            }
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
            let mut blob = BlobFile::new(file, &path);
            for (pos, want) in [
                (0u64, 256 * 1024usize),
                (1, 4095),
                (4095, 2),
                (1_000_000, 262_144),
                (data.len() as u64 - 10, 10),
                (data.len() as u64 - 300_000, 300_000),
            ] {
                let got = blob.read_chunk(pos, want).unwrap();
                assert_eq!(
                    &got[..],
                    &data[pos as usize..pos as usize + want],
                    "{} at {pos}+{want}",
                    dir.display()
                );
            }
            // Past the end: an error, never short data.
            assert!(blob.read_chunk(data.len() as u64 - 5, 10).is_err());
        }
    }
}
