//! Blob reads and deletion: HEAD, GET (whole or ranged, into memory or streamed to a
//! writer), DELETE. Uploads live in [`super::upload`].

use super::error::{ClientError, Result};
use super::progress::{Progress, ProgressEvent};
use super::{header_str, protocol, Client, Method, StatusCode};
use crate::oci::{Digest, RepoName};
use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// An inclusive byte range for a ranged GET (`Range: bytes=start-end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte offset.
    pub start: u64,
    /// Last byte offset (inclusive), or `None` for "to the end".
    pub end: Option<u64>,
}

impl ByteRange {
    /// The value of the `Range` request header.
    pub fn header_value(&self) -> String {
        match self.end {
            Some(end) => format!("bytes={}-{end}", self.start),
            None => format!("bytes={}-", self.start),
        }
    }

    /// Whether byte `offset` of the full content lies in the range.
    fn contains(&self, offset: u64) -> bool {
        offset >= self.start && self.end.is_none_or(|e| offset <= e)
    }
}

impl Client {
    /// `HEAD /v2/<repo>/blobs/<digest>`: the blob's size if it exists, `None` on 404.
    pub async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        let url = self.repo_url(repo, &format!("blobs/{digest}"))?;
        let m = Method::HEAD;
        let resp = self
            .send_bare(&m, &url, &[StatusCode::OK, StatusCode::NOT_FOUND])
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let size = header_str(resp.headers(), "Content-Length")
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| protocol(&m, &url, "no valid Content-Length on blob HEAD"))?;
        Ok(Some(size))
    }

    /// `GET /v2/<repo>/blobs/<digest>` into memory, verifying the digest.
    pub async fn get_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Bytes> {
        let mut out = Vec::new();
        self.get_blob_to(repo, digest, None, &mut out, None).await?;
        Ok(out.into())
    }

    /// A byte range of a blob, into memory.
    pub async fn get_blob_range(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: ByteRange,
    ) -> Result<Bytes> {
        let mut out = Vec::new();
        self.get_blob_to(repo, digest, Some(range), &mut out, None)
            .await?;
        Ok(out.into())
    }

    /// Stream a blob (or a range of it) to `writer`; returns the bytes written.
    ///
    /// A whole blob is hashed while written and checked against `digest`
    /// ([`ClientError::DigestMismatch`] otherwise). A registry answering a ranged request
    /// with the whole blob (200) is handled by skipping the bytes outside the range.
    pub async fn get_blob_to<W: AsyncWrite + Unpin>(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<ByteRange>,
        writer: &mut W,
        progress: Option<&Progress>,
    ) -> Result<u64> {
        let url = self.repo_url(repo, &format!("blobs/{digest}"))?;
        let m = Method::GET;
        let mut rb = self.request(m.clone(), url.clone());
        let mut ok = vec![StatusCode::OK];
        if let Some(r) = &range {
            rb = rb.header("Range", r.header_value());
            ok.push(StatusCode::PARTIAL_CONTENT);
        }
        let mut resp = self.send(&m, &url, rb, &ok).await?;
        let partial = resp.status() == StatusCode::PARTIAL_CONTENT;
        let total = resp.content_length();
        // Offset (in the full blob) of the next byte received.
        let mut offset = match (&range, partial) {
            (Some(r), true) => r.start,
            _ => 0,
        };
        let mut hasher = (range.is_none()).then(|| digest.algorithm().hasher());
        let mut written = 0u64;
        loop {
            let chunk = resp.chunk().await.map_err(|source| ClientError::Http {
                method: m.clone(),
                url: url.to_string(),
                source: source.without_url(),
            })?;
            let Some(chunk) = chunk else { break };
            let part = match &range {
                Some(r) if !partial => clip(&chunk, offset, r),
                _ => &chunk[..],
            };
            offset += chunk.len() as u64;
            if let Some(h) = hasher.as_mut() {
                h.update(part);
            }
            writer
                .write_all(part)
                .await
                .map_err(|e| ClientError::io(format!("writing blob {digest}"), e))?;
            written += part.len() as u64;
            if let Some(p) = progress {
                p.report(ProgressEvent {
                    done: written,
                    total,
                });
            }
        }
        writer
            .flush()
            .await
            .map_err(|e| ClientError::io(format!("writing blob {digest}"), e))?;
        if let Some(h) = hasher {
            let actual = h.finish();
            if &actual != digest {
                return Err(ClientError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                });
            }
        }
        Ok(written)
    }

    /// `DELETE /v2/<repo>/blobs/<digest>` (202 Accepted).
    pub async fn delete_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let url = self.repo_url(repo, &format!("blobs/{digest}"))?;
        let m = Method::DELETE;
        self.send_bare(&m, &url, &[StatusCode::ACCEPTED]).await?;
        Ok(())
    }
}

/// The part of `chunk` (starting at `offset` in the full blob) that lies in `range`.
fn clip<'c>(chunk: &'c [u8], offset: u64, range: &ByteRange) -> &'c [u8] {
    let len = chunk.len() as u64;
    let from = range.start.saturating_sub(offset).min(len);
    let to = match range.end {
        Some(end) if end < offset => 0,
        Some(end) => (end - offset + 1).min(len),
        None => len,
    };
    if from >= to || !range.contains(offset + from) {
        return &[];
    }
    &chunk[from as usize..to as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_header_values() {
        let r = ByteRange {
            start: 2,
            end: Some(5),
        };
        assert_eq!(r.header_value(), "bytes=2-5");
        let open = ByteRange {
            start: 10,
            end: None,
        };
        assert_eq!(open.header_value(), "bytes=10-");
    }

    #[test]
    fn clipping_a_full_response_to_a_range() {
        let data: Vec<u8> = (0u8..20).collect();
        let r = ByteRange {
            start: 5,
            end: Some(12),
        };
        // Receive the full blob in chunks of 4 and keep what lies in the range.
        let mut kept = Vec::new();
        for (i, chunk) in data.chunks(4).enumerate() {
            kept.extend_from_slice(clip(chunk, (i * 4) as u64, &r));
        }
        assert_eq!(kept, (5u8..=12).collect::<Vec<_>>());
        let tail = ByteRange {
            start: 18,
            end: None,
        };
        let mut kept = Vec::new();
        for (i, chunk) in data.chunks(7).enumerate() {
            kept.extend_from_slice(clip(chunk, (i * 7) as u64, &tail));
        }
        assert_eq!(kept, vec![18, 19]);
    }
}
