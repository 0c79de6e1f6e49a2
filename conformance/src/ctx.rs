//! What cases share: the client, the run's namespace, setup helpers and the recorder.

use crate::check::{fail, Step};
use crate::fixtures::{Blob, Doc};
use crate::report::{CaseReport, Category, Level, Outcome, Report};
use crate::teardown::Ledger;
use imgflow::client::{Client, Method, RawRequest, RawResponse};
use imgflow::oci::{Digest, Reference, RepoName};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

/// Shared state of a run.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The client (raw requests and setup uploads).
    pub client: Client,
    /// The run's namespace: `<prefix>-<random>`; every repository of the run is under it.
    pub ns: String,
    /// The random part of the namespace, also written into test content.
    pub run_id: String,
    /// Repository blobs are mounted from (default: `<ns>/mount-source`).
    pub mount_source: RepoName,
    /// What the run pushed, for teardown.
    pub ledger: Arc<Mutex<Ledger>>,
}

impl Ctx {
    /// The repository `<ns>/<suffix>`.
    pub fn repo(&self, suffix: &str) -> RepoName {
        let name = format!("{}/{suffix}", self.ns);
        // The namespace was validated when the run started; suffixes are constants.
        name.parse()
            .unwrap_or_else(|e| panic!("invalid repository name {name:?}: {e}"))
    }

    /// The ledger of what the run pushed.
    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // A case that panicked while holding it left nothing half-written worth refusing.
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Note a blob pushed by other means than [`Ctx::send`], for teardown.
    pub fn pushed_blob(&self, repo: &RepoName, digest: &Digest) {
        self.ledger().blob(repo, digest);
    }

    /// Send a raw request; a transport failure fails the case. What the answer says the
    /// registry now holds is noted for teardown.
    pub async fn send(&self, req: RawRequest) -> Step<RawResponse> {
        // The error names the method and URL.
        let resp = self
            .client
            .raw(req.clone())
            .await
            .map_err(|e| fail(format!("transport error: {e}")))?;
        self.ledger().note(&req, &resp);
        Ok(resp)
    }

    /// `GET target`.
    pub async fn get(&self, target: impl Into<String>) -> Step<RawResponse> {
        self.send(RawRequest::new(Method::GET, target)).await
    }

    /// `HEAD target`.
    pub async fn head(&self, target: impl Into<String>) -> Step<RawResponse> {
        self.send(RawRequest::new(Method::HEAD, target)).await
    }

    /// `DELETE target`.
    pub async fn delete(&self, target: impl Into<String>) -> Step<RawResponse> {
        self.send(RawRequest::new(Method::DELETE, target)).await
    }

    /// `POST /v2/<repo>/blobs/uploads/` with an empty body (`Content-Length: 0`).
    pub async fn start_upload(&self, repo: &RepoName) -> Step<RawResponse> {
        self.send(RawRequest::new(
            Method::POST,
            format!("/v2/{repo}/blobs/uploads/"),
        ))
        .await
    }

    /// Setup: push `blob` to `repo` (POST then PUT) with the high-level client.
    pub async fn push_blob(&self, repo: &RepoName, blob: &Blob) -> Step {
        self.client
            .push_blob(repo, &blob.digest, blob.data.clone().into())
            .await
            .map(|_| self.pushed_blob(repo, &blob.digest))
            .map_err(|e| {
                fail(format!(
                    "setup: pushing blob {} to {repo}: {e}",
                    blob.digest
                ))
            })
    }

    /// Setup: push several blobs.
    pub async fn push_blobs(&self, repo: &RepoName, blobs: &[&Blob]) -> Step {
        for b in blobs {
            self.push_blob(repo, b).await?;
        }
        Ok(())
    }

    /// Setup: push `doc` to `repo` under `reference` (a tag, or its digest when `None`).
    pub async fn push_doc(&self, repo: &RepoName, doc: &Doc, tag: Option<&str>) -> Step<Digest> {
        let reference = match tag {
            Some(t) => t
                .parse::<Reference>()
                .map_err(|e| fail(format!("setup: bad tag {t:?}: {e}")))?,
            None => Reference::Digest(doc.digest.clone()),
        };
        self.client
            .put_manifest(repo, &reference, doc.media_type, doc.body.clone().into())
            .await
            .map(|p| {
                self.ledger().manifest(repo, &p.digest);
                p.digest
            })
            .map_err(|e| {
                fail(format!(
                    "setup: pushing manifest {reference} to {repo}: {e}"
                ))
            })
    }
}

/// Collects case results, in order.
#[derive(Debug, Default)]
pub struct Recorder {
    report: Report,
}

impl Recorder {
    /// Run one case of MUST behaviour and record its outcome under `id` (whose first
    /// component is the category).
    pub async fn case(&mut self, id: &str, category: Category, body: impl Future<Output = Step>) {
        self.case_at(Level::Must, id, category, body).await;
    }

    /// Run one case checking behaviour the spec asks for at `level`.
    pub async fn case_at(
        &mut self,
        level: Level,
        id: &str,
        category: Category,
        body: impl Future<Output = Step>,
    ) {
        debug_assert!(
            id.starts_with(category.as_str()),
            "{id} is not in {category}"
        );
        let outcome = match body.await {
            Ok(()) => Outcome::Pass,
            Err(o) => o,
        };
        self.report.cases.push(CaseReport {
            id: id.to_string(),
            category,
            level,
            outcome,
        });
    }

    /// The report of everything recorded.
    pub fn finish(self) -> Report {
        self.report
    }
}
