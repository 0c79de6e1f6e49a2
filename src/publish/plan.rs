//! The plan of a publish run, resolved without a daemon or a registry: which images,
//! in what order and levels, with which tags, build arguments, dependencies, checks
//! and budgets. `imgflow publish --dry-run` prints it ([`Plan::to_text`], or as JSON);
//! the builder will follow it.

use super::checks::{CheckError, CheckFile, Counts};
use super::config::{check_registry, Network, PublishConfig};
use super::graph::{DepSource, Graph, GraphError, Role};
use super::tags::{GitState, TagContext, TagError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Errors making a plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// No registry from the file or the command line.
    #[error("{}: no registry: set `registry = \"HOST:PORT\"` there or pass --registry", .file.display())]
    NoRegistry {
        /// The imgflow.toml.
        file: PathBuf,
    },
    /// A file named on the command line does not exist.
    #[error("{flag} {}: no such file", .path.display())]
    MissingFile {
        /// The flag.
        flag: &'static str,
        /// The path given.
        path: PathBuf,
    },
    /// `--registry` is not a host and port.
    #[error("--registry: {0}")]
    BadRegistry(String),
    /// The graph could not be resolved.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A tag could not be expanded.
    #[error("{}, line {line}: image {image}: {source}", .file.display())]
    Tag {
        /// The imgflow.toml.
        file: PathBuf,
        /// Line of the image's name.
        line: usize,
        /// The image.
        image: String,
        /// Cause.
        source: TagError,
    },
    /// A check file is invalid.
    #[error(transparent)]
    Check(#[from] CheckError),
}

/// Settings of the run that the plan repeats (and checks: the files must exist).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunSettings {
    /// `--jobs`: images built at once.
    pub jobs: u16,
    /// `--require-gpu`: a GPU image whose runtime checks cannot run fails.
    pub require_gpu: bool,
    /// `--pin`: the stack file whose image references are pinned after the push.
    pub pin: Option<PathBuf>,
    /// `--cacert`: the registry's CA certificate.
    pub cacert: Option<PathBuf>,
}

/// What a plan is made for.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Run settings, repeated in the plan.
    pub run: RunSettings,
    /// `--registry`, overriding the file's.
    pub registry: Option<String>,
    /// `IMAGE...`; empty: every image.
    pub images: Vec<String>,
    /// Values of `{git}` and `{date}`.
    pub tags: TagContext,
}

/// One dependency in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedDep {
    /// The image depended on.
    pub name: String,
    /// Declared in `depends_on`.
    pub explicit: bool,
    /// Named by the Dockerfile.
    pub inferred: bool,
    /// Where each is said.
    pub sources: Vec<DepSource>,
}

/// One check file in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedCheck {
    /// The file.
    pub file: PathBuf,
    /// Its tests by kind.
    pub counts: Counts,
}

/// One image of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedImage {
    /// Repository name.
    pub name: String,
    /// Why it is in the run.
    pub role: Role,
    /// Its level: images of one level build in parallel.
    pub level: usize,
    /// Build context.
    pub context: PathBuf,
    /// Dockerfile.
    pub dockerfile: PathBuf,
    /// Tags, expanded.
    pub tags: Vec<String>,
    /// Full references the tags will name: `registry/name:tag`.
    pub references: Vec<String>,
    /// Build arguments, `REGISTRY` included.
    pub build_args: BTreeMap<String, String>,
    /// Dependencies, in the file's order of images.
    pub depends_on: Vec<PlannedDep>,
    /// Check files.
    pub checks: Vec<PlannedCheck>,
    /// Compressed size budget in MB.
    pub max_size_mb: Option<u64>,
    /// Compressed growth budget over the parent in MB.
    pub max_growth_mb: Option<u64>,
    /// GPU image.
    pub gpu: bool,
    /// Network of `RUN` steps.
    pub network: Network,
    /// Notes about its Dockerfile.
    pub warnings: Vec<String>,
}

