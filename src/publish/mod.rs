//! `imgflow publish`: build, validate and push the team's images (issue 7).
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
//!   tests with their regexes compiled;
//! - [`plan`]: the resolved plan that `imgflow publish --dry-run` prints, as text or JSON;
//! - [`docker`]: the Docker engine behind the [`docker::Engine`] trait (build, inspect,
//!   check containers, filesystem export, save).
//!
//! It depends only on [`crate::oci`] (names and tags); the builder and the pusher that
//! come later use [`crate::client`] too, never the registry server's modules.

pub mod checks;
pub mod config;
pub mod docker;
pub mod dockerfile;
pub mod file_error;
pub mod graph;
pub mod plan;
pub mod tags;

#[cfg(test)]
mod testutil;

pub use config::{ConfigError, DependsOn, ImageSpec, Network, PublishConfig};
pub use file_error::FileError;
pub use graph::{DepSource, Dependency, Graph, GraphError, Role, Selection};
pub use plan::{Plan, PlanError, PlanOptions, PlannedImage, RunSettings};
pub use tags::{GitState, TagContext, TagError, TagTemplate};
