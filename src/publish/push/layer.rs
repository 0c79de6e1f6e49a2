//! Getting one blob into the target repository at the least cost:
//! HEAD (already there) -> cross-repository mount -> compress and upload.
//!
//! A HEAD that fails (5xx, connection) is retried and never read as "absent". A layer's
//! digest comes from the layer cache when it knows the diff id, so an unchanged layer is
//! found (or mounted) without compressing it; otherwise, or when the registry does not
//! confirm the cached digest, the layer is compressed to a temporary file first.

use super::archive::{DockerArchive, LayerSource};
use super::cache::{CachedBlob, LayerCache};
use super::chunked::UploadTarget;
use super::error::PushError;
use super::gzip;
use super::progress::LayerEvent;
use crate::client::{BlobUpload, Bytes, MountOutcome};
use crate::oci::{Digest, RepoName};
use std::path::Path;
use std::sync::Arc;

/// What was done to get a blob into the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobOutcome {
    /// The repository already held it (HEAD).
    Existed,
    /// Mounted from this repository.
    Mounted(RepoName),
    /// Uploaded.
    Uploaded {
        /// Chunk bytes put on the wire (failed attempts included).
        bytes_sent: u64,
        /// Resumptions from a registry-reported offset.
        resumes: u32,
        /// Restarts from 0 in a new session.
        restarts: u32,
    },
}

impl BlobOutcome {
    /// Whether the blob's bytes were uploaded (rather than found or mounted).
    pub fn uploaded(&self) -> bool {
        matches!(self, BlobOutcome::Uploaded { .. })
    }
}

/// One pushed layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedLayer {
    /// Position in the image, base layer 0.
    pub index: usize,
    /// Digest of the uncompressed layer.
    pub diff_id: Digest,
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Size of the compressed blob.
    pub size: u64,
    /// Whether the compressed digest came from the layer cache (no compression).
    pub from_cache: bool,
    /// How it got there.
    pub outcome: BlobOutcome,
}

/// Finds, mounts or uploads blobs for one image push.
pub(crate) struct BlobPusher<'a> {
    /// Upload settings (client, repository, retries, progress).
    pub target: UploadTarget<'a>,
    /// Repositories to mount from, in order.
    pub mount_from: &'a [RepoName],
    /// The diff id -> blob cache.
    pub cache: &'a LayerCache,
    /// Where compressed layers are written before upload.
    pub temp_dir: &'a Path,
}