/// A resolved plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The imgflow.toml.
    pub file: PathBuf,
    /// The registry pushed to.
    pub registry: String,
    /// The source's git state (`None` outside a work tree).
    pub git: Option<GitState>,
    /// `{date}`.
    pub date: String,
    /// The run's settings.
    pub run: RunSettings,
    /// Image names by level, in build order.
    pub levels: BTreeMap<usize, Vec<String>>,
    /// The images, in build order.
    pub images: Vec<PlannedImage>,
}

impl Plan {
    /// The plan of `cfg` for `opts`; reads the Dockerfiles and check files, touches
    /// nothing else.
    pub fn build(cfg: &PublishConfig, opts: &PlanOptions) -> Result<Plan, PlanError> {
        let registry = match (&opts.registry, &cfg.registry) {
            (Some(r), _) => {
                check_registry(r).map_err(PlanError::BadRegistry)?;
                r.clone()
            }
            (None, Some(r)) => r.clone(),
            (None, None) => {
                return Err(PlanError::NoRegistry {
                    file: cfg.path.clone(),
                })
            }
        };
        let given = [("--pin", &opts.run.pin), ("--cacert", &opts.run.cacert)];
        for (flag, path) in given {
            if let Some(path) = path.as_ref().filter(|p| !p.is_file()) {
                let path = path.clone();
                return Err(PlanError::MissingFile { flag, path });
            }
        }
        let graph = Graph::build(cfg, Some(&registry))?;
        let selection = graph.select(&opts.images, &cfg.path)?;
        let mut check_files: BTreeMap<PathBuf, Counts> = BTreeMap::new();
        let mut images = Vec::new();
        let mut levels: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for &(i, role) in &selection.images {
            let spec = &cfg.images[i];
            let name = spec.name.to_string();
            let tags = spec
                .tags
                .iter()
                .map(|t| t.expand(&opts.tags, &cfg.dir).map(|t| t.to_string()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| PlanError::Tag {
                    file: cfg.path.clone(),
                    line: spec.line,
                    image: name.clone(),
                    source,
                })?;
            let mut checks = Vec::new();
            for path in &spec.checks {
                let counts = match check_files.get(path) {
                    Some(c) => *c,
                    None => {
                        let c = CheckFile::load(path)?.counts();
                        check_files.insert(path.clone(), c);
                        c
                    }
                };
                checks.push(PlannedCheck {
                    file: path.clone(),
                    counts,
                });
            }
            let depends_on = graph
                .dependencies(i)
                .iter()
                .map(|d| PlannedDep {
                    name: cfg.images[d.image].name.to_string(),
                    explicit: d
                        .sources
                        .iter()
                        .any(|s| matches!(s, DepSource::DependsOn { .. })),
                    inferred: d
                        .sources
                        .iter()
                        .any(|s| matches!(s, DepSource::Dockerfile { .. })),
                    sources: d.sources.clone(),
                })
                .collect();
            let level = graph.level(i);
            levels.entry(level).or_default().push(name.clone());
            images.push(PlannedImage {
                references: tags
                    .iter()
                    .map(|t| format!("{registry}/{name}:{t}"))
                    .collect(),
                name,
                role,
                level,
                context: spec.context.clone(),
                dockerfile: spec.dockerfile.clone(),
                tags,
                build_args: spec.build_args_with(Some(&registry)),
                depends_on,
                checks,
                max_size_mb: spec.max_size_mb,
                max_growth_mb: spec.max_growth_mb,
                gpu: spec.gpu,
                network: spec.network,
                warnings: graph.warnings(i).to_vec(),
            });
        }
        Ok(Plan {
            file: cfg.path.clone(),
            registry,
            git: opts.tags.git.clone(),
            date: opts.tags.date.clone(),
            run: opts.run.clone(),
            levels,
            images,
        })
    }
}

mod text;

#[cfg(test)]
mod tests;
