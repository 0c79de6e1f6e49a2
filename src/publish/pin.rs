//! `imgflow pin`: rewrites the image references of a Compose / Swarm stack file that name
//! images of one registry to `host:port/repo:tag@sha256:...`, changing no other byte.
//!
//! This module owns finding service images in the YAML ([`yaml`]), reading references
//! ([`imageref`]), Compose variables ([`vars`]), the byte splice and its report, and the
//! atomic replacement of the file ([`write`]). It does no network I/O: digests come from a
//! [`Resolve`] implementation (publish asks the registry for the manifest of each tag).
//!
//! Rules:
//! - Only the `image` value of a service under the top-level `services` key is touched,
//!   including one reached through an alias or a merge key (then the anchored scalar is
//!   rewritten, once, for every service sharing it).
//! - A reference belongs to the registry when its host equals the registry's host
//!   ignoring ASCII case and its port is exactly the registry's port; optionally it must
//!   also name one of a given set of repositories.
//! - The tag is kept for readers, an existing digest is replaced, a reference without a
//!   tag is resolved as `latest` and written without one. The quoting stays.
//! - A reference with variables (`${REGISTRY}/team/spark:1.0`) is matched and resolved
//!   with the caller's variable values and keeps its variables in the file; without
//!   values it is skipped and reported.

pub mod imageref;
pub mod vars;
pub mod write;
pub mod yaml;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_edge;

pub use imageref::{ImageRef, RefError, Registry};
pub use write::write_atomic;
pub use yaml::Unreadable;

use crate::oci::{Digest, RepoName, Tag};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use vars::VarProblem;
use yaml::YamlError;

/// The error a [`Resolve`] implementation returns for anything but an unknown tag.
pub type ResolveError = Box<dyn std::error::Error + Send + Sync>;

/// Looks up the digest a tag of the registry points at.
pub trait Resolve {
    /// The manifest digest of `repo:tag`, or `Ok(None)` when the registry has no such tag
    /// (or no such repository).
    fn digest(
        &self,
        repo: &RepoName,
        tag: &Tag,
    ) -> impl Future<Output = Result<Option<Digest>, ResolveError>> + Send;
}

/// Digests already known, e.g. those a publish run just pushed.
impl Resolve for BTreeMap<(RepoName, Tag), Digest> {
    fn digest(
        &self,
        repo: &RepoName,
        tag: &Tag,
    ) -> impl Future<Output = Result<Option<Digest>, ResolveError>> + Send {
        std::future::ready(Ok(self.get(&(repo.clone(), tag.clone())).cloned()))
    }
}

/// What to pin.
#[derive(Debug, Clone)]
pub struct PinOptions {
    /// The registry whose references are pinned.
    pub registry: Registry,
    /// When set, only references to these repositories are pinned (the images of
    /// `imgflow.toml`); others of the registry are reported as skipped.
    pub repositories: Option<BTreeSet<RepoName>>,
    /// Values for `${VAR}` in references; without them such references are skipped.
    pub variables: Option<HashMap<String, String>>,
}

impl PinOptions {
    /// Pin every reference to `registry`, with no variable values.
    pub fn new(registry: Registry) -> Self {
        PinOptions {
            registry,
            repositories: None,
            variables: None,
        }
    }
}

/// Why a service image was left as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The reference names another registry (or Docker Hub).
    OtherRegistry,
    /// The repository is not one of [`PinOptions::repositories`].
    NotListed,
    /// The reference has variables and no values were given.
    NoVariables,
    /// A variable of the reference cannot be expanded.
    Variable(VarProblem),
    /// The (expanded) reference is not a valid image reference.
    Invalid(RefError),
    /// The value's text cannot be rewritten in place.
    Unreadable(Unreadable),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::OtherRegistry => f.write_str("another registry"),
            SkipReason::NotListed => f.write_str("not an image of the imgflow file"),
            SkipReason::NoVariables => {
                f.write_str("uses variables and no values were given for them")
            }
            SkipReason::Variable(VarProblem::Unset(name)) => {
                write!(f, "variable {name} has no value")
            }
            SkipReason::Variable(VarProblem::Required { name, message }) => {
                write!(f, "variable {name} has no value: {message}")
            }
            SkipReason::Variable(VarProblem::Unsupported(_)) => {
                f.write_str("variable syntax not supported here")
            }
            SkipReason::Invalid(e) => e.fmt(f),
            SkipReason::Unreadable(u) => u.fmt(f),
        }
    }
}

/// What happened to one service image value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Rewritten to `new` (equal to the old value when it was already pinned to `digest`).
    Pinned {
        /// The value now in the file.
        new: String,
        /// The digest it pins.
        digest: Digest,
    },
    /// Left as it is.
    Skipped(SkipReason),
}

