//! Deterministic gzip compression of layers.
//!
//! The same uncompressed tar always gives the same gzip bytes, hence the same blob
//! digest, so an unchanged layer is recognised by the registry (HEAD) and never uploaded
//! twice. The gzip header is fixed: no file name, no comment, modification time 0,
//! operating system "unknown" (255); the deflate level is fixed ([`LEVEL`]).
//!
//! Determinism holds for a given deflate implementation: flate2's default pure-Rust
//! backend (miniz_oxide) at the version in `Cargo.lock`. Another backend or a miniz_oxide
//! release that changes its output gives other (equally valid) bytes; the layer cache
//! records [`FORMAT`] so such a change is noticed there, and the registry then simply
//! receives the layer again under its new digest.
//!
//! Compression streams: the input is read in buffers and the output written to a file,
//! so no layer is ever held in memory.

use crate::oci::{Algorithm, Digest, DigestHasher};
use flate2::{Compression, GzBuilder};
use std::io::{self, BufRead, BufReader, Read, Write};

/// The deflate level used for every layer (flate2's default trade-off).
pub const LEVEL: u32 = 6;

/// Names the compression parameters; recorded with every cache entry.
pub const FORMAT: &str = "gzip-level6-mtime0-miniz_oxide";

/// What compressing a layer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compressed {
    /// Digest of the uncompressed content (the layer's diff id).
    pub diff_id: Digest,
    /// Digest of the gzip bytes (the blob digest).
    pub digest: Digest,
    /// Size of the gzip bytes.
    pub size: u64,
    /// Size of the uncompressed content.
    pub uncompressed_size: u64,
}

/// A writer that hashes and counts what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: DigestHasher,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Whether `reader` starts with the gzip magic bytes (without consuming them).
pub fn starts_with_gzip<R: BufRead>(reader: &mut R) -> io::Result<bool> {
    let head = reader.fill_buf()?;
    Ok(head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b)
}

/// Compress `input` (an uncompressed tar) into `output` with the fixed parameters.
///
/// Returns both digests and sizes; `output` is flushed but not synced.
pub fn compress<R: Read, W: Write>(input: R, output: W) -> io::Result<Compressed> {
    let mut input = BufReader::with_capacity(256 << 10, input);
    let sink = HashingWriter {
        inner: output,
        hasher: Algorithm::Sha256.hasher(),
        written: 0,
    };
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(sink, Compression::new(LEVEL));
    let mut diff = Algorithm::Sha256.hasher();
    let mut uncompressed_size = 0u64;
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        encoder.write_all(buf)?;
        diff.update(buf);
        let n = buf.len();
        uncompressed_size += n as u64;
        input.consume(n);
    }
    let mut sink = encoder.finish()?;
    sink.flush()?;
    Ok(Compressed {
        diff_id: diff.finish(),
        digest: sink.hasher.finish(),
        size: sink.written,
        uncompressed_size,
    })
}

/// Like [`compress`], but a gzip-compressed input (some `docker save` archives keep the
/// pulled blobs) is decompressed first, so the result depends on the content only.
pub fn recompress<R: Read, W: Write>(input: R, output: W) -> io::Result<Compressed> {
    let mut input = BufReader::with_capacity(256 << 10, input);
    if starts_with_gzip(&mut input)? {
        compress(flate2::bufread::MultiGzDecoder::new(input), output)
    } else {
        compress(input, output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;

    fn sample() -> Vec<u8> {
        let mut data = Vec::new();
        for i in 0..200_000u32 {
            data.extend_from_slice(format!("line {i} {}\n", i % 7).as_bytes());
        }
        data
    }

    #[test]
    fn same_input_gives_same_bytes_and_digest() {
        let data = sample();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let ca = compress(&data[..], &mut a).unwrap();
        let cb = compress(&data[..], &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(ca, cb);
        assert_eq!(ca.digest, Digest::sha256(&a));
        assert_eq!(ca.size, a.len() as u64);
        assert_eq!(ca.diff_id, Digest::sha256(&data));
        assert_eq!(ca.uncompressed_size, data.len() as u64);
        // Fixed header: magic, deflate, no flags, mtime 0, OS unknown.
        assert_eq!(&a[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        let mut back = Vec::new();
        GzDecoder::new(&a[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn gzip_input_is_normalised() {
        let data = sample();
        let mut foreign = Vec::new();
        let mut enc = GzBuilder::new()
            .filename("layer.tar")
            .mtime(12345)
            .write(&mut foreign, Compression::fast());
        enc.write_all(&data).unwrap();
        enc.finish().unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let from_plain = recompress(&data[..], &mut a).unwrap();
        let from_gzip = recompress(&foreign[..], &mut b).unwrap();
        assert_eq!(from_plain, from_gzip);
        assert_eq!(a, b);
    }

    #[test]
    fn empty_input_compresses() {
        let mut out = Vec::new();
        let c = compress(&b""[..], &mut out).unwrap();
        assert_eq!(c.uncompressed_size, 0);
        assert_eq!(c.diff_id, Digest::sha256(b""));
        assert!(c.size > 0);
    }
}
