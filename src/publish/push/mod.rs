//! Pushing images exported by `docker save` with imgflow's own OCI client.
//!
//! One image goes through [`Pusher::push_image`]:
//!
//! 1. the archive is indexed ([`archive`]) — both the OCI layout of current docker and
//!    the older `<id>/layer.tar` layout, through `manifest.json`;
//! 2. each layer, several at a time ([`PushOptions::concurrency`]), is found in the target
//!    repository (HEAD, retried on errors, never read as "absent"), else mounted from one
//!    of [`PushRequest::mount_from`] (a 202 falls back to an upload in the session it
//!    opened), else compressed deterministically ([`gzip`]) to a temporary file and
//!    uploaded in chunks that resume from the registry's reported offset after a dropped
//!    connection or a registry restart ([`chunked`]). The layer cache ([`cache`]) maps diff
//!    ids to compressed digests so an unchanged layer is found without compressing it;
//! 3. the config blob, then an OCI image manifest with the caller's annotations
//!    ([`manifest::Provenance`]) are pushed **by digest only**; the manifest is read back
//!    and compared, every blob HEADed ([`PushedImage::verified`]).
//!
//! Tags are moved separately by [`Pusher::move_tags`], once every image of a run is
//! pushed and verified, so a failed run moves no tag. [`Pusher::attach_report`] attaches
//! a check report as a referrer artifact ([`referrer::CHECK_REPORT_TYPE`]).
//!
//! Transient failures (transport errors, 408, 429, 5xx) are retried with exponential
//! backoff and jitter within a bounded budget ([`retry::RetryPolicy`]); anything else fails
//! the push with a [`PushError`].

pub mod archive;
pub mod cache;
pub mod chunked;
pub mod error;
pub mod gzip;
pub mod image;
pub mod layer;
#[cfg(test)]
mod layer_tests;
pub mod manifest;
pub mod progress;
pub mod referrer;
pub mod retry;
pub mod tags;

pub use cache::{default_cache_dir, LayerCache};
pub use error::PushError;
pub use image::PushedImage;
pub use layer::{BlobOutcome, PushedLayer};
pub use manifest::Provenance;
pub use progress::{BlobKind, LayerEvent, PushProgress};
pub use referrer::CHECK_REPORT_TYPE;
pub use retry::RetryPolicy;

use crate::client::Client;
use crate::oci::RepoName;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Default bytes per PATCH of a layer upload.
pub const DEFAULT_CHUNK_SIZE: usize = 16 << 20;

/// Default number of layers pushed at the same time.
pub const DEFAULT_CONCURRENCY: usize = 3;

/// Settings of a [`Pusher`].
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Layers compressed and uploaded at the same time (at least 1).
    pub concurrency: usize,
    /// Bytes per PATCH.
    pub chunk_size: usize,
    /// Retry budget and backoff of every registry request.
    pub retry: RetryPolicy,
    /// Directory of the layer cache: `None` uses [`default_cache_dir`] (or memory only
    /// when there is no home directory).
    pub cache_dir: Option<PathBuf>,
    /// Where compressed layers are written before upload (default: the system's temp
    /// directory). They are deleted after the upload.
    pub temp_dir: Option<PathBuf>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            concurrency: DEFAULT_CONCURRENCY,
            chunk_size: DEFAULT_CHUNK_SIZE,
            retry: RetryPolicy::default(),
            cache_dir: None,
            temp_dir: None,
        }
    }
}

/// One image to push.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// The `docker save` archive.
    pub archive: PathBuf,
    /// Which image of the archive, by a `repo:tag` of its `RepoTags`; `None` when the
    /// archive holds one image.
    pub image: Option<String>,
    /// The target repository.
    pub repo: RepoName,
    /// Repositories to mount layers from (e.g. the parent image's), tried in order.
    pub mount_from: Vec<RepoName>,
    /// Manifest annotations (see [`Provenance::annotations`]).
    pub annotations: BTreeMap<String, String>,
    /// Per-blob progress events.
    pub progress: PushProgress,
}

impl PushRequest {
    /// A request for the only image of `archive`, into `repo`, without mounts,
    /// annotations or progress.
    pub fn new(archive: impl Into<PathBuf>, repo: RepoName) -> PushRequest {
        PushRequest {
            archive: archive.into(),
            image: None,
            repo,
            mount_from: Vec::new(),
            annotations: BTreeMap::new(),
            progress: PushProgress::none(),
        }
    }
}

/// Pushes images to one registry. Cheap to clone; share one across the images of a run
/// so they share the layer cache.
#[derive(Debug, Clone)]
pub struct Pusher {
    client: Client,
    options: PushOptions,
    cache: Arc<LayerCache>,
}

impl Pusher {
    /// A pusher using `client`, with the layer cache of `options.cache_dir`.
    pub fn new(client: Client, options: PushOptions) -> Pusher {
        let cache = match options.cache_dir.clone().or_else(default_cache_dir) {
            Some(dir) => LayerCache::open(dir),
            None => LayerCache::in_memory(),
        };
        Pusher::with_cache(client, options, Arc::new(cache))
    }

    /// A pusher sharing `cache` (`options.cache_dir` is ignored).
    pub fn with_cache(client: Client, options: PushOptions, cache: Arc<LayerCache>) -> Pusher {
        Pusher {
            client,
            options,
            cache,
        }
    }

    /// The registry client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The layer cache.
    pub fn cache(&self) -> &LayerCache {
        &self.cache
    }

    fn temp_dir(&self) -> PathBuf {
        self.options
            .temp_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
    }
}

/// Compile-time check: the push futures can be spawned on a multi-threaded runtime.
#[cfg(test)]
#[allow(dead_code)]
fn futures_are_spawnable(pusher: Pusher, req: PushRequest, tags: Vec<crate::oci::Tag>) {
    let p = pusher.clone();
    tokio::spawn(async move { p.push_image(&req).await });
    tokio::spawn(async move {
        let image = pusher
            .push_image(&PushRequest::new("a.tar", "a/b".parse()?))
            .await?;
        pusher.move_tags(&image.repo, &image.digest, &tags).await?;
        let report = crate::client::Bytes::from_static(b"{}");
        let ann = BTreeMap::new();
        pusher
            .attach_report(
                &image.repo,
                &image.descriptor(),
                CHECK_REPORT_TYPE,
                report,
                &ann,
            )
            .await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    });
}
