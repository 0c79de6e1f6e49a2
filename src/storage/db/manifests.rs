//! Manifests, tags, referrers and the references a manifest holds, in the metadata DB.
//!
//! A manifest is inserted in the same write transaction that checks its references
//! (blobs linked to the repository with the right size, child manifests present), and
//! a blob link or a manifest is removed in the same transaction that checks nothing
//! references it. Since the writer is one connection, no other write can slip in
//! between the check and the change.

use super::{parse_digest, Db};
use crate::oci::{Descriptor, Digest, Manifest, ManifestError, RepoName, Tag};
use crate::storage::error::{Result, StorageError};
use sqlx::{Row, Sqlite, Transaction};

/// A manifest as stored, ready to serve.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    /// Digest of `content`.
    pub digest: Digest,
    /// Media type to answer with.
    pub media_type: String,
    /// The exact bytes that were pushed.
    pub content: bytes::Bytes,
}

/// One manifest that refers to a subject, as listed by the referrers API.
#[derive(Debug, Clone)]
pub struct Referrer {
    /// Digest of the referring manifest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its artifact type.
    pub artifact_type: Option<String>,
    /// Its annotations, as JSON text.
    pub annotations: Option<String>,
}

/// A manifest row to insert.
pub struct NewManifest<'a> {
    /// Digest of the content.
    pub digest: &'a Digest,
    /// Media type.
    pub media_type: &'a str,
    /// The bytes pushed.
    pub content: &'a [u8],
    /// Artifact type (for referrers).
    pub artifact_type: Option<&'a str>,
    /// Subject digest (for referrers).
    pub subject: Option<&'a Digest>,
    /// Annotations as JSON text.
    pub annotations: Option<String>,
    /// Tags to point at this manifest.
    pub tags: &'a [Tag],
    /// Blobs that must be linked to the repository, with their sizes.
    pub blobs: &'a [Descriptor],
    /// Child manifests that must be in the repository.
    pub children: &'a [Descriptor],
}

type Tx<'t> = Transaction<'t, Sqlite>;

/// A manifest of `repo` that references `target` (as a blob or a child), if any.
pub(super) async fn referenced_by(
    tx: &mut Tx<'_>,
    repo: &RepoName,
    target: &Digest,
) -> Result<Option<Digest>> {
    let row = sqlx::query(
        "SELECT manifest FROM manifest_refs WHERE repo = ? AND target = ?
         ORDER BY manifest LIMIT 1",
    )
    .bind(repo.as_str())
    .bind(target.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| parse_digest(r.get(0))).transpose()
}

