//! The metadata store: repositories' blob links, manifests, tags, referrers and upload
//! sessions, in SQLite (WAL, synchronous=FULL) through sqlx.
//!
//! Writes go through a single-connection pool so transactions never race for SQLite's
//! write lock; reads use a separate pool and run concurrently. The SQL sticks to what
//! SQLite and PostgreSQL share (`ON CONFLICT` upserts, no `INSERT OR ...`), so a shared
//! PostgreSQL store for several registry nodes needs a new pool, not new queries.

use super::error::{Result, StorageError};
use crate::oci::{Digest, RepoName, Tag};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use std::path::Path;
use std::time::Duration;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS blobs (
        digest TEXT PRIMARY KEY,
        size INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS repo_blobs (
        repo TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (repo, digest))",
    "CREATE INDEX IF NOT EXISTS repo_blobs_by_digest ON repo_blobs (digest)",
    "CREATE TABLE IF NOT EXISTS manifests (
        repo TEXT NOT NULL,
        digest TEXT NOT NULL,
        media_type TEXT NOT NULL,
        content BLOB NOT NULL,
        artifact_type TEXT,
        subject TEXT,
        annotations TEXT,
        PRIMARY KEY (repo, digest))",
    "CREATE INDEX IF NOT EXISTS manifests_by_subject ON manifests (repo, subject)",
    "CREATE TABLE IF NOT EXISTS tags (
        repo TEXT NOT NULL,
        tag TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (repo, tag))",
    "CREATE INDEX IF NOT EXISTS tags_by_digest ON tags (repo, digest)",
    "CREATE TABLE IF NOT EXISTS uploads (
        id TEXT PRIMARY KEY,
        repo TEXT NOT NULL,
        created INTEGER NOT NULL)",
];

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
}

/// Handle to the metadata database.
#[derive(Clone)]
pub struct Db {
    writer: SqlitePool,
    reader: SqlitePool,
}

fn parse_digest(s: String) -> Result<Digest> {
    s.parse().map_err(|e| {
        StorageError::Db(sqlx::Error::Decode(
            format!("corrupt digest {s:?} in database: {e}").into(),
        ))
    })
}

