//! The metadata store: repositories' blob links, manifests, tags, referrers, the
//! references between them, and upload sessions, in SQLite (WAL, synchronous=FULL)
//! through sqlx.
//!
//! Writes go through a single-connection pool, so every write transaction runs alone:
//! a check made inside one (a manifest's blobs are linked, a blob is referenced by no
//! manifest) still holds when it commits. Reads use a separate pool and run
//! concurrently. The SQL sticks to what SQLite and PostgreSQL share (`ON CONFLICT`
//! upserts, no `INSERT OR ...`), so a shared PostgreSQL store needs a new pool, not new
//! queries.
//!
//! - [`manifests`]: manifests, tags and their references, checked in one transaction.
//! - [`uploads`]: the durable half of upload sessions (acknowledged size, activity).

mod manifests;
mod uploads;

pub use manifests::{NewManifest, Referrer, StoredManifest};
pub use uploads::UploadRow;

use super::error::{Result, StorageError};
use crate::oci::{Digest, RepoName};
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
    // What each manifest needs in its repository: config and layer blobs ('blob'),
    // an index's children ('manifest'). A `subject` is not a reference here.
    "CREATE TABLE IF NOT EXISTS manifest_refs (
        repo TEXT NOT NULL,
        manifest TEXT NOT NULL,
        target TEXT NOT NULL,
        kind TEXT NOT NULL,
        PRIMARY KEY (repo, manifest, target))",
    "CREATE INDEX IF NOT EXISTS manifest_refs_by_target ON manifest_refs (repo, target)",
    "CREATE TABLE IF NOT EXISTS uploads (
        id TEXT PRIMARY KEY,
        repo TEXT NOT NULL,
        created INTEGER NOT NULL)",
];

/// Columns added to `uploads` after its first release, with their definitions.
const UPLOAD_COLUMNS: &[(&str, &str)] = &[
    // Acknowledged bytes; -1 for sessions written before it was recorded.
    ("size", "INTEGER NOT NULL DEFAULT -1"),
    // Last acknowledged activity (unix seconds).
    ("updated", "INTEGER NOT NULL DEFAULT 0"),
    // The client address that opened the session.
    ("client", "TEXT"),
];

/// `PRAGMA user_version` once `manifest_refs` is filled for every stored manifest.
const REFS_VERSION: i64 = 1;

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
    /// Open (creating and migrating if needed) the database file at `path`.
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
        let db = Db { writer, reader };
        db.migrate().await?;
        Ok(db)
    }

    /// Bring a database written by an older release up to the current schema.
    async fn migrate(&self) -> Result<()> {
        let existing: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info('uploads')")
            .fetch_all(&self.writer)
            .await?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        for (column, definition) in UPLOAD_COLUMNS {
            if !existing.iter().any(|c| c == column) {
                sqlx::query(&format!(
                    "ALTER TABLE uploads ADD COLUMN {column} {definition}"
                ))
                .execute(&self.writer)
                .await?;
            }
        }
        let version: i64 = sqlx::query("PRAGMA user_version")
            .fetch_one(&self.writer)
            .await?
            .get(0);
        if version < REFS_VERSION {
            let n = self.backfill_manifest_refs().await?;
            sqlx::query(&format!("PRAGMA user_version = {REFS_VERSION}"))
                .execute(&self.writer)
                .await?;
            if n > 0 {
                tracing::info!(manifests = n, "recorded the references of stored manifests");
            }
        }
        Ok(())
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

    /// Size of `digest` if the registry holds it in any repository. Read on the writer
    /// connection, so it sees every committed write (used under a digest lock).
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let row = sqlx::query("SELECT size FROM blobs WHERE digest = ?")
            .bind(digest.as_str())
            .fetch_optional(&self.writer)
            .await?;
        Ok(row.map(|r| r.get::<i64, _>(0) as u64))
    }

    /// Record a committed blob and link it to `repo`; ends upload `upload_id` if given.
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

    /// Up to `limit` repositories that link blob `digest`, sorted.
    pub async fn blob_repositories(&self, digest: &Digest, limit: u32) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT repo FROM repo_blobs WHERE digest = ? ORDER BY repo LIMIT ?")
                .bind(digest.as_str())
                .bind(limit)
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.into_iter().map(|(r,)| r).collect())
    }

    /// Unlink `digest` from `repo`, unless a manifest of `repo` references it. Returns
    /// `None` if it was not linked, otherwise whether this removed the last link (the
    /// caller then deletes the data).
    pub async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Option<bool>> {
        let mut tx = self.writer.begin().await?;
        if let Some(by) = manifests::referenced_by(&mut tx, repo, digest).await? {
            return Err(StorageError::InUse {
                target: digest.clone(),
                by,
            });
        }
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
}
