//! Blob uploads: sessions, monolithic (single POST or POST + PUT), streamed (one PATCH),
//! chunked (PATCH with `Content-Range`), status, cancellation and cross-repository mounts.

use super::error::{ClientError, Result};
use super::headers::parse_upload_range;
use super::progress::{Progress, ProgressEvent};
use super::{header_str, location_of, protocol, Client, Method, StatusCode, Url};
use crate::oci::{Algorithm, Digest, DigestHasher, RepoName};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Default size of the chunks of a chunked upload.
pub const DEFAULT_CHUNK_SIZE: usize = 8 * 1024 * 1024;

/// An upload session: where to send the next request and how many bytes it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobUpload {
    location: Url,
    offset: u64,
    min_chunk: Option<u64>,
}

impl BlobUpload {
    /// The session URL most recently returned by the registry.
    pub fn location(&self) -> &Url {
        &self.location
    }

    /// Bytes sent and accepted so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The smallest chunk the registry accepts (`OCI-Chunk-Min-Length` of the POST
    /// response), if it announced one.
    pub fn min_chunk_length(&self) -> Option<u64> {
        self.min_chunk
    }

    fn at(location: Url, offset: u64) -> BlobUpload {
        BlobUpload {
            location,
            offset,
            min_chunk: None,
        }
    }
}

/// A blob stored by the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedBlob {
    /// The blob's digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The pullable URL the registry returned (`Location`).
    pub location: Url,
}

/// Result of a cross-repository mount request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOutcome {
    /// 201: the blob is now in the target repository, at this URL.
    Mounted(Url),
    /// 202: the registry did not mount and started an upload session instead.
    Upload(BlobUpload),
}

/// Options of streamed and chunked uploads.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Bytes per PATCH of a chunked upload (at least 1).
    pub chunk_size: usize,
    /// Digest algorithm computed while reading (ignored when `expected` is set).
    pub algorithm: Algorithm,
    /// The digest the content must have; the upload is cancelled if it differs.
    pub expected: Option<Digest>,
    /// Total size if known, passed on to the progress hook.
    pub total: Option<u64>,
    /// Called with the bytes accepted after each chunk.
    pub progress: Option<Progress>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
            algorithm: Algorithm::Sha256,
            expected: None,
            total: None,
            progress: None,
        }
    }
}

impl UploadOptions {
    fn hasher(&self) -> DigestHasher {
        self.expected
            .as_ref()
            .map_or(self.algorithm, Digest::algorithm)
            .hasher()
    }

    fn report(&self, done: u64) {
        if let Some(p) = &self.progress {
            p.report(ProgressEvent {
                done,
                total: self.total,
            });
        }
    }

    fn check(&self, actual: Digest) -> Result<Digest> {
        match &self.expected {
            Some(expected) if *expected != actual => Err(ClientError::DigestMismatch {
                expected: expected.clone(),
                actual,
            }),
            _ => Ok(actual),
        }
    }
}

/// Read until `buf` is full or the reader ends; returns the bytes read.
async fn read_full<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let m = reader.read(&mut buf[n..]).await?;
        if m == 0 {
            break;
        }
        n += m;
    }
    Ok(n)
}

impl Client {
    /// `POST /v2/<repo>/blobs/uploads/`: open an upload session (202).
    pub async fn start_upload(&self, repo: &RepoName) -> Result<BlobUpload> {
        let url = self.repo_url(repo, "blobs/uploads/")?;
        let m = Method::POST;
        let rb = self.request(m.clone(), url.clone()).body(Bytes::new());
        let resp = self.send(&m, &url, rb, &[StatusCode::ACCEPTED]).await?;
        let min_chunk =
            header_str(resp.headers(), "OCI-Chunk-Min-Length").and_then(|v| v.trim().parse().ok());
        Ok(BlobUpload {
            location: location_of(&m, &url, &resp)?,
            offset: 0,
            min_chunk,
        })
    }

    /// `GET <location>`: the session's current state (204 with `Range`).
    pub async fn upload_status(&self, upload: &BlobUpload) -> Result<BlobUpload> {
        let url = upload.location.clone();
        let m = Method::GET;
        let resp = self.send_bare(&m, &url, &[StatusCode::NO_CONTENT]).await?;
        let offset = match header_str(resp.headers(), "Range") {
            Some(v) => parse_upload_range(v)
                .ok_or_else(|| protocol(&m, &url, format!("invalid Range {v:?}")))?,
            None => 0,
        };
        let location = match header_str(resp.headers(), "Location") {
            Some(_) => location_of(&m, &url, &resp)?,
            None => url,
        };
        Ok(BlobUpload {
            location,
            offset,
            min_chunk: upload.min_chunk,
        })
    }

