//! Manifest operations of [`Storage`]: put (with reference checks), get and delete.

use super::cache::ManifestRef;
use super::db::{NewManifest, StoredManifest};
use super::error::{Result, StorageError};
use super::Storage;
use crate::oci::{Digest, Manifest, ManifestKind, Reference, RepoName, Tag};

/// The outcome of a manifest push.
#[derive(Debug, Clone)]
pub struct PutManifest {
    /// Digest the manifest is stored under.
    pub digest: Digest,
    /// The manifest's subject, if it has one.
    pub subject: Option<Digest>,
}

impl Storage {
    /// Store manifest `body` in `repo` under `reference`, also tagging it with `tags`.
    /// Every blob and child manifest it references must be in `repo` when the metadata
    /// transaction that stores it commits.
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        tags: &[Tag],
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<PutManifest> {
        let limit = self.max_manifest_bytes();
        if body.len() as u64 > limit {
            return Err(StorageError::ManifestTooLarge {
                size: body.len() as u64,
                limit,
            });
        }
        let manifest = Manifest::parse(body, content_type)?;
        let digest = match reference {
            Reference::Digest(expected) => {
                let actual = Digest::of(expected.algorithm(), body);
                if &actual != expected {
                    return Err(StorageError::DigestMismatch {
                        expected: expected.clone(),
                        actual,
                    });
                }
                actual
            }
            Reference::Tag(_) => Digest::sha256(body),
        };
        let mut all_tags: Vec<Tag> = tags.to_vec();
        if let Reference::Tag(t) = reference {
            all_tags.push(t.clone());
        }
        let annotations = manifest
            .annotations
            .as_ref()
            .and_then(|a| serde_json::to_string(a).ok());
        let subject = manifest.subject.as_ref().map(|s| s.digest.clone());
        let stored = self
            .inner
            .db
            .put_manifest(
                repo,
                NewManifest {
                    digest: &digest,
                    media_type: &manifest.media_type,
                    content: body,
                    artifact_type: manifest.artifact_type.as_deref(),
                    subject: subject.as_ref(),
                    annotations,
                    tags: &all_tags,
                    blobs: &manifest.blobs,
                    children: if manifest.kind == ManifestKind::Index {
                        &manifest.manifests
                    } else {
                        &[]
                    },
                },
            )
            .await;
        self.inner.cache.changed(repo);
        stored?;
        Ok(PutManifest { digest, subject })
    }

    /// The manifest `reference` points at in `repo`.
    pub async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<StoredManifest> {
        let key = match reference {
            Reference::Tag(t) => ManifestRef::Tag(t),
            Reference::Digest(d) => ManifestRef::Digest(d),
        };
        let cache = &self.inner.cache;
        let v = cache.version(repo);
        if let Some(m) = cache.manifest(repo, v, key) {
            return Ok(m);
        }
        let found = match reference {
            Reference::Tag(t) => self.inner.db.manifest_by_tag(repo, t).await?,
            Reference::Digest(d) => self.inner.db.manifest_by_digest(repo, d).await?,
        };
        let m =
            found.ok_or_else(|| StorageError::ManifestUnknown(format!("{repo}:{reference}")))?;
        cache.put_manifest(repo, v, key, &m);
        Ok(m)
    }

    /// Delete by digest (the manifest and its tags, unless an index of `repo` still
    /// lists it) or by tag (the tag only).
    pub async fn delete_manifest(&self, repo: &RepoName, reference: &Reference) -> Result<()> {
        let deleted = match reference {
            Reference::Tag(t) => self.inner.db.delete_tag(repo, t).await,
            Reference::Digest(d) => self.inner.db.delete_manifest(repo, d).await,
        };
        self.inner.cache.changed(repo);
        if deleted? {
            Ok(())
        } else {
            Err(StorageError::ManifestUnknown(format!("{repo}:{reference}")))
        }
    }
}
