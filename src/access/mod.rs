//! Access control: who may do what to which repository, from where.
//!
//! This module owns the library half of access control, with no HTTP in it:
//! - [`rules`]: the `[access]` and `[audit]` configuration schema;
//! - [`net`], [`glob`], [`action`], [`identity`]: addresses and CIDRs, repository globs,
//!   actions, identities;
//! - [`policy`]: rules compiled for cheap evaluation on every request, and the default
//!   policy when there is no `[access]` section;
//! - [`htpasswd`]: users and bcrypt password checks (with a cache of recent successes),
//!   and the editing behind `imgflow user add|del`;
//! - [`scope`] and [`token`]: Docker registry token authentication (scopes, ES256 JWTs);
//! - [`limiter`]: the failed sign-in limit per client address;
//! - [`audit`]: the JSON-lines audit log.
//!
//! The HTTP side (middleware, `/token`, challenges, accept-time filtering, mTLS) lives in
//! [`crate::server`] and [`crate::registry`] and calls into this module.

pub mod action;
pub mod audit;
pub mod glob;
pub mod htpasswd;
pub mod identity;
pub mod limiter;
pub mod net;
pub mod policy;
pub mod rules;
pub mod scope;
pub mod token;

pub use action::{Action, ActionSet};
pub use audit::{AuditAction, AuditEvent, AuditLog, AuditSink, Outcome};
pub use glob::RepoGlob;
pub use htpasswd::Htpasswd;
pub use identity::{CertIdentity, Identity, Who};
pub use limiter::LoginLimiter;
pub use net::{normalize_ip, parse_net, NetSet};
pub use policy::Policy;
pub use rules::{AccessConfig, AccessConfigError, AuditConfig, DisplayPath, KeyPart, TokenConfig};
pub use scope::{AccessEntry, Scope};
pub use token::{Claims, TokenKeys, TokenResponse};