/// The report of one service image value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedRef {
    /// Line of the value (1-based).
    pub line: usize,
    /// The services using it.
    pub services: Vec<String>,
    /// The value before pinning.
    pub old: String,
    /// What was done.
    pub outcome: Outcome,
}

impl PinnedRef {
    /// Whether the value's text changed.
    pub fn changed(&self) -> bool {
        matches!(&self.outcome, Outcome::Pinned { new, .. } if *new != self.old)
    }
}

impl fmt::Display for PinnedRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} ({}): ", self.line, self.services.join(", "))?;
        match &self.outcome {
            Outcome::Pinned { new, .. } if self.changed() => write!(f, "{} -> {new}", self.old),
            Outcome::Pinned { .. } => write!(f, "{} (already pinned)", self.old),
            Outcome::Skipped(reason) => write!(f, "{} skipped: {reason}", self.old),
        }
    }
}

/// The rewritten file and what was done to each service image.
#[derive(Debug, Clone)]
pub struct Pinned {
    /// The new contents of the file.
    pub bytes: Vec<u8>,
    /// One entry per service image value, in file order.
    pub refs: Vec<PinnedRef>,
}

impl Pinned {
    /// Whether any byte changed.
    pub fn changed(&self) -> bool {
        self.refs.iter().any(PinnedRef::changed)
    }
}

/// Why a stack file cannot be pinned.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The file cannot be read.
    #[error("{}: {source}", file.display())]
    Read {
        /// The stack file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not UTF-8.
    #[error("{}: not UTF-8 text", file.display())]
    NotUtf8 {
        /// The stack file.
        file: PathBuf,
    },
    /// The file is not valid YAML.
    #[error("{}:{line}:{col}: invalid YAML: {message}", file.display())]
    Yaml {
        /// The stack file.
        file: PathBuf,
        /// Line (1-based).
        line: usize,
        /// Column (1-based).
        col: usize,
        /// The parser's message.
        message: String,
    },
    /// A service has two `image` keys.
    #[error("{}:{line}: a second image key for the same service", file.display())]
    DuplicateImage {
        /// The stack file.
        file: PathBuf,
        /// Line of the second key.
        line: usize,
    },
    /// The registry has no such tag (or repository).
    #[error("{}:{line}: {reference}: the registry has no tag {tag} of {repo}", file.display())]
    UnknownTag {
        /// The stack file.
        file: PathBuf,
        /// Line of the reference.
        line: usize,
        /// The reference as written.
        reference: String,
        /// The repository looked up.
        repo: RepoName,
        /// The tag looked up (`latest` for a reference without tag).
        tag: Tag,
    },
    /// The digest lookup failed.
    #[error("{}:{line}: {reference}: cannot resolve the digest: {source}", file.display())]
    Resolve {
        /// The stack file.
        file: PathBuf,
        /// Line of the reference.
        line: usize,
        /// The reference as written.
        reference: String,
        /// The resolver's error.
        source: ResolveError,
    },
    /// The rewritten text does not read back with the new values (a bug; nothing written).
    #[error("{}: the pinned file does not read back as expected; left unchanged", file.display())]
    Verify {
        /// The stack file.
        file: PathBuf,
    },
    /// The file cannot be replaced.
    #[error("{}: cannot write: {source}", file.display())]
    Write {
        /// The stack file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn yaml_error(file: &Path, e: YamlError) -> PinError {
    let file = file.to_path_buf();
    match e {
        YamlError::Syntax { line, col, message } => PinError::Yaml {
            file,
            line,
            col,
            message,
        },
        YamlError::DuplicateImage { line } => PinError::DuplicateImage { file, line },
    }
}

/// Decides, without any lookup, whether a value is to be pinned: the reference read
/// (variables expanded) and the value's text without its digest.
fn classify<'a>(value: &'a str, options: &PinOptions) -> Result<(ImageRef, &'a str), SkipReason> {
    let expanded = if value.contains('$') {
        let vars = options.variables.as_ref().ok_or(SkipReason::NoVariables)?;
        vars::expand(value, vars).map_err(SkipReason::Variable)?
    } else {
        value.to_string()
    };
    let reference: ImageRef = expanded.parse().map_err(SkipReason::Invalid)?;
    if reference.registry.as_ref() != Some(&options.registry) {
        return Err(SkipReason::OtherRegistry);
    }
    if let Some(repos) = &options.repositories {
        if !repos.contains(&reference.repo) {
            return Err(SkipReason::NotListed);
        }
    }
    Ok((reference, imageref::split_digest(value).0))
}