impl BlobPusher<'_> {
    fn report(&self, event: LayerEvent) {
        self.target.progress.report(self.target.blob, &event);
    }

    /// HEAD, then mounts. `Ok(Err(session))` when the blob must be uploaded, with the
    /// session a refused mount opened, if any.
    async fn find_or_mount(
        &self,
        digest: &Digest,
        size: u64,
    ) -> Result<Result<BlobOutcome, Option<BlobUpload>>, PushError> {
        if self.target.blob_present(digest, size).await? {
            self.report(LayerEvent::Exists {
                digest: digest.clone(),
                size,
            });
            return Ok(Ok(BlobOutcome::Existed));
        }
        let t = &self.target;
        let mut session: Option<BlobUpload> = None;
        for from in self.mount_from {
            if from == t.repo {
                continue;
            }
            let what = format!("mounting {digest} from {from} into {}", t.repo);
            let outcome = t
                .retry
                .run(&what, || t.client.mount_blob(t.repo, digest, Some(from)))
                .await;
            match outcome {
                Ok(MountOutcome::Mounted(_)) => {
                    if let Some(s) = session.take() {
                        let _ = t.client.cancel_upload(s).await;
                    }
                    self.report(LayerEvent::Mounted {
                        digest: digest.clone(),
                        from: from.clone(),
                    });
                    return Ok(Ok(BlobOutcome::Mounted(from.clone())));
                }
                Ok(MountOutcome::Upload(s)) => {
                    // Keep one session for the upload; close the others.
                    if let Some(old) = session.replace(s) {
                        let _ = t.client.cancel_upload(old).await;
                    }
                }
                // Refused (no access to the source, unknown repository): not mounted.
                Err(PushError::Registry { source, .. }) => {
                    tracing::debug!("{what}: {source}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Err(session))
    }

    /// Get layer `layer` of `archive` into the repository.
    pub async fn push_layer(
        &self,
        archive: &Arc<DockerArchive>,
        layer: &LayerSource,
    ) -> Result<PushedLayer, PushError> {
        let done = |digest: Digest, size, from_cache, outcome| PushedLayer {
            index: layer.index,
            diff_id: layer.diff_id.clone(),
            digest,
            size,
            from_cache,
            outcome,
        };
        let cached = self.cache.get(&layer.diff_id);
        let mut session = None;
        if let Some(c) = &cached {
            match self.find_or_mount(&c.digest, c.size).await? {
                Ok(outcome) => return Ok(done(c.digest.clone(), c.size, true, outcome)),
                Err(s) => session = s,
            }
        }
        self.report(LayerEvent::Compressing { total: layer.size });
        let (file, compressed) = self.compress(archive, layer).await?;
        self.cache.put(
            &layer.diff_id,
            CachedBlob {
                digest: compressed.digest.clone(),
                size: compressed.size,
            },
        );
        let (digest, size) = (compressed.digest, compressed.size);
        if cached.as_ref().map(|c| &c.digest) != Some(&digest) {
            match self.find_or_mount(&digest, size).await? {
                Ok(outcome) => {
                    if let Some(s) = session {
                        let _ = self.target.client.cancel_upload(s).await;
                    }
                    return Ok(done(digest, size, false, outcome));
                }
                Err(s) => {
                    if let Some(old) = session.take() {
                        let _ = self.target.client.cancel_upload(old).await;
                    }
                    session = s;
                }
            }
        }
        let stats = self
            .target
            .upload_file(session, file.path(), &digest, size)
            .await?;
        let outcome = BlobOutcome::Uploaded {
            bytes_sent: stats.bytes_sent,
            resumes: stats.resumes,
            restarts: stats.restarts,
        };
        Ok(done(digest, size, false, outcome))
    }

    /// Compress the layer into a temporary file (deleted when dropped), off the async
    /// threads, checking its diff id.
    async fn compress(
        &self,
        archive: &Arc<DockerArchive>,
        layer: &LayerSource,
    ) -> Result<(tempfile::NamedTempFile, gzip::Compressed), PushError> {
        let archive = archive.clone();
        let layer = layer.clone();
        let dir = self.temp_dir.to_path_buf();
        let task = tokio::task::spawn_blocking(move || {
            let context = || format!("compressing layer {}", layer.member);
            let input = archive.open_member(&layer.member)?;
            std::fs::create_dir_all(&dir).map_err(|e| PushError::io(context(), e))?;
            let mut file = tempfile::Builder::new()
                .prefix("imgflow-layer-")
                .suffix(".tar.gz")
                .tempfile_in(&dir)
                .map_err(|e| PushError::io(context(), e))?;
            let out = std::io::BufWriter::with_capacity(256 << 10, file.as_file_mut());
            let compressed =
                gzip::recompress(input, out).map_err(|e| PushError::io(context(), e))?;
            if compressed.diff_id != layer.diff_id {
                return Err(PushError::DiffIdMismatch {
                    path: archive.path().to_path_buf(),
                    index: layer.index,
                    expected: layer.diff_id.clone(),
                    actual: compressed.diff_id,
                });
            }
            Ok((file, compressed))
        });
        task.await
            .map_err(|e| PushError::io("compressing a layer", std::io::Error::other(e)))?
    }

    /// Get a small in-memory blob (the config) into the repository: HEAD, else one
    /// monolithic upload, retried as a whole.
    pub async fn push_small(&self, digest: &Digest, data: Bytes) -> Result<BlobOutcome, PushError> {
        let size = data.len() as u64;
        if self.target.blob_present(digest, size).await? {
            self.report(LayerEvent::Exists {
                digest: digest.clone(),
                size,
            });
            return Ok(BlobOutcome::Existed);
        }
        let t = &self.target;
        let what = format!("uploading blob {digest} to {}", t.repo);
        t.retry
            .run(&what, || t.client.push_blob(t.repo, digest, data.clone()))
            .await?;
        self.report(LayerEvent::Done {
            digest: digest.clone(),
        });
        Ok(BlobOutcome::Uploaded {
            bytes_sent: size,
            resumes: 0,
            restarts: 0,
        })
    }
}