/// Check, inside `tx`, that everything `m` references is in `repo`.
async fn check_references(tx: &mut Tx<'_>, repo: &RepoName, m: &NewManifest<'_>) -> Result<()> {
    for blob in m.blobs {
        let row = sqlx::query(
            "SELECT b.size FROM repo_blobs r JOIN blobs b ON b.digest = r.digest
             WHERE r.repo = ? AND r.digest = ?",
        )
        .bind(repo.as_str())
        .bind(blob.digest.as_str())
        .fetch_optional(&mut **tx)
        .await?;
        match row.map(|r| r.get::<i64, _>(0) as u64) {
            None => return Err(StorageError::ManifestBlobUnknown(blob.digest.clone())),
            Some(size) if size != blob.size => {
                return Err(StorageError::ManifestInvalid(ManifestError::Invalid(
                    format!(
                        "descriptor of {} says {} bytes, the blob has {size}",
                        blob.digest, blob.size
                    ),
                )))
            }
            Some(_) => {}
        }
    }
    for child in m.children {
        let row = sqlx::query("SELECT 1 FROM manifests WHERE repo = ? AND digest = ?")
            .bind(repo.as_str())
            .bind(child.digest.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        if row.is_none() {
            return Err(StorageError::ManifestBlobUnknown(child.digest.clone()));
        }
    }
    Ok(())
}

/// Record what manifest `digest` of `repo` references.
async fn insert_refs(
    tx: &mut Tx<'_>,
    repo: &RepoName,
    digest: &Digest,
    blobs: &[Descriptor],
    children: &[Descriptor],
) -> Result<()> {
    let all = blobs
        .iter()
        .map(|d| (d, "blob"))
        .chain(children.iter().map(|d| (d, "manifest")));
    for (target, kind) in all {
        sqlx::query(
            "INSERT INTO manifest_refs (repo, manifest, target, kind) VALUES (?, ?, ?, ?)
             ON CONFLICT DO NOTHING",
        )
        .bind(repo.as_str())
        .bind(digest.as_str())
        .bind(target.digest.as_str())
        .bind(kind)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Db {
    /// Store a manifest and point `tags` at it, in one transaction that first checks
    /// that every blob and child manifest it references is in `repo`.
    pub async fn put_manifest(&self, repo: &RepoName, m: NewManifest<'_>) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        check_references(&mut tx, repo, &m).await?;
        sqlx::query(
            "INSERT INTO manifests
             (repo, digest, media_type, content, artifact_type, subject, annotations)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (repo, digest) DO UPDATE SET media_type = excluded.media_type,
               content = excluded.content, artifact_type = excluded.artifact_type,
               subject = excluded.subject, annotations = excluded.annotations",
        )
        .bind(repo.as_str())
        .bind(m.digest.as_str())
        .bind(m.media_type)
        .bind(m.content)
        .bind(m.artifact_type)
        .bind(m.subject.map(Digest::as_str))
        .bind(m.annotations.as_deref())
        .execute(&mut *tx)
        .await?;
        insert_refs(&mut tx, repo, m.digest, m.blobs, m.children).await?;
        for tag in m.tags {
            sqlx::query(
                "INSERT INTO tags (repo, tag, digest) VALUES (?, ?, ?)
                 ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest",
            )
            .bind(repo.as_str())
            .bind(tag.as_str())
            .bind(m.digest.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The manifest a tag points at.
    pub async fn manifest_by_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
    ) -> Result<Option<StoredManifest>> {
        let row = sqlx::query(
            "SELECT m.digest, m.media_type, m.content FROM tags t
             JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest
             WHERE t.repo = ? AND t.tag = ?",
        )
        .bind(repo.as_str())
        .bind(tag.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.map(stored_manifest).transpose()
    }

    /// A manifest by digest.
    pub async fn manifest_by_digest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>> {
        let row = sqlx::query(
            "SELECT digest, media_type, content FROM manifests WHERE repo = ? AND digest = ?",
        )
        .bind(repo.as_str())
        .bind(digest.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.map(stored_manifest).transpose()
    }

    /// Delete a manifest, every tag pointing at it and its references, unless another
    /// manifest of `repo` (an index) references it. False if it was not there.
    pub async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        if let Some(by) = referenced_by(&mut tx, repo, digest).await? {
            return Err(StorageError::InUse {
                target: digest.clone(),
                by,
            });
        }
        let n = sqlx::query("DELETE FROM manifests WHERE repo = ? AND digest = ?")
            .bind(repo.as_str())
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        for table in [
            "tags WHERE repo = ? AND digest = ?",
            "manifest_refs WHERE repo = ? AND manifest = ?",
        ] {
            sqlx::query(&format!("DELETE FROM {table}"))
                .bind(repo.as_str())
                .bind(digest.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Delete a tag only. False if it was not there.
    pub async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool> {
        let n = sqlx::query("DELETE FROM tags WHERE repo = ? AND tag = ?")
            .bind(repo.as_str())
            .bind(tag.as_str())
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Up to `limit` tags of `repo` sorted, strictly after `last`.
    pub async fn tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT tag FROM tags WHERE repo = ? AND tag > ? ORDER BY tag LIMIT ?")
                .bind(repo.as_str())
                .bind(last.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// Manifests of `repo` whose subject is `subject`, optionally of one artifact type.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        let rows = sqlx::query(
            "SELECT digest, media_type, length(content), artifact_type, annotations
             FROM manifests WHERE repo = ? AND subject = ? AND (? IS NULL OR artifact_type = ?)
             ORDER BY digest",
        )
        .bind(repo.as_str())
        .bind(subject.as_str())
        .bind(artifact_type)
        .bind(artifact_type)
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Referrer {
                    digest: parse_digest(r.get(0))?,
                    media_type: r.get(1),
                    size: r.get::<i64, _>(2) as u64,
                    artifact_type: r.get(3),
                    annotations: r.get(4),
                })
            })
            .collect()
    }

    /// Record the references of every stored manifest (for databases written before
    /// references were recorded). Returns how many manifests were read.
    pub(super) async fn backfill_manifest_refs(&self) -> Result<usize> {
        let mut after = (String::new(), String::new());
        let mut count = 0;
        loop {
            let rows = sqlx::query(
                "SELECT repo, digest, media_type, content FROM manifests
                 WHERE (repo, digest) > (?, ?) ORDER BY repo, digest LIMIT 64",
            )
            .bind(&after.0)
            .bind(&after.1)
            .fetch_all(&self.writer)
            .await?;
            let Some(last) = rows.last() else {
                return Ok(count);
            };
            after = (last.get(0), last.get(1));
            let mut tx = self.writer.begin().await?;
            for row in &rows {
                count += 1;
                let repo: String = row.get(0);
                let (Ok(repo), Ok(digest)) = (repo.parse::<RepoName>(), parse_digest(row.get(1)))
                else {
                    continue;
                };
                let media_type: String = row.get(2);
                let content: Vec<u8> = row.get(3);
                match Manifest::parse(&content, Some(&media_type)) {
                    Ok(m) => insert_refs(&mut tx, &repo, &digest, &m.blobs, &m.manifests).await?,
                    Err(e) => {
                        tracing::warn!(%repo, %digest, error = %e, "stored manifest unreadable")
                    }
                }
            }
            tx.commit().await?;
        }
    }
}

fn stored_manifest(row: sqlx::sqlite::SqliteRow) -> Result<StoredManifest> {
    Ok(StoredManifest {
        digest: parse_digest(row.get(0))?,
        media_type: row.get(1),
        content: bytes::Bytes::from(row.get::<Vec<u8>, _>(2)),
    })
}