/// Pins the service images of `input` (the contents of `file`, named in errors).
///
/// Each distinct repository and tag is resolved once. Nothing is written; the result
/// holds the new bytes (identical to `input` outside the rewritten values).
pub async fn pin<R: Resolve>(
    file: &Path,
    input: &[u8],
    options: &PinOptions,
    resolver: &R,
) -> Result<Pinned, PinError> {
    let text = std::str::from_utf8(input).map_err(|_| PinError::NotUtf8 {
        file: file.to_path_buf(),
    })?;
    let sites = yaml::service_images(text).map_err(|e| yaml_error(file, e))?;
    let mut cache: HashMap<(RepoName, Tag), Digest> = HashMap::new();
    let mut refs = Vec::with_capacity(sites.len());
    let mut splices = Vec::new();
    for site in sites {
        // A value that is not a string, or not a reference as written, is reported by how it
        // is written; any other value by what it names first (e.g. another registry).
        let decided = match (&site.text, classify(&site.value, options)) {
            (Err(u @ (Unreadable::Empty | Unreadable::NotAString)), _)
            | (Err(u), Err(SkipReason::Invalid(_))) => Err(SkipReason::Unreadable(*u)),
            (_, Err(reason)) => Err(reason),
            (Err(u), Ok(_)) => Err(SkipReason::Unreadable(*u)),
            (Ok((range, _)), Ok(found)) => Ok((range.clone(), found)),
        };
        let outcome = match decided {
            Err(reason) => Outcome::Skipped(reason),
            Ok((range, (reference, name))) => {
                let key = (reference.repo.clone(), reference.tag_or_latest());
                let digest = match cache.get(&key) {
                    Some(d) => d.clone(),
                    None => {
                        let found = resolver.digest(&key.0, &key.1).await.map_err(|source| {
                            PinError::Resolve {
                                file: file.to_path_buf(),
                                line: site.line,
                                reference: site.value.clone(),
                                source,
                            }
                        })?;
                        let d = found.ok_or_else(|| PinError::UnknownTag {
                            file: file.to_path_buf(),
                            line: site.line,
                            reference: site.value.clone(),
                            repo: key.0.clone(),
                            tag: key.1.clone(),
                        })?;
                        cache.insert(key, d.clone());
                        d
                    }
                };
                let new = format!("{name}@{digest}");
                splices.push((range, new.clone()));
                Outcome::Pinned { new, digest }
            }
        };
        refs.push(PinnedRef {
            line: site.line,
            services: site.services,
            old: site.value,
            outcome,
        });
    }
    let bytes = splice(input, &mut splices);
    verify(file, &bytes, &refs)?;
    Ok(Pinned { bytes, refs })
}

/// `input` with each range replaced by its text.
fn splice(input: &[u8], splices: &mut [(std::ops::Range<usize>, String)]) -> Vec<u8> {
    splices.sort_by_key(|(range, _)| range.start);
    let mut out = Vec::with_capacity(input.len() + splices.len() * 80);
    let mut at = 0;
    for (range, new) in splices.iter() {
        out.extend_from_slice(&input[at..range.start]);
        out.extend_from_slice(new.as_bytes());
        at = range.end;
    }
    out.extend_from_slice(&input[at..]);
    out
}

/// Reads the new text back: the same services must have the new values.
fn verify(file: &Path, bytes: &[u8], refs: &[PinnedRef]) -> Result<(), PinError> {
    let failed = || PinError::Verify {
        file: file.to_path_buf(),
    };
    let text = std::str::from_utf8(bytes).map_err(|_| failed())?;
    let sites = yaml::service_images(text).map_err(|_| failed())?;
    let expected = refs.iter().map(|r| match &r.outcome {
        Outcome::Pinned { new, .. } => (&r.services, new),
        Outcome::Skipped(_) => (&r.services, &r.old),
    });
    let read = sites.iter().map(|s| (&s.services, &s.value));
    if sites.len() != refs.len() || !expected.eq(read) {
        return Err(failed());
    }
    Ok(())
}

/// Pins the stack file at `path` in place (atomically, keeping its permissions); the file
/// is not written when nothing changed.
pub async fn pin_file<R: Resolve>(
    path: &Path,
    options: &PinOptions,
    resolver: &R,
) -> Result<Pinned, PinError> {
    let input = std::fs::read(path).map_err(|source| PinError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    let pinned = pin(path, &input, options, resolver).await?;
    if pinned.bytes != input {
        write_atomic(path, &pinned.bytes).map_err(|source| PinError::Write {
            file: path.to_path_buf(),
            source,
        })?;
    }
    Ok(pinned)
}
