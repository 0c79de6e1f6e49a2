//! The Docker side of `imgflow publish`: building images, inspecting them, running check
//! containers, reading their files from outside and saving them for the pusher, behind the
//! [`Engine`] trait so the pipeline can be tested with (or moved to) another engine.
//!
//! [`DockerCli`] implements it by running the **docker CLI** rather than calling the Engine
//! API (e.g. through bollard):
//! - the build API takes a context tar, so imgflow would have to re-implement
//!   `.dockerignore` semantics, Dockerfile-outside-context handling and the BuildKit
//!   session protocol; `docker build` does all that, with BuildKit or the legacy builder
//!   exactly as the user's own builds;
//! - the CLI reaches the daemon as the user's docker does (`DOCKER_HOST`, `DOCKER_CONTEXT`,
//!   the current context, TLS settings in `~/.docker`), and it is what the team already
//!   has and debugs with: every command imgflow runs can be typed by hand.
//!
//! Every command runs through `tokio::process` (killed when its future is dropped); large
//! outputs are streamed to files, captured output is capped ([`capture`]). Containers get
//! a name before they exist and are always force-removed ([`guard`]).
//!
//! Modules, each owning one thing:
//! - [`cli`]: how the CLI is started and how its failures are classified;
//! - [`build`]: [`BuildSpec`] and `docker build`;
//! - [`inspect`]: [`ImageInfo`] from `docker image inspect`;
//! - [`run`]: check containers ([`RunSpec`], [`RunOutput`]);
//! - [`export`], [`filesystem`], [`resolve`], [`mode`]: an image's files read from outside;
//! - [`info`]: runtimes (NVIDIA or not) and versions;
//! - [`guard`], [`capture`], [`error`]: container removal, bounded output, errors.

pub mod build;
pub mod capture;
pub mod cli;
pub mod error;
pub mod export;
pub mod filesystem;
pub mod guard;
pub mod info;
pub mod inspect;
pub mod mode;
pub mod resolve;
pub mod run;

use std::path::Path;

use futures::future::BoxFuture;

pub use build::{BuildSpec, NetworkMode};
pub use capture::Captured;
pub use cli::DockerCli;
pub use error::{DockerError, Result};
pub use filesystem::{FileMeta, ImageFs};
pub use info::{DockerVersion, Runtime, Runtimes};
pub use inspect::{ImageConfig, ImageInfo, RootFs};
pub use mode::FileKind;
pub use run::{RunOutput, RunSpec};

/// What publish asks of a container engine. Object safe, so the pipeline can hold an
/// `Arc<dyn Engine>` and tests can substitute a fake.
pub trait Engine: Send + Sync {
    /// Builds an image, calling `on_line` with each log line, and returns its id
    /// (`sha256:...`). A failed build is [`DockerError::BuildFailed`] with the log's tail.
    fn build<'a>(
        &'a self,
        spec: &'a BuildSpec,
        on_line: &'a mut (dyn FnMut(&str) + Send),
    ) -> BoxFuture<'a, Result<String>>;

    /// The metadata publish uses of a local image (id or tag).
    fn inspect_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<ImageInfo>>;

    /// Runs one check command in a throw-away container, which is removed in every case
    /// (finished, timed out, failed, or the future dropped).
    fn run_check<'a>(&'a self, spec: &'a RunSpec) -> BoxFuture<'a, Result<RunOutput>>;

    /// The image's filesystem, readable without any tool inside the image.
    fn export_filesystem<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<ImageFs>>;

    /// Writes the image's `docker save` archive to `dest`.
    fn save_image<'a>(&'a self, image: &'a str, dest: &'a Path) -> BoxFuture<'a, Result<()>>;

    /// Removes a local image name (tag) or id; dangling layers go with it.
    fn remove_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<()>>;

    /// The daemon's OCI runtimes.
    fn runtimes(&self) -> BoxFuture<'_, Result<Runtimes>>;

    /// True when the daemon has an NVIDIA runtime configured (see
    /// [`info::is_nvidia_present`]: configured, not proven to work).
    fn has_nvidia_runtime(&self) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async move { Ok(info::is_nvidia_present(&self.runtimes().await?)) })
    }

    /// Client and daemon versions, for diagnostics.
    fn version(&self) -> BoxFuture<'_, Result<DockerVersion>>;
}

impl Engine for DockerCli {
    fn build<'a>(
        &'a self,
        spec: &'a BuildSpec,
        on_line: &'a mut (dyn FnMut(&str) + Send),
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(build::build(self, spec, on_line))
    }

    fn inspect_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<ImageInfo>> {
        Box::pin(async move {
            let json = self.run(&["image", "inspect", "--", image]).await?;
            inspect::parse_image_inspect(&json)
        })
    }

    fn run_check<'a>(&'a self, spec: &'a RunSpec) -> BoxFuture<'a, Result<RunOutput>> {
        Box::pin(run::run_check(self, spec))
    }

    fn export_filesystem<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<ImageFs>> {
        Box::pin(export::export_filesystem(self, image))
    }

    fn save_image<'a>(&'a self, image: &'a str, dest: &'a Path) -> BoxFuture<'a, Result<()>> {
        Box::pin(export::save_image(self, image, dest))
    }

    fn remove_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.run(&["image", "rm", "--", image]).await?;
            Ok(())
        })
    }

    fn runtimes(&self) -> BoxFuture<'_, Result<Runtimes>> {
        Box::pin(async move {
            let json = self
                .run(&["info", "--format", "{{json .Runtimes}}"])
                .await?;
            info::parse_runtimes(&json)
        })
    }

    fn version(&self) -> BoxFuture<'_, Result<DockerVersion>> {
        Box::pin(async move {
            let json = self.run(&["version", "--format", "{{json .}}"]).await?;
            info::parse_version(&json)
        })
    }
}
