//! The durable half of upload sessions: one row each, with the size acknowledged to
//! the client and the time of the last acknowledged activity. The lifecycle itself is
//! owned by [`crate::storage::uploads`]; this only reads and writes rows.

use super::Db;
use crate::oci::RepoName;
use crate::storage::error::Result;
use sqlx::Row;

/// An upload session as recorded.
#[derive(Debug, Clone)]
pub struct UploadRow {
    /// Session id.
    pub id: String,
    /// Repository it belongs to.
    pub repo: String,
    /// Bytes acknowledged to the client; `None` for rows written before it was kept.
    pub size: Option<u64>,
    /// Last acknowledged activity (unix seconds).
    pub updated: i64,
    /// Address of the client that opened it.
    pub client: Option<String>,
}

impl Db {
    /// Record a new, empty upload session.
    pub async fn add_upload(
        &self,
        id: &str,
        repo: &RepoName,
        client: Option<&str>,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO uploads (id, repo, created, size, updated, client)
             VALUES (?, ?, ?, 0, ?, ?)",
        )
        .bind(id)
        .bind(repo.as_str())
        .bind(now)
        .bind(now)
        .bind(client)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Record that session `id` now holds `size` acknowledged bytes. False if the row
    /// is gone.
    pub async fn set_upload_size(&self, id: &str, size: u64, now: i64) -> Result<bool> {
        let n = sqlx::query("UPDATE uploads SET size = ?, updated = ? WHERE id = ?")
            .bind(size as i64)
            .bind(now)
            .bind(id)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(n > 0)
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

    /// Every recorded upload session (read once, at start-up).
    pub async fn uploads(&self) -> Result<Vec<UploadRow>> {
        let rows = sqlx::query(
            "SELECT id, repo, size, CASE WHEN updated > 0 THEN updated ELSE created END, client
             FROM uploads",
        )
        .fetch_all(&self.writer)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| UploadRow {
                id: r.get(0),
                repo: r.get(1),
                size: u64::try_from(r.get::<i64, _>(2)).ok(),
                updated: r.get(3),
                client: r.get(4),
            })
            .collect())
    }
}