    /// `DELETE <location>`: cancel the session.
    pub async fn cancel_upload(&self, upload: BlobUpload) -> Result<()> {
        let url = upload.location;
        let m = Method::DELETE;
        let ok = [StatusCode::NO_CONTENT, StatusCode::OK, StatusCode::ACCEPTED];
        self.send_bare(&m, &url, &ok).await?;
        Ok(())
    }

    /// `PATCH <location>` with `Content-Range`: append one chunk (202).
    pub async fn upload_chunk(&self, upload: BlobUpload, chunk: Bytes) -> Result<BlobUpload> {
        if chunk.is_empty() {
            return Ok(upload);
        }
        let min_chunk = upload.min_chunk;
        let url = upload.location;
        let m = Method::PATCH;
        let end = upload.offset + chunk.len() as u64;
        let rb = self
            .request(m.clone(), url.clone())
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{}-{}", upload.offset, end - 1))
            .body(chunk);
        let resp = self.send(&m, &url, rb, &[StatusCode::ACCEPTED]).await?;
        if let Some(v) = header_str(resp.headers(), "Range") {
            if parse_upload_range(v) != Some(end) {
                return Err(protocol(
                    &m,
                    &url,
                    format!(
                        "registry reports Range {v:?} after receiving bytes 0-{}",
                        end - 1
                    ),
                ));
            }
        }
        let location = match header_str(resp.headers(), "Location") {
            Some(_) => location_of(&m, &url, &resp)?,
            None => url,
        };
        Ok(BlobUpload {
            location,
            offset: end,
            min_chunk,
        })
    }

    /// `PUT <location>?digest=<digest>`: close the session (201), optionally sending
    /// the last chunk in the same request.
    pub async fn finish_upload(
        &self,
        upload: BlobUpload,
        digest: &Digest,
        last_chunk: Option<Bytes>,
    ) -> Result<PushedBlob> {
        let mut url = upload.location;
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let m = Method::PUT;
        let mut rb = self.request(m.clone(), url.clone());
        let mut size = upload.offset;
        match last_chunk.filter(|c| !c.is_empty()) {
            Some(chunk) => {
                let end = upload.offset + chunk.len() as u64;
                // A single monolithic PUT carries no Content-Range.
                if upload.offset > 0 {
                    rb = rb.header("Content-Range", format!("{}-{}", upload.offset, end - 1));
                }
                rb = rb
                    .header("Content-Type", "application/octet-stream")
                    .body(chunk);
                size = end;
            }
            None => rb = rb.body(Bytes::new()),
        }
        let resp = self.send(&m, &url, rb, &[StatusCode::CREATED]).await?;
        pushed(&m, &url, &resp, digest, size)
    }

