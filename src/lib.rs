//! imgflow: a self-hosted OCI registry with a build-validate-push pipeline.
//!
//! # Architecture
//!
//! Dependencies point one way:
//!
//! ```text
//!   main (clap CLI) ─┬─> server (TCP accept, TLS, HTTP/1.1 + h2) ─> registry (axum handlers)
//!                    │                                                 │
//!                    │                                                 v
//!                    │                                   storage (metadata in SQLite, blobs
//!                    │                                   through object_store, uploads)
//!                    │                                                 │
//!                    └─> client (OCI client over HTTP) ──────────> oci (digest, name,
//!                                                                   reference, manifest)
//! ```
//!
//! - [`oci`] holds the value types parsed at the edge; it depends on nothing else here.
//! - [`storage`] knows no HTTP: it stores content-addressed blobs (streamed, hashed while
//!   written, published by atomic rename), manifests, tags, referrers and upload sessions.
//! - [`registry`] is the OCI Distribution v1.1 HTTP API: one typed path parser routes every
//!   `/v2/...` URL, thin handlers call storage, and [`registry::error`] is the one place
//!   where errors become HTTP statuses and OCI error codes.
//! - [`tls`] loads, reloads or generates certificates and reads client certificates;
//!   [`server`] accepts connections (closing addresses no access rule admits).
//! - [`access`] decides who may do what from where (policy, users, tokens, audit log); it
//!   knows no HTTP, and [`server`] and [`registry`] call it.
//! - [`client`] is the one OCI client, used by the tests and the conformance suite; it sees a
//!   registry only through HTTP.

pub mod access;
pub mod client;
pub mod config;
pub mod oci;
pub mod publish;
pub mod registry;
pub mod server;
pub mod storage;
pub mod tls;
