//! Pushing one image of a `docker save` archive by digest, then verifying it.

use super::archive::DockerArchive;
use super::chunked::UploadTarget;
use super::error::PushError;
use super::layer::{BlobOutcome, BlobPusher, PushedLayer};
use super::manifest::{descriptor, image_manifest};
use super::progress::BlobKind;
use super::{PushRequest, Pusher};
use crate::client::Bytes;
use crate::oci::{self, Descriptor, Digest, Reference, RepoName};
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;

/// An image pushed by digest (no tag) and read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// The repository.
    pub repo: RepoName,
    /// Digest of the manifest.
    pub digest: Digest,
    /// Media type of the manifest (OCI image manifest).
    pub media_type: String,
    /// Size of the manifest in bytes.
    pub manifest_size: u64,
    /// The config blob.
    pub config: Descriptor,
    /// How the config got there.
    pub config_outcome: BlobOutcome,
    /// The layers, base first.
    pub layers: Vec<PushedLayer>,
    /// Compressed size of the image: config plus compressed layers (for size budgets).
    pub compressed_size: u64,
    /// Blob bytes uploaded (layers and config), each blob counted once at its size.
    pub pushed_bytes: u64,
    /// Blob bytes not uploaded because the registry held them or mounted them.
    pub skipped_bytes: u64,
    /// The manifest read back by digest matched, and every blob HEADs with its size.
    pub verified: bool,
}

impl PushedImage {
    /// The manifest's descriptor (for a `subject` or an index).
    pub fn descriptor(&self) -> Descriptor {
        descriptor(&self.media_type, self.digest.clone(), self.manifest_size)
    }

    /// Whether no blob was uploaded (the image was already in the registry).
    pub fn unchanged(&self) -> bool {
        self.pushed_bytes == 0
    }
}

impl Pusher {
    /// Push the image `req` names: layers (in parallel), config, then the manifest by
    /// digest; read it back and check every blob. No tag is set.
    pub async fn push_image(&self, req: &PushRequest) -> Result<PushedImage, PushError> {
        let path = req.archive.clone();
        let archive = tokio::task::spawn_blocking(move || DockerArchive::open(path))
            .await
            .map_err(|e| PushError::io("reading the archive", std::io::Error::other(e)))??;
        let archive = Arc::new(archive);
        let index = archive.find_image(req.image.as_deref())?;
        let image = archive.image(index)?;
        let temp_dir = self.temp_dir();
        let blob_pusher = |blob| BlobPusher {
            target: UploadTarget {
                client: &self.client,
                repo: &req.repo,
                chunk_size: self.options.chunk_size,
                retry: &self.options.retry,
                progress: &req.progress,
                blob,
            },
            mount_from: &req.mount_from,
            cache: &self.cache,
            temp_dir: &temp_dir,
        };

        // Owned layers and futures built up front: a stream mapping borrowed items would
        // make this future's type higher-ranked, and it could not be spawned.
        let uploads: Vec<_> = image
            .layers
            .iter()
            .cloned()
            .map(|layer| {
                let archive = archive.clone();
                let pusher = blob_pusher(BlobKind::Layer(layer.index));
                async move { pusher.push_layer(&archive, &layer).await }
            })
            .collect();
        let mut layers: Vec<PushedLayer> = futures::stream::iter(uploads)
            .buffer_unordered(self.options.concurrency.max(1))
            .try_collect()
            .await?;
        layers.sort_by_key(|l| l.index);

        let config_digest = Digest::sha256(&image.config);
        let config_outcome = blob_pusher(BlobKind::Config)
            .push_small(&config_digest, image.config.clone())
            .await?;
        let config = descriptor(oci::OCI_CONFIG, config_digest, image.config.len() as u64);
        let layer_descs: Vec<Descriptor> = layers
            .iter()
            .map(|l| descriptor(oci::OCI_LAYER_TAR_GZIP, l.digest.clone(), l.size))
            .collect();
        let body = Bytes::from(image_manifest(&config, &layer_descs, &req.annotations));
        let digest = self
            .put_manifest_by_digest(&req.repo, oci::OCI_MANIFEST, body.clone())
            .await?;

        let mut pushed = PushedImage {
            repo: req.repo.clone(),
            digest,
            media_type: oci::OCI_MANIFEST.to_string(),
            manifest_size: body.len() as u64,
            compressed_size: config.size + layers.iter().map(|l| l.size).sum::<u64>(),
            pushed_bytes: 0,
            skipped_bytes: 0,
            config,
            config_outcome,
            layers,
            verified: false,
        };
        let blobs = pushed
            .layers
            .iter()
            .map(|l| (l.size, &l.outcome))
            .chain([(pushed.config.size, &pushed.config_outcome)]);
        let (uploaded, skipped): (Vec<_>, Vec<_>) = blobs.partition(|(_, o)| o.uploaded());
        pushed.pushed_bytes = uploaded.iter().map(|(size, _)| size).sum();
        pushed.skipped_bytes = skipped.iter().map(|(size, _)| size).sum();
        self.verify(&pushed, &body).await?;
        pushed.verified = true;
        Ok(pushed)
    }

    /// PUT `body` as a manifest by its digest (retried; idempotent).
    pub(crate) async fn put_manifest_by_digest(
        &self,
        repo: &RepoName,
        media_type: &str,
        body: Bytes,
    ) -> Result<Digest, PushError> {
        let digest = Digest::sha256(&body);
        let reference = Reference::Digest(digest.clone());
        let what = format!("pushing manifest {digest} to {repo}");
        self.options
            .retry
            .run(&what, || {
                self.client
                    .put_manifest(repo, &reference, media_type, body.clone())
            })
            .await?;
        Ok(digest)
    }

    /// Read the manifest back by digest and HEAD every blob it names.
    async fn verify(&self, image: &PushedImage, body: &Bytes) -> Result<(), PushError> {
        let retry = &self.options.retry;
        let repo = &image.repo;
        let reference = Reference::Digest(image.digest.clone());
        let what = format!("reading back {repo}@{}", image.digest);
        let fetched = retry
            .run(&what, || {
                self.client
                    .get_manifest(repo, &reference, &[oci::OCI_MANIFEST])
            })
            .await?;
        if fetched.digest != image.digest || fetched.body != *body {
            return Err(PushError::Verify(format!(
                "{repo}@{} reads back as {} ({} bytes, pushed {})",
                image.digest,
                fetched.digest,
                fetched.body.len(),
                body.len()
            )));
        }
        // Collected first: an iterator with a closure kept across awaits would keep this
        // future from being spawned.
        let blobs: Vec<(&Digest, u64)> = image
            .layers
            .iter()
            .map(|l| (&l.digest, l.size))
            .chain([(&image.config.digest, image.config.size)])
            .collect();
        for (digest, size) in blobs {
            let what = format!("checking blob {digest} in {repo}");
            let found = retry
                .run(&what, || self.client.blob_size(repo, digest))
                .await?;
            if found != Some(size) {
                return Err(PushError::Verify(format!(
                    "blob {digest} of {repo}@{}: HEAD gives {found:?}, expected {size} bytes",
                    image.digest
                )));
            }
        }
        Ok(())
    }
}