    /// Monolithic upload: `POST` a session, then `PUT` the whole blob (201).
    pub async fn push_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        data: Bytes,
    ) -> Result<PushedBlob> {
        let upload = self.start_upload(repo).await?;
        self.finish_upload(upload, digest, Some(data)).await
    }

    /// Single-request upload: `POST ?digest=` with the blob (201). A registry without
    /// single-POST support answers 202 with a session; the blob is then `PUT` there.
    pub async fn push_blob_single_post(
        &self,
        repo: &RepoName,
        digest: &Digest,
        data: Bytes,
    ) -> Result<PushedBlob> {
        let mut url = self.repo_url(repo, "blobs/uploads/")?;
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let m = Method::POST;
        let size = data.len() as u64;
        let rb = self
            .request(m.clone(), url.clone())
            .header("Content-Type", "application/octet-stream")
            .body(data.clone());
        let ok = [StatusCode::CREATED, StatusCode::ACCEPTED];
        let resp = self.send(&m, &url, rb, &ok).await?;
        if resp.status() == StatusCode::CREATED {
            return pushed(&m, &url, &resp, digest, size);
        }
        let upload = BlobUpload::at(location_of(&m, &url, &resp)?, 0);
        self.finish_upload(upload, digest, Some(data)).await
    }

    /// Chunked upload from `reader`: one PATCH per `chunk_size` bytes (raised to the
    /// registry's `OCI-Chunk-Min-Length`), hashing while reading, then `PUT ?digest=`.
    /// Holds one chunk in memory at a time. On failure the session is cancelled
    /// (best effort).
    pub async fn push_blob_chunked<R: AsyncRead + Unpin>(
        &self,
        repo: &RepoName,
        mut reader: R,
        opts: &UploadOptions,
    ) -> Result<PushedBlob> {
        let mut upload = self.start_upload(repo).await?;
        let min = upload
            .min_chunk
            .and_then(|m| usize::try_from(m).ok())
            .unwrap_or(1);
        let chunk_size = opts.chunk_size.max(min).max(1);
        let mut hasher = opts.hasher();
        loop {
            let mut buf = BytesMut::zeroed(chunk_size);
            let n = match read_full(&mut reader, &mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = self.cancel_upload(upload).await;
                    return Err(ClientError::io("reading blob content", e));
                }
            };
            buf.truncate(n);
            if n == 0 {
                break;
            }
            hasher.update(&buf);
            let location = upload.location.clone();
            upload = match self.upload_chunk(upload, buf.freeze()).await {
                Ok(u) => u,
                Err(e) => {
                    let _ = self.cancel_upload(BlobUpload::at(location, 0)).await;
                    return Err(e);
                }
            };
            opts.report(upload.offset);
            if n < chunk_size {
                break;
            }
        }
        self.finish_checked(upload, opts, hasher.finish()).await
    }

    /// Streamed upload from `reader`: one PATCH whose body is streamed (no
    /// `Content-Range`), hashing while sending, then `PUT ?digest=`.
    pub async fn push_blob_streamed<R: AsyncRead + Send + Unpin + 'static>(
        &self,
        repo: &RepoName,
        reader: R,
        opts: &UploadOptions,
    ) -> Result<PushedBlob> {
        let upload = self.start_upload(repo).await?;
        let url = upload.location.clone();
        let state = Arc::new(Mutex::new((opts.hasher(), 0u64)));
        let seen = state.clone();
        let hook = opts.clone();
        let stream = tokio_util::io::ReaderStream::new(reader).map(move |chunk| {
            if let Ok(bytes) = &chunk {
                let mut guard = seen.lock().unwrap_or_else(|p| p.into_inner());
                guard.0.update(bytes);
                guard.1 += bytes.len() as u64;
                hook.report(guard.1);
            }
            chunk
        });
        let m = Method::PATCH;
        let rb = self
            .request(m.clone(), url.clone())
            .header("Content-Type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(stream));
        let resp = match self.send(&m, &url, rb, &[StatusCode::ACCEPTED]).await {
            Ok(r) => r,
            Err(e) => {
                let _ = self.cancel_upload(upload).await;
                return Err(e);
            }
        };
        let location = match header_str(resp.headers(), "Location") {
            Some(_) => location_of(&m, &url, &resp)?,
            None => url,
        };
        let (hasher, size) = {
            let guard = state.lock().unwrap_or_else(|p| p.into_inner());
            guard.clone()
        };
        let upload = BlobUpload::at(location, size);
        self.finish_checked(upload, opts, hasher.finish()).await
    }

    /// Close `upload` if `computed` is the digest `opts` expects; cancel it otherwise.
    async fn finish_checked(
        &self,
        upload: BlobUpload,
        opts: &UploadOptions,
        computed: Digest,
    ) -> Result<PushedBlob> {
        let digest = match opts.check(computed) {
            Ok(d) => d,
            Err(e) => {
                let _ = self.cancel_upload(upload).await;
                return Err(e);
            }
        };
        self.finish_upload(upload, &digest, None).await
    }

    /// Chunked upload of the file at `path` (its size is reported as the total).
    pub async fn push_blob_file(
        &self,
        repo: &RepoName,
        path: &Path,
        opts: &UploadOptions,
    ) -> Result<PushedBlob> {
        let context = || format!("opening {}", path.display());
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| ClientError::io(context(), e))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| ClientError::io(context(), e))?
            .len();
        let opts = UploadOptions {
            total: Some(size),
            ..opts.clone()
        };
        self.push_blob_chunked(repo, tokio::io::BufReader::new(file), &opts)
            .await
    }

    /// `POST /v2/<repo>/blobs/uploads/?mount=<digest>[&from=<from>]`.
    pub async fn mount_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<MountOutcome> {
        let mut url = self.repo_url(repo, "blobs/uploads/")?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("mount", digest.as_str());
            if let Some(from) = from {
                q.append_pair("from", from.as_str());
            }
        }
        let m = Method::POST;
        let rb = self.request(m.clone(), url.clone()).body(Bytes::new());
        let ok = [StatusCode::CREATED, StatusCode::ACCEPTED];
        let resp = self.send(&m, &url, rb, &ok).await?;
        let location = location_of(&m, &url, &resp)?;
        Ok(if resp.status() == StatusCode::CREATED {
            MountOutcome::Mounted(location)
        } else {
            MountOutcome::Upload(BlobUpload::at(location, 0))
        })
    }
}

/// Build the result of a completed upload, checking `Docker-Content-Digest`.
fn pushed(
    m: &Method,
    url: &Url,
    resp: &reqwest::Response,
    digest: &Digest,
    size: u64,
) -> Result<PushedBlob> {
    if let Some(v) = header_str(resp.headers(), super::CONTENT_DIGEST_HEADER) {
        // The canonical digest may use another algorithm; only a same-algorithm
        // difference is an error.
        if let Ok(d) = v.parse::<Digest>() {
            if d.algorithm() == digest.algorithm() && &d != digest {
                return Err(protocol(
                    m,
                    url,
                    format!("registry stored {d}, expected {digest}"),
                ));
            }
        }
    }
    Ok(PushedBlob {
        digest: digest.clone(),
        size,
        location: location_of(m, url, resp)?,
    })
}
