//! `imgflow publish`: build, validate and push the team's images, then move their tags.
//!
//! This module owns:
//! - [`config`]: reading `imgflow.toml` (the images, their build inputs, checks and
//!   budgets), with errors naming the file and line, and checking that every path it
//!   names exists before anything is built;
//! - [`tags`]: the tag templates (`{git}`, `{date}`) and the source's git state;
//! - [`dockerfile`]: reading the image references of a Dockerfile's `FROM` lines (and
//!   `COPY --from=`), with its global `ARG`s and the build arguments substituted;
//! - [`graph`]: the dependency graph of the images (explicit `depends_on` plus what the
//!   Dockerfiles name), its build order and levels, and the selection of `IMAGE...`;
//! - [`file_error`]: the one error of reading a file, naming the file and the line;
//! - [`checks`]: container-structure-test files (schemaVersion 2.0.0), parsed into typed
//!   tests with their regexes compiled, and run against a built image ([`checks::run`]:
//!   commands, files, metadata, size budgets, GPU tiers) into a JSON report;
//! - [`docker`]: the local Docker daemon through the docker CLI, behind the [`docker::Engine`]
//!   trait: builds, check containers (limits, timeout, always removed), the image's
//!   files read from outside, `docker save`;
//! - [`pin`]: rewriting a stack file's image references of this registry to pinned
//!   digests, byte for byte everywhere else;
//! - [`tar_path`]: tar member names in one canonical form (for `docker export` and
//!   `docker save` archives);
//! - [`plan`]: the resolved plan that `imgflow publish --dry-run` prints, as text or JSON;
//! - [`push`]: pushing an image exported by `docker save` with imgflow's own client
//!   (deterministic layers, mounts, resumable chunks, by digest; tags moved last).
//!
//! It depends on [`crate::oci`] and [`crate::client`], never on the registry server's
//! modules: it sees the registry only through HTTP.

pub mod checks;
pub mod config;
pub mod docker;
pub mod dockerfile;
pub mod file_error;
pub mod graph;
pub mod pin;
pub mod plan;
pub mod push;
pub mod tags;
pub mod tar_path;

#[cfg(test)]
mod testutil;

pub use config::{ConfigError, DependsOn, ImageSpec, Network, PublishConfig};
pub use file_error::FileError;
pub use graph::{DepSource, Dependency, Graph, GraphError, Role, Selection};
pub use plan::{Plan, PlanError, PlanOptions, PlannedImage, RunSettings};
pub use tags::{GitState, TagContext, TagError, TagTemplate};
