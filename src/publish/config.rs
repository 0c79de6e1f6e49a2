//! `imgflow.toml`: the images to build, their inputs, checks and budgets.
//!
//! The file is deserialized straight from its text, so every error (an unknown key, a
//! value of the wrong type, a path that does not exist) names the file and the line of
//! the offending key or value. Relative paths are relative to the file's directory.

use super::file_error::{line_at, read, FileError};
use super::tags::{TagError, TagTemplate};
use crate::oci::RepoName;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The Dockerfile's name inside the context when `dockerfile` is not set.
pub const DEFAULT_DOCKERFILE: &str = "Dockerfile";

/// The build argument through which Dockerfiles learn the registry's address.
pub const REGISTRY_ARG: &str = "REGISTRY";

/// Errors reading `imgflow.toml`.
pub type ConfigError = FileError;

/// `network` of an image: the network of its `RUN` steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The daemon's default network.
    #[default]
    Default,
    /// The host's network.
    Host,
    /// No network at all.
    None,
}

impl Network {
    /// The value as written in `imgflow.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Default => "default",
            Network::Host => "host",
            Network::None => "none",
        }
    }
}

/// One entry of an image's `depends_on`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependsOn {
    /// The name of the image depended on.
    pub name: String,
    /// Its line in the file.
    pub line: usize,
}

/// One `[[image]]`, with its paths resolved and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSpec {
    /// Repository name in the registry, e.g. `team/spark`.
    pub name: RepoName,
    /// Line of `name` in the file.
    pub line: usize,
    /// The build context directory (resolved).
    pub context: PathBuf,
    /// The Dockerfile (resolved): `dockerfile` from the file's directory, else
    /// `Dockerfile` in the context.
    pub dockerfile: PathBuf,
    /// Tag templates, in the file's order.
    pub tags: Vec<TagTemplate>,
    /// Build arguments given to the build (imgflow adds `REGISTRY`).
    pub build_args: BTreeMap<String, String>,
    /// Images this one is declared to depend on.
    pub depends_on: Vec<DependsOn>,
    /// container-structure-test files (resolved).
    pub checks: Vec<PathBuf>,
    /// Budget of the compressed image size in MB.
    pub max_size_mb: Option<u64>,
    /// Budget of the compressed size over its parent in MB.
    pub max_growth_mb: Option<u64>,
    /// Whether this is a GPU image (GPU checks apply).
    pub gpu: bool,
    /// Network of `RUN` steps.
    pub network: Network,
}

/// A whole `imgflow.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishConfig {
    /// The file read.
    pub path: PathBuf,
    /// The directory relative paths are resolved from.
    pub dir: PathBuf,
    /// `registry` (host and optional port), overridden by `--registry`.
    pub registry: Option<String>,
    /// The images, in the file's order.
    pub images: Vec<ImageSpec>,
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    registry: Option<Spanned<String>>,
    #[serde(default)]
    image: Vec<RawImage>,
}

/// One `[[image]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    name: Spanned<String>,
    context: Spanned<String>,
    dockerfile: Option<Spanned<String>>,
    #[serde(default)]
    tags: Vec<Spanned<String>>,
    build_args: Option<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    depends_on: Vec<Spanned<String>>,
    #[serde(default)]
    checks: Vec<Spanned<String>>,
    max_size_mb: Option<u64>,
    max_growth_mb: Option<u64>,
    #[serde(default)]
    gpu: bool,
    #[serde(default)]
    network: Network,
}

impl ImageSpec {
    /// The build arguments of a run against `registry`: `build_args` plus `REGISTRY`
    /// (empty when no registry is known), which imgflow always passes.
    pub fn build_args_with(&self, registry: Option<&str>) -> BTreeMap<String, String> {
        let mut args = self.build_args.clone();
        args.insert(REGISTRY_ARG.to_string(), registry.unwrap_or("").to_string());
        args
    }
}

impl PublishConfig {
    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<PublishConfig, ConfigError> {
        PublishConfig::from_toml(&read(path)?, path)
    }

