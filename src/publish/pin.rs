//! `imgflow pin`: rewrites the image references of a Compose / Swarm stack file that name
//! images of one registry to `host:port/repo:tag@sha256:...`, changing no other byte.
//!
//! This part reads image references ([`imageref`]) and Compose variables ([`vars`]).

pub mod imageref;
pub mod vars;