impl Db {
    /// Open (creating if needed) the database file at `path`.
    pub async fn open(path: &Path) -> Result<Db> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        for stmt in SCHEMA {
            sqlx::query(stmt).execute(&writer).await?;
        }
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts.read_only(true))
            .await?;
        Ok(Db { writer, reader })
    }

    /// Size of `digest` if it is linked to `repo`.
    pub async fn repo_blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        let row = sqlx::query(
            "SELECT b.size FROM repo_blobs r JOIN blobs b ON b.digest = r.digest
             WHERE r.repo = ? AND r.digest = ?",
        )
        .bind(repo.as_str())
        .bind(digest.as_str())
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|r| r.get::<i64, _>(0) as u64))
    }

    /// Size of `digest` if the registry holds it in any repository.
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let row = sqlx::query("SELECT size FROM blobs WHERE digest = ?")
            .bind(digest.as_str())
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|r| r.get::<i64, _>(0) as u64))
    }

    /// Record a committed blob and link it to `repo`; finishes upload `upload_id` if given.
    pub async fn add_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        upload_id: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("INSERT INTO blobs (digest, size) VALUES (?, ?) ON CONFLICT DO NOTHING")
            .bind(digest.as_str())
            .bind(size as i64)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO repo_blobs (repo, digest) VALUES (?, ?) ON CONFLICT DO NOTHING")
            .bind(repo.as_str())
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await?;
        if let Some(id) = upload_id {
            sqlx::query("DELETE FROM uploads WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Link an existing blob to `repo`. Returns false when the blob is not held, or, with
    /// `from`, not linked to `from`.
    pub async fn link_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<bool> {
        let source = match from {
            Some(from) => sqlx::query("SELECT 1 FROM repo_blobs WHERE repo = ? AND digest = ?")
                .bind(from.as_str())
                .bind(digest.as_str()),
            None => sqlx::query("SELECT 1 FROM blobs WHERE digest = ?").bind(digest.as_str()),
        };
        let mut tx = self.writer.begin().await?;
        if source.fetch_optional(&mut *tx).await?.is_none() {
            return Ok(false);
        }
        sqlx::query("INSERT INTO repo_blobs (repo, digest) VALUES (?, ?) ON CONFLICT DO NOTHING")
            .bind(repo.as_str())
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Unlink `digest` from `repo`. Returns `None` if it was not linked, otherwise whether
    /// this removed the last link (the caller then deletes the data).
    pub async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Option<bool>> {
        let mut tx = self.writer.begin().await?;
        let removed = sqlx::query("DELETE FROM repo_blobs WHERE repo = ? AND digest = ?")
            .bind(repo.as_str())
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed == 0 {
            return Ok(None);
        }
        let others = sqlx::query("SELECT 1 FROM repo_blobs WHERE digest = ? LIMIT 1")
            .bind(digest.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let last = others.is_none();
        if last {
            sqlx::query("DELETE FROM blobs WHERE digest = ?")
                .bind(digest.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(last))
    }

    /// Whether `repo` holds manifest `digest`.
    pub async fn has_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM manifests WHERE repo = ? AND digest = ?")
            .bind(repo.as_str())
            .bind(digest.as_str())
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.is_some())
    }

    /// Store a manifest and point `tags` at it, in one transaction.
    pub async fn put_manifest(&self, repo: &RepoName, m: NewManifest<'_>) -> Result<()> {
        let mut tx = self.writer.begin().await?;
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
        .bind(m.annotations)
        .execute(&mut *tx)
        .await?;
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

    /// Delete a manifest and every tag pointing at it. False if it was not there.
    pub async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query("DELETE FROM manifests WHERE repo = ? AND digest = ?")
            .bind(repo.as_str())
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM tags WHERE repo = ? AND digest = ?")
            .bind(repo.as_str())
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await?;
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

    /// Whether the repository holds any manifest or blob.
    pub async fn repo_exists(&self, repo: &RepoName) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM manifests WHERE repo = ?
             UNION ALL SELECT 1 FROM repo_blobs WHERE repo = ? LIMIT 1",
        )
        .bind(repo.as_str())
        .bind(repo.as_str())
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.is_some())
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

    /// Up to `limit` names of repositories holding anything, sorted, strictly after `last`.
    pub async fn repositories(&self, last: Option<&str>, limit: u32) -> Result<Vec<String>> {
        let last = last.unwrap_or("");
        let rows = sqlx::query(
            "SELECT repo FROM manifests WHERE repo > ?
             UNION SELECT repo FROM repo_blobs WHERE repo > ?
             ORDER BY repo LIMIT ?",
        )
        .bind(last)
        .bind(last)
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

    /// Record a new upload session.
    pub async fn add_upload(&self, id: &str, repo: &RepoName, created: i64) -> Result<()> {
        sqlx::query("INSERT INTO uploads (id, repo, created) VALUES (?, ?, ?)")
            .bind(id)
            .bind(repo.as_str())
            .bind(created)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The repository an upload session belongs to.
    pub async fn upload_repo(&self, id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT repo FROM uploads WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.writer)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Forget an upload session. False if it was not there.
    pub async fn remove_upload(&self, id: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM uploads WHERE id = ?")
            .bind(id)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Upload sessions created before `created` (for expiry).
    pub async fn uploads_older_than(&self, created: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM uploads WHERE created < ?")
            .bind(created)
            .fetch_all(&self.writer)
            .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }
}

fn stored_manifest(row: sqlx::sqlite::SqliteRow) -> Result<StoredManifest> {
    Ok(StoredManifest {
        digest: parse_digest(row.get(0))?,
        media_type: row.get(1),
        content: bytes::Bytes::from(row.get::<Vec<u8>, _>(2)),
    })
}
