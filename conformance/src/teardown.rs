//! Teardown: delete what the run pushed, so that a run against a shared registry leaves
//! nothing behind.
//!
//! Every push the suite makes is noted in a [`Ledger`]: manifests and blobs the registry
//! acknowledged (201), and upload sessions it opened (202 with a `Location`). At the end
//! the run deletes the manifests (newest first, so indexes and referrers go before what
//! they point at), then the blobs, then cancels the sessions still open. It is best
//! effort: a registry refusing deletes keeps the content, and the run still reports.

use crate::ctx::Ctx;
use imgflow::client::{Method, RawRequest, RawResponse, CONTENT_DIGEST_HEADER};
use imgflow::oci::{Digest, RepoName};
use std::collections::HashSet;
use std::fmt;

/// What the run pushed, in push order.
#[derive(Debug, Default)]
pub struct Ledger {
    manifests: Vec<(RepoName, Digest)>,
    blobs: Vec<(RepoName, Digest)>,
    uploads: Vec<String>,
}

/// The repository and the part after it of a `/v2/<name>/<kind>/...` path.
fn split_path<'p>(path: &'p str, kind: &str) -> Option<(RepoName, &'p str)> {
    let rest = path.strip_prefix("/v2/")?;
    let marker = format!("/{kind}/");
    let at = rest.rfind(&marker)?;
    let repo = rest[..at].parse().ok()?;
    Some((repo, &rest[at + marker.len()..]))
}

impl Ledger {
    /// A manifest stored in `repo` under `digest`.
    pub fn manifest(&mut self, repo: &RepoName, digest: &Digest) {
        self.manifests.push((repo.clone(), digest.clone()));
    }

    /// A blob stored in `repo`.
    pub fn blob(&mut self, repo: &RepoName, digest: &Digest) {
        self.blobs.push((repo.clone(), digest.clone()));
    }

    /// Note whatever `resp` (to `req`) says the registry now holds.
    pub fn note(&mut self, req: &RawRequest, resp: &RawResponse) {
        let status = resp.status.as_u16();
        let path = resp.url.path();
        let header_digest = || {
            resp.header(CONTENT_DIGEST_HEADER)
                .and_then(|v| v.trim().parse::<Digest>().ok())
        };
        if req.method == Method::PUT && status == 201 {
            if let Some((repo, reference)) = split_path(path, "manifests") {
                let digest = header_digest()
                    .or_else(|| reference.parse().ok())
                    .or_else(|| req.body.as_ref().map(|b| Digest::sha256(b)));
                if let Some(d) = digest {
                    self.manifest(&repo, &d);
                }
                return;
            }
        }
        let Some((repo, _)) = split_path(path, "blobs") else {
            return;
        };
        match (&req.method, status) {
            (&Method::PUT | &Method::POST, 201) => {
                let query_digest = resp
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "digest" || k == "mount")
                    .and_then(|(_, v)| v.parse::<Digest>().ok());
                if let Some(d) = query_digest.or_else(header_digest) {
                    self.blob(&repo, &d);
                }
            }
            (&Method::POST | &Method::PATCH, 202) => {
                if let Some(Ok(url)) = resp.location() {
                    self.uploads.push(url.to_string());
                }
            }
            _ => {}
        }
    }
}

/// What teardown did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Teardown {
    /// Manifests deleted (202).
    pub manifests: usize,
    /// Blobs deleted (202).
    pub blobs: usize,
    /// Upload sessions cancelled (204).
    pub uploads: usize,
    /// Deletes of content a case had already removed (404).
    pub gone: usize,
    /// Deletes the registry refused or failed (other statuses, transport errors).
    pub refused: usize,
}

impl fmt::Display for Teardown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "teardown: deleted {} manifests and {} blobs, cancelled {} uploads; \
             {} already gone, {} refused",
            self.manifests, self.blobs, self.uploads, self.gone, self.refused
        )
    }
}

/// Newest first, each once.
fn newest_first<T: Clone + Eq + std::hash::Hash>(items: &[T]) -> Vec<T> {
    let mut seen = HashSet::new();
    items
        .iter()
        .rev()
        .filter(|i| seen.insert((*i).clone()))
        .cloned()
        .collect()
}

/// Delete everything the run's ledger lists: manifests, then blobs, then open sessions.
pub async fn run(ctx: &Ctx) -> Teardown {
    let (manifests, blobs, uploads) = {
        let ledger = ctx.ledger();
        (
            newest_first(&ledger.manifests),
            newest_first(&ledger.blobs),
            newest_first(&ledger.uploads),
        )
    };
    let mut t = Teardown::default();
    let delete = |target: String, ok: u16| {
        let client = ctx.client.clone();
        async move {
            match client.raw(RawRequest::new(Method::DELETE, target)).await {
                Ok(r) if r.status.as_u16() == ok => Some(true),
                Ok(r) if r.status.as_u16() == 404 => Some(false),
                _ => None,
            }
        }
    };
    for (repo, digest) in manifests {
        match delete(format!("/v2/{repo}/manifests/{digest}"), 202).await {
            Some(true) => t.manifests += 1,
            Some(false) => t.gone += 1,
            None => t.refused += 1,
        }
    }
    for (repo, digest) in blobs {
        match delete(format!("/v2/{repo}/blobs/{digest}"), 202).await {
            Some(true) => t.blobs += 1,
            Some(false) => t.gone += 1,
            None => t.refused += 1,
        }
    }
    for url in uploads {
        // Finished and cancelled sessions answer 404; a stale URL of a session that moved
        // on may be refused (400) by registries that sign upload state into the URL.
        match delete(url, 204).await {
            Some(true) => t.uploads += 1,
            Some(false) | None => t.gone += 1,
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_repository() {
        let (repo, rest) = split_path("/v2/a/b/manifests/v1", "manifests").unwrap();
        assert_eq!((repo.as_str(), rest), ("a/b", "v1"));
        let (repo, rest) = split_path("/v2/ns/blobs/blobs/uploads/x", "blobs").unwrap();
        assert_eq!((repo.as_str(), rest), ("ns/blobs", "uploads/x"));
        assert!(split_path("/v2/Bad/blobs/uploads/", "blobs").is_none());
        assert!(split_path("/v3/a/blobs/x", "blobs").is_none());
    }

    #[test]
    fn newest_first_keeps_each_once() {
        assert_eq!(newest_first(&[1, 2, 1, 3]), vec![3, 1, 2]);
    }
}
