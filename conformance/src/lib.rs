//! OCI distribution-spec v1.1 conformance workflows, runnable against any registry URL.
//!
//! The suite covers the spec's four workflow categories (pull, push, content discovery,
//! content management) with exact status codes, headers and error codes. Every case
//! has a stable id (`push/chunked/out-of-order-416`), a category and an
//! [`Outcome`](report::Outcome). A run works in its own namespace (`<prefix>-<random>`)
//! so runs never collide. It talks to the registry only through
//! [`imgflow::client`].

pub mod cases;
pub mod check;
pub mod ctx;
pub mod fixtures;
pub mod known;
pub mod report;
pub mod teardown;

use ctx::{Ctx, Recorder};
use imgflow::client::{Client, Method, RawRequest};
use imgflow::oci::RepoName;
use report::{Category, Report};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What to run against which registry.
#[derive(Debug, Clone)]
pub struct Options {
    /// Base URL, e.g. `https://127.0.0.1:5000`.
    pub url: String,
    /// PEM file of the CA to trust (system roots are used when absent).
    pub cacert: Option<PathBuf>,
    /// Namespace prefix; the run appends `-<random>`.
    pub namespace: String,
    /// Categories to run (all when empty).
    pub only: Vec<Category>,
    /// Repository to mount blobs from (default: a repository of the run).
    pub cross_mount_from: Option<String>,
    /// HTTP basic credentials.
    pub basic_auth: Option<(String, String)>,
    /// Speak HTTP/1.1 only (HTTP/2 is negotiated otherwise).
    pub http1: bool,
    /// Leave what the run pushed in place (no teardown).
    pub keep: bool,
}

/// Why a run could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// Bad options (namespace, CA file, URL).
    Usage(String),
    /// The registry could not be reached.
    Connect(String),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Usage(m) => write!(f, "invalid options: {m}"),
            RunError::Connect(m) => write!(f, "cannot reach the registry: {m}"),
        }
    }
}

impl std::error::Error for RunError {}

fn build_ctx(opts: &Options) -> Result<Ctx, RunError> {
    let run_id = fixtures::random_id(10);
    let ns = format!("{}-{run_id}", opts.namespace.trim_end_matches('/'));
    if let Err(e) = format!("{ns}/x").parse::<RepoName>() {
        return Err(RunError::Usage(format!(
            "namespace {:?} cannot prefix repository names: {e}",
            opts.namespace
        )));
    }
    let mount_source = match &opts.cross_mount_from {
        Some(name) => name
            .parse::<RepoName>()
            .map_err(|e| RunError::Usage(format!("--cross-mount-from: {e}")))?,
        None => format!("{ns}/mount-source")
            .parse()
            .map_err(|e| RunError::Usage(format!("namespace: {e}")))?,
    };
    let mut builder = Client::builder(opts.url.clone())
        .timeout(Duration::from_secs(120))
        .user_agent(format!("imgflow-conformance/{}", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &opts.cacert {
        builder = builder.ca_file(ca);
    }
    if opts.http1 {
        builder = builder.http1_only();
    }
    if let Some((user, password)) = &opts.basic_auth {
        builder = builder.basic_auth(user, password);
    }
    let client = builder
        .build()
        .map_err(|e| RunError::Usage(e.to_string()))?;
    Ok(Ctx {
        client,
        ns,
        run_id,
        mount_source,
        ledger: Default::default(),
    })
}

/// Run the selected categories, then (unless `keep`) delete what the run pushed, and
/// return the report.
///
/// Fails only when the options are invalid or the registry cannot be reached at all;
/// any answer the registry gives is judged by the cases.
pub async fn run(opts: &Options) -> Result<Report, RunError> {
    let ctx = build_ctx(opts)?;
    ctx.client
        .raw(RawRequest::new(Method::GET, "/v2/"))
        .await
        .map_err(|e| RunError::Connect(e.to_string()))?;
    let mut rec = Recorder::default();
    for category in Category::ALL {
        if opts.only.is_empty() || opts.only.contains(&category) {
            cases::run_category(&ctx, &mut rec, category).await;
        }
    }
    let mut report = rec.finish();
    if !opts.keep {
        report.teardown = Some(teardown::run(&ctx).await);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(namespace: &str) -> Options {
        Options {
            url: "https://127.0.0.1:1".into(),
            cacert: None,
            namespace: namespace.into(),
            only: vec![],
            cross_mount_from: None,
            basic_auth: None,
            http1: false,
            keep: false,
        }
    }

    #[test]
    fn namespaces_get_a_random_suffix() {
        let a = build_ctx(&opts("conformance")).unwrap();
        let b = build_ctx(&opts("conformance")).unwrap();
        assert!(a.ns.starts_with("conformance-"));
        assert_ne!(a.ns, b.ns);
        assert_eq!(a.repo("pull").as_str(), format!("{}/pull", a.ns));
        assert!(a.mount_source.as_str().starts_with(&a.ns));
    }

    #[test]
    fn invalid_options_are_usage_errors() {
        assert!(matches!(build_ctx(&opts("Upper")), Err(RunError::Usage(_))));
        let mut o = opts("ok");
        o.cacert = Some("/nonexistent/ca.pem".into());
        assert!(matches!(build_ctx(&o), Err(RunError::Usage(_))));
        let mut o = opts("ok");
        o.cross_mount_from = Some("Bad Name".into());
        assert!(matches!(build_ctx(&o), Err(RunError::Usage(_))));
    }
}