    /// Parse `text` as the contents of `path` and check every path it names.
    pub fn from_toml(text: &str, path: &Path) -> Result<PublishConfig, ConfigError> {
        let line_of = |span: std::ops::Range<usize>| line_at(text, span.start);
        let invalid = |line: Option<usize>, message: String| FileError::Invalid {
            path: path.to_path_buf(),
            line,
            message,
        };
        let raw: RawFile = toml::from_str(text)
            .map_err(|e| invalid(e.span().map(line_of), e.message().to_string()))?;
        let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let at = |s: &Spanned<String>, message: String| invalid(Some(line_of(s.span())), message);

        let registry = match raw.registry {
            Some(r) => {
                check_registry(r.get_ref()).map_err(|m| at(&r, m))?;
                Some(r.into_inner())
            }
            None => None,
        };
        if raw.image.is_empty() {
            return Err(invalid(None, "no [[image]] entries".to_string()));
        }
        let mut images = Vec::with_capacity(raw.image.len());
        for img in raw.image {
            let name: RepoName = img
                .name
                .get_ref()
                .parse()
                .map_err(|e| at(&img.name, format!("name: {e}")))?;
            let label = name.as_str().to_string();
            let context = dir.join(img.context.get_ref());
            if !context.is_dir() {
                return Err(at(
                    &img.context,
                    format!(
                        "image {label}: context {} is not a directory",
                        context.display()
                    ),
                ));
            }
            let dockerfile = match &img.dockerfile {
                Some(d) => dir.join(d.get_ref()),
                None => context.join(DEFAULT_DOCKERFILE),
            };
            if !dockerfile.is_file() {
                let span = img.dockerfile.as_ref().unwrap_or(&img.context);
                return Err(at(
                    span,
                    format!(
                        "image {label}: Dockerfile {} does not exist",
                        dockerfile.display()
                    ),
                ));
            }
            let build_args = img
                .build_args
                .unwrap_or_else(|| Spanned::new(0..0, BTreeMap::new()));
            if build_args.get_ref().contains_key(REGISTRY_ARG) {
                let line = Some(line_of(build_args.span()));
                let message = format!("image {label}: build_args must not set {REGISTRY_ARG}: imgflow passes the registry's address (--registry or `registry`)");
                return Err(invalid(line, message));
            }
            let tags = img
                .tags
                .iter()
                .map(|t| {
                    TagTemplate::parse(t.get_ref())
                        .map_err(|e: TagError| at(t, format!("image {label}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let checks = img
                .checks
                .iter()
                .map(|c| {
                    let file = dir.join(c.get_ref());
                    if file.is_file() {
                        Ok(file)
                    } else {
                        let shown = file.display();
                        Err(at(
                            c,
                            format!("image {label}: check file {shown} does not exist"),
                        ))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            let depends_on = img
                .depends_on
                .iter()
                .map(|d| DependsOn {
                    name: d.get_ref().clone(),
                    line: line_of(d.span()),
                })
                .collect();
            images.push(ImageSpec {
                name,
                line: line_of(img.name.span()),
                context,
                dockerfile,
                tags,
                build_args: build_args.into_inner(),
                depends_on,
                checks,
                max_size_mb: img.max_size_mb,
                max_growth_mb: img.max_growth_mb,
                gpu: img.gpu,
                network: img.network,
            });
        }
        Ok(PublishConfig {
            path: path.to_path_buf(),
            dir,
            registry,
            images,
        })
    }

    /// The image named `name`.
    pub fn image(&self, name: &str) -> Option<&ImageSpec> {
        self.images.iter().find(|i| i.name.as_str() == name)
    }
}

/// Check a registry address: a host with an optional port, no scheme or path.
pub fn check_registry(r: &str) -> Result<(), String> {
    let bad = r.is_empty()
        || r.contains("://")
        || r.contains('/')
        || r.chars().any(|c| c.is_whitespace() || c == '@');
    if bad {
        Err(format!(
            "registry {r:?} must be a host with an optional port, e.g. \"registry.example:5000\" (no scheme, no path)"
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
