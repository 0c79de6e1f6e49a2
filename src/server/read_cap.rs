//! A read-size cap between a connection's TLS stream and the HTTP codec.
//!
//! hyper's HTTP/1.1 read buffer grows with the size of the reads it sees: reading an
//! upload body, every read fills whatever it offers, so it keeps doubling the next read
//! up to its maximum (which must hold the largest request header block, 64 KiB by
//! default) and, while the previous body chunk is still referenced, allocates a fresh
//! buffer of that size. Measured with 200 clients pushing and pulling, those buffers
//! were half the heap (~150 KiB per HTTP/1.1 connection). A TLS record carries at most
//! 16 KiB of plaintext, so handing the codec at most that much per read costs no
//! throughput and keeps its buffer near that size; a large header block still fits,
//! in several reads.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest read handed to the codec: one TLS record's plaintext.
pub(crate) const READ_CAP: usize = 12 << 10;

/// `inner` with every read limited to [`READ_CAP`] bytes; writes pass through.
pub(crate) struct ReadCap<T> {
    inner: T,
}

impl<T> ReadCap<T> {
    /// Wrap `inner`.
    pub(crate) fn new(inner: T) -> ReadCap<T> {
        ReadCap { inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ReadCap<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() <= READ_CAP {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let mut part = buf.take(READ_CAP);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut part))?;
        let n = part.filled().len();
        // SAFETY: `part` is a view of `buf`'s unfilled bytes; the reader filled (and so
        // initialised) the first `n` of them.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ReadCap<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn reads_are_capped_and_complete() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut r = ReadCap::new(&data[..]);
        let mut big = vec![0u8; 64 << 10];
        let n = r.read(&mut big).await.unwrap();
        assert_eq!(n, READ_CAP, "a large read is cut to one record's size");
        assert_eq!(&big[..n], &data[..n]);
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, data[n..], "nothing is lost or repeated");
    }
}
