//! Manifests: PUT by tag or digest, GET and HEAD with `Accept`, DELETE.

use super::error::{ClientError, Result};
use super::{header_str, location_of, protocol, Client, Method, StatusCode, Url};
use crate::oci::{self, Algorithm, Digest, Reference, RepoName};
use bytes::Bytes;

/// Media types accepted by default when fetching manifests.
pub const MANIFEST_ACCEPT: [&str; 4] = [
    oci::OCI_MANIFEST,
    oci::OCI_INDEX,
    oci::DOCKER_MANIFEST,
    oci::DOCKER_MANIFEST_LIST,
];

/// What the registry answered to a manifest PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedManifest {
    /// Digest of the manifest (from `Docker-Content-Digest`, checked against the bytes).
    pub digest: Digest,
    /// The pullable URL returned in `Location`, if any.
    pub location: Option<Url>,
    /// The `OCI-Subject` header: set when the registry processed the `subject` field.
    pub subject: Option<Digest>,
}

/// A fetched manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The `Content-Type` of the response.
    pub media_type: String,
    /// Digest of the body (verified against the reference when it is a digest).
    pub digest: Digest,
    /// The manifest bytes, exactly as stored.
    pub body: Bytes,
}

/// What a manifest HEAD tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// The `Content-Type`, if sent.
    pub media_type: Option<String>,
    /// The `Docker-Content-Digest`, if sent and valid.
    pub digest: Option<Digest>,
    /// The `Content-Length`, if sent.
    pub size: Option<u64>,
}

fn accept_value(accept: &[&str]) -> String {
    if accept.is_empty() {
        MANIFEST_ACCEPT.join(", ")
    } else {
        accept.join(", ")
    }
}

impl Client {
    /// `PUT /v2/<repo>/manifests/<reference>` with `Content-Type: media_type` (201).
    ///
    /// The digest is computed from `body` (with the reference's algorithm when pushing
    /// by digest) and must match `Docker-Content-Digest` when the registry sends it.
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        media_type: &str,
        body: Bytes,
    ) -> Result<PushedManifest> {
        let algorithm = match reference {
            Reference::Digest(d) => d.algorithm(),
            Reference::Tag(_) => Algorithm::Sha256,
        };
        let computed = Digest::of(algorithm, &body);
        if let Reference::Digest(d) = reference {
            if *d != computed {
                return Err(ClientError::DigestMismatch {
                    expected: d.clone(),
                    actual: computed,
                });
            }
        }
        let url = self.repo_url(repo, &format!("manifests/{reference}"))?;
        let m = Method::PUT;
        let rb = self
            .request(m.clone(), url.clone())
            .header("Content-Type", media_type)
            .body(body);
        let resp = self.send(&m, &url, rb, &[StatusCode::CREATED]).await?;
        if let Some(v) = header_str(resp.headers(), super::CONTENT_DIGEST_HEADER) {
            let d: Digest = v
                .parse()
                .map_err(|e| protocol(&m, &url, format!("bad Docker-Content-Digest: {e}")))?;
            if d.algorithm() == computed.algorithm() && d != computed {
                return Err(protocol(
                    &m,
                    &url,
                    format!("registry reports digest {d}, the manifest's is {computed}"),
                ));
            }
        }
        let subject = match header_str(resp.headers(), super::OCI_SUBJECT_HEADER) {
            Some(v) => Some(
                v.parse()
                    .map_err(|e| protocol(&m, &url, format!("bad OCI-Subject: {e}")))?,
            ),
            None => None,
        };
        let location = match header_str(resp.headers(), "Location") {
            Some(_) => Some(location_of(&m, &url, &resp)?),
            None => None,
        };
        Ok(PushedManifest {
            digest: computed,
            location,
            subject,
        })
    }

    /// `GET /v2/<repo>/manifests/<reference>` with `Accept` (defaults to
    /// [`MANIFEST_ACCEPT`] when empty).
    pub async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        accept: &[&str],
    ) -> Result<FetchedManifest> {
        let url = self.repo_url(repo, &format!("manifests/{reference}"))?;
        let m = Method::GET;
        let rb = self
            .request(m.clone(), url.clone())
            .header("Accept", accept_value(accept));
        let resp = self.send(&m, &url, rb, &[StatusCode::OK]).await?;
        let media_type = header_str(resp.headers(), "Content-Type")
            .unwrap_or_default()
            .to_string();
        let header_digest = header_str(resp.headers(), super::CONTENT_DIGEST_HEADER)
            .and_then(|v| v.parse::<Digest>().ok());
        let body = resp.bytes().await.map_err(|source| ClientError::Http {
            method: m.clone(),
            url: url.to_string(),
            source: source.without_url(),
        })?;
        let algorithm = match (reference, &header_digest) {
            (Reference::Digest(d), _) => d.algorithm(),
            (_, Some(h)) => h.algorithm(),
            _ => Algorithm::Sha256,
        };
        let digest = Digest::of(algorithm, &body);
        let expected = match reference {
            Reference::Digest(d) => Some(d.clone()),
            Reference::Tag(_) => header_digest,
        };
        if let Some(expected) = expected {
            if expected != digest {
                return Err(ClientError::DigestMismatch {
                    expected,
                    actual: digest,
                });
            }
        }
        Ok(FetchedManifest {
            media_type,
            digest,
            body,
        })
    }

    /// `HEAD /v2/<repo>/manifests/<reference>`: `None` on 404.
    pub async fn head_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        accept: &[&str],
    ) -> Result<Option<ManifestHead>> {
        let url = self.repo_url(repo, &format!("manifests/{reference}"))?;
        let m = Method::HEAD;
        let rb = self
            .request(m.clone(), url.clone())
            .header("Accept", accept_value(accept));
        let ok = [StatusCode::OK, StatusCode::NOT_FOUND];
        let resp = self.send(&m, &url, rb, &ok).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let h = resp.headers();
        Ok(Some(ManifestHead {
            media_type: header_str(h, "Content-Type").map(str::to_string),
            digest: header_str(h, super::CONTENT_DIGEST_HEADER).and_then(|v| v.parse().ok()),
            size: header_str(h, "Content-Length").and_then(|v| v.parse().ok()),
        }))
    }

    /// `DELETE /v2/<repo>/manifests/<reference>`: delete a manifest (by digest) or
    /// only a tag (by tag). 202 Accepted.
    pub async fn delete_manifest(&self, repo: &RepoName, reference: &Reference) -> Result<()> {
        let url = self.repo_url(repo, &format!("manifests/{reference}"))?;
        let m = Method::DELETE;
        self.send_bare(&m, &url, &[StatusCode::ACCEPTED]).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_defaults_to_all_manifest_types() {
        let v = accept_value(&[]);
        for mt in MANIFEST_ACCEPT {
            assert!(v.contains(mt));
        }
        assert_eq!(accept_value(&[oci::OCI_INDEX]), oci::OCI_INDEX);
    }
}
