//! A chunked upload of a local file that survives dropped connections and registry
//! restarts by resuming where the registry says it is.
//!
//! Each chunk is one `PATCH` with `Content-Range`. When a request fails transiently
//! (transport error, 5xx, 429) or the registry refuses a chunk's position (416), the
//! uploader waits (exponential backoff with jitter), asks the registry for the session's
//! state (`GET <session>` -> `Range: 0-<last>`) and goes on from the reported offset:
//! the bytes the registry holds are never sent again. Only when the registry no longer
//! knows the session (404) does the blob start again in a new session. Attempts without
//! progress are bounded by the [`RetryPolicy`]; each accepted chunk resets the count.

use super::error::PushError;
use super::progress::{BlobKind, LayerEvent, PushProgress};
use super::retry::{is_transient, RetryPolicy};
use crate::client::{BlobUpload, Bytes, Client, ClientError, StatusCode};
use crate::oci::{Digest, RepoName};
use bytes::BytesMut;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Where and how a blob is uploaded.
#[derive(Debug, Clone)]
pub struct UploadTarget<'a> {
    /// The registry.
    pub client: &'a Client,
    /// The repository receiving the blob.
    pub repo: &'a RepoName,
    /// Bytes per PATCH (raised to the registry's minimum if it announces one).
    pub chunk_size: usize,
    /// Retry budget and backoff.
    pub retry: &'a RetryPolicy,
    /// Progress hook, and which blob the events are about.
    pub progress: &'a PushProgress,
    /// The blob the events name.
    pub blob: BlobKind,
}

/// What an upload took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadStats {
    /// Chunk bytes put on the wire, failed attempts included.
    pub bytes_sent: u64,
    /// Times the upload went on from a registry-reported offset after a failure.
    pub resumes: u32,
    /// Times the session was lost and the blob started again from 0.
    pub restarts: u32,
}

/// How a failed request is handled.
enum Failure {
    /// Ask the registry where the session is, then go on.
    Resume,
    /// Give up.
    Fatal,
}

fn classify(err: &ClientError) -> Failure {
    let refused = [StatusCode::RANGE_NOT_SATISFIABLE, StatusCode::NOT_FOUND];
    if is_transient(err) || err.status().is_some_and(|s| refused.contains(&s)) {
        Failure::Resume
    } else {
        Failure::Fatal
    }
}

async fn read_chunk(
    file: &mut tokio::fs::File,
    path: &Path,
    start: u64,
    len: usize,
) -> Result<Bytes, PushError> {
    let context = || format!("reading {}", path.display());
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| PushError::io(context(), e))?;
    let mut buf = BytesMut::zeroed(len);
    file.read_exact(&mut buf)
        .await
        .map_err(|e| PushError::io(context(), e))?;
    Ok(buf.freeze())
}

impl UploadTarget<'_> {
    fn report(&self, event: LayerEvent) {
        self.progress.report(self.blob, &event);
    }

    async fn open_session(&self) -> Result<BlobUpload, PushError> {
        let what = format!("opening an upload in {}", self.repo);
        self.retry
            .run(&what, || self.client.start_upload(self.repo))
            .await
    }

    /// Upload the `size` bytes of the file at `path`, whose digest is `digest`, in
    /// `session` (e.g. the one a refused mount opened) or a new one.
    pub async fn upload_file(
        &self,
        session: Option<BlobUpload>,
        path: &Path,
        digest: &Digest,
        size: u64,
    ) -> Result<UploadStats, PushError> {
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| PushError::io(format!("opening {}", path.display()), e))?;
        let mut upload = match session {
            Some(s) => s,
            None => self.open_session().await?,
        };
        let min = upload.min_chunk_length().unwrap_or(1);
        let chunk = (self.chunk_size as u64).max(min).max(1);
        let mut stats = UploadStats::default();
        let mut failures = 0u32;
        loop {
            let start = upload.offset();
            let result = if start >= size {
                match self
                    .client
                    .finish_upload(upload.clone(), digest, None)
                    .await
                {
                    Ok(_) => break,
                    Err(e) => Err(e),
                }
            } else {
                let len = chunk.min(size - start) as usize;
                let bytes = read_chunk(&mut file, path, start, len).await?;
                stats.bytes_sent += len as u64;
                self.client.upload_chunk(upload.clone(), bytes).await
            };
            let err = match result {
                Ok(next) => {
                    failures = 0;
                    upload = next;
                    self.report(LayerEvent::Uploaded {
                        sent: upload.offset(),
                        total: size,
                        chunk_start: start,
                    });
                    continue;
                }
                Err(e) => e,
            };
            let context = format!("uploading {digest} to {}", self.repo);
            if let Failure::Fatal = classify(&err) {
                return Err(PushError::registry(context, err));
            }
            failures += 1;
            if !self.retry.allows(failures) {
                return Err(PushError::RetriesExhausted {
                    context,
                    attempts: failures,
                    source: Box::new(err),
                });
            }
            tokio::time::sleep(self.retry.delay(failures)).await;
            if start >= size && self.blob_present(digest, size).await? {
                // The final PUT went through; only its answer was lost.
                break;
            }
            upload = self.recover(upload, &err, &mut stats).await?;
        }
        self.report(LayerEvent::Done {
            digest: digest.clone(),
        });
        Ok(stats)
    }

    /// Whether the repository holds `digest` with `size` bytes (HEAD, retried on
    /// transient failures, which are never read as "absent").
    pub(crate) async fn blob_present(&self, digest: &Digest, size: u64) -> Result<bool, PushError> {
        let what = format!("checking blob {digest} in {}", self.repo);
        let found = self
            .retry
            .run(&what, || self.client.blob_size(self.repo, digest))
            .await?;
        Ok(found == Some(size))
    }

    /// After `err`, the session state the registry reports; a new session when it no
    /// longer knows this one.
    async fn recover(
        &self,
        confirmed: BlobUpload,
        err: &ClientError,
        stats: &mut UploadStats,
    ) -> Result<BlobUpload, PushError> {
        let what = format!("asking {} for the upload offset", self.repo);
        let status = self
            .retry
            .run(&what, || self.client.upload_status(&confirmed))
            .await;
        match status {
            Ok(state) => {
                stats.resumes += 1;
                // `0-0` means "nothing" or "one byte": with no byte confirmed, read it as
                // nothing (a wrong guess is refused with 416 and asked again).
                let state = if state.offset() == 1 && confirmed.offset() == 0 {
                    confirmed
                } else {
                    state
                };
                self.report(LayerEvent::Resumed {
                    offset: state.offset(),
                    after: err.to_string(),
                });
                Ok(state)
            }
            Err(PushError::Registry { source, .. }) if source.is_not_found() => {
                stats.restarts += 1;
                self.report(LayerEvent::Restarted {
                    reason: format!("the registry no longer knows the session after: {err}"),
                });
                self.open_session().await
            }
            Err(e) => Err(e),
        }
    }
}
