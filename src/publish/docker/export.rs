//! Getting an image's bytes out of the daemon: its merged filesystem (`docker create` +
//! `docker export`, streamed to an anonymous temporary file and indexed as an [`ImageFs`])
//! and its `docker save` archive (written by the CLI straight to a file).

use std::ffi::OsStr;
use std::path::Path;

use tokio::io::AsyncWriteExt;

use super::cli::DockerCli;
use super::error::{DockerError, Result};
use super::filesystem::ImageFs;
use super::guard::{with_container, CONTAINER_LABEL};

/// Entrypoint given to export containers; they are never started.
const NEVER_RUN: &str = "/.imgflow-export-never-runs";

/// Exports the filesystem of `image` (id or local tag) through a container that is
/// created, exported and always removed. The archive lives in an unlinked file in the
/// temporary directory (as large as the image, uncompressed) until the result is dropped.
pub async fn export_filesystem(cli: &DockerCli, image: &str) -> Result<ImageFs> {
    with_container(cli, "export", |name| async move {
        export_via(cli, image, &name).await
    })
    .await
}

async fn export_via(cli: &DockerCli, image: &str, name: &str) -> Result<ImageFs> {
    let label = format!("{CONTAINER_LABEL}=export");
    // An explicit entrypoint lets images without CMD be created too.
    cli.run(&[
        "create",
        "--pull",
        "never",
        "--name",
        name,
        "--label",
        &label,
        "--network",
        "none",
        "--entrypoint",
        NEVER_RUN,
        "--",
        image,
    ])
    .await?;
    let file = tempfile::tempfile().map_err(|e| DockerError::io("creating a temporary file", e))?;
    let mut out = tokio::fs::File::from_std(file);
    let mut child = cli.spawn(&mut cli.command(&["export", name]))?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let (copied, finished) = tokio::join!(
        tokio::io::copy(&mut stdout, &mut out),
        cli.finish_ok(&mut child, "export")
    );
    finished?;
    copied.map_err(|e| DockerError::io("writing the exported filesystem", e))?;
    out.flush()
        .await
        .map_err(|e| DockerError::io("writing the exported filesystem", e))?;
    let file = out.into_std().await;
    tokio::task::spawn_blocking(move || ImageFs::index(file))
        .await
        .map_err(|e| {
            DockerError::io("indexing the exported filesystem", std::io::Error::other(e))
        })?
}

/// Writes `docker save IMAGE` (the image's config, layer tars and `manifest.json`) to
/// `dest`; the CLI streams it there, nothing is held in memory.
pub async fn save_image(cli: &DockerCli, image: &str, dest: &Path) -> Result<()> {
    let args = [
        OsStr::new("save"),
        OsStr::new("--output"),
        dest.as_os_str(),
        OsStr::new(image),
    ];
    let mut child = cli.spawn(&mut cli.command(&args))?;
    cli.finish_ok(&mut child, "save").await
}
