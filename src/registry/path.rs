//! The one typed parser for `/v2/...` paths.
//!
//! Repository names contain slashes, so a path is read from the right: its last
//! segments name the endpoint (`manifests/<ref>`, `blobs/<digest>`,
//! `blobs/uploads/[<id>]`, `tags/list`, `referrers/<digest>`) and everything before
//! them is the repository name. The raw (still percent-encoded) path is parsed, so
//! `%2e%2e` and friends fail the name grammar instead of being decoded into `..`.

use crate::oci::{Digest, NameError, Reference, RepoName};

/// An API endpoint with its typed parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`: the API version check.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/tags/list`.
    Tags(RepoName),
    /// `/v2/<name>/manifests/<reference>`.
    Manifest(RepoName, Reference),
    /// `/v2/<name>/blobs/<digest>`.
    Blob(RepoName, Digest),
    /// `/v2/<name>/blobs/uploads/`: start an upload.
    UploadStart(RepoName),
    /// `/v2/<name>/blobs/uploads/<id>`: an upload session.
    Upload(RepoName, String),
    /// `/v2/<name>/referrers/<digest>`.
    Referrers(RepoName, Digest),
}

/// Why a path is not an API endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not under `/v2/`, or no known endpoint at its end.
    #[error("no such endpoint: {0}")]
    NotFound(String),
    /// The repository name or reference is invalid.
    #[error(transparent)]
    Name(#[from] NameError),
}

fn name(segments: &[&str]) -> Result<RepoName, PathError> {
    Ok(segments.join("/").parse()?)
}

fn digest(s: &str) -> Result<Digest, PathError> {
    Ok(s.parse().map_err(NameError::from)?)
}

impl Route {
    /// The methods this endpoint answers, for `Allow` headers.
    pub fn allowed_methods(&self) -> &'static str {
        match self {
            Route::Base => "GET, HEAD",
            Route::Catalog | Route::Tags(_) | Route::Referrers(..) => "GET",
            Route::Manifest(..) => "GET, HEAD, PUT, DELETE",
            Route::Blob(..) => "GET, HEAD, DELETE",
            Route::UploadStart(_) => "POST",
            Route::Upload(..) => "GET, PATCH, PUT, DELETE",
        }
    }

    /// Parse a request path such as `/v2/team/spark/manifests/3.5`.
    pub fn parse(path: &str) -> Result<Route, PathError> {
        let not_found = || PathError::NotFound(path.to_string());
        let rest = path.strip_prefix("/v2").ok_or_else(not_found)?;
        if rest.is_empty() || rest == "/" {
            return Ok(Route::Base);
        }
        let rest = rest.strip_prefix('/').ok_or_else(not_found)?;
        if rest == "_catalog" {
            return Ok(Route::Catalog);
        }
        let seg: Vec<&str> = rest.split('/').collect();
        let n = seg.len();
        let tail = |k: usize| -> &[&str] { &seg[n.saturating_sub(k)..] };
        let head = |k: usize| -> &[&str] { &seg[..n.saturating_sub(k)] };
        if n >= 3 && tail(2) == ["tags", "list"] {
            return Ok(Route::Tags(name(head(2))?));
        }
        if n >= 3 && seg[n - 2] == "manifests" {
            return Ok(Route::Manifest(name(head(2))?, seg[n - 1].parse()?));
        }
        if n >= 3 && seg[n - 2] == "referrers" {
            return Ok(Route::Referrers(name(head(2))?, digest(seg[n - 1])?));
        }
        if n >= 4 && seg[n - 3] == "blobs" && seg[n - 2] == "uploads" {
            let repo = name(head(3))?;
            return Ok(if seg[n - 1].is_empty() {
                Route::UploadStart(repo)
            } else {
                Route::Upload(repo, seg[n - 1].to_string())
            });
        }
        if n >= 3 && tail(2) == ["blobs", "uploads"] {
            return Ok(Route::UploadStart(name(head(2))?));
        }
        if n >= 3 && seg[n - 2] == "blobs" {
            return Ok(Route::Blob(name(head(2))?, digest(seg[n - 1])?));
        }
        Err(not_found())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn repo(s: &str) -> RepoName {
        s.parse().unwrap()
    }

    #[test]
    fn routes() {
        assert_eq!(Route::parse("/v2/").unwrap(), Route::Base);
        assert_eq!(Route::parse("/v2").unwrap(), Route::Base);
        assert_eq!(Route::parse("/v2/_catalog").unwrap(), Route::Catalog);
        assert_eq!(
            Route::parse("/v2/a/b/c/tags/list").unwrap(),
            Route::Tags(repo("a/b/c"))
        );
        assert_eq!(
            Route::parse("/v2/team/spark/manifests/3.5").unwrap(),
            Route::Manifest(repo("team/spark"), "3.5".parse().unwrap())
        );
        // A repository whose name contains endpoint words.
        assert_eq!(
            Route::parse("/v2/blobs/manifests/tags/manifests/latest").unwrap(),
            Route::Manifest(repo("blobs/manifests/tags"), "latest".parse().unwrap())
        );
        assert_eq!(
            Route::parse(&format!("/v2/x/blobs/{D}")).unwrap(),
            Route::Blob(repo("x"), D.parse().unwrap())
        );
        assert_eq!(
            Route::parse("/v2/x/y/blobs/uploads/").unwrap(),
            Route::UploadStart(repo("x/y"))
        );
        assert_eq!(
            Route::parse("/v2/x/blobs/uploads").unwrap(),
            Route::UploadStart(repo("x"))
        );
        assert_eq!(
            Route::parse("/v2/x/blobs/uploads/abc").unwrap(),
            Route::Upload(repo("x"), "abc".into())
        );
        assert_eq!(
            Route::parse(&format!("/v2/x/referrers/{D}")).unwrap(),
            Route::Referrers(repo("x"), D.parse().unwrap())
        );
    }

    #[test]
    fn rejects_tricks() {
        for p in [
            "/v2/../etc/manifests/latest",
            "/v2/%2e%2e/manifests/latest",
            "/v2//abs/manifests/latest",
            "/v2/UPPER/manifests/latest",
            "/v2/a\0b/manifests/latest",
        ] {
            assert!(
                matches!(
                    Route::parse(p),
                    Err(PathError::Name(NameError::InvalidName(_)))
                ),
                "{p:?}"
            );
        }
        assert!(matches!(
            Route::parse("/v2/x/blobs/sha256:1234"),
            Err(PathError::Name(NameError::InvalidDigest(_)))
        ));
        assert!(matches!(Route::parse("/v3/x"), Err(PathError::NotFound(_))));
        assert!(matches!(
            Route::parse("/v2/x/other"),
            Err(PathError::NotFound(_))
        ));
    }
}
