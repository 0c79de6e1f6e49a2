//! Periodic upkeep: ends idle upload sessions and removes files nothing refers to.
//!
//! Run at start-up (before the first request) and then periodically by the server.
//! Orphan blob files come from a crash between publishing a blob file and recording it;
//! each is checked and removed under its digest's lock, which a commit holds from the
//! rename to the record, so a blob being published is never taken for an orphan.

use super::error::Result;
use super::Storage;

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Upload sessions ended for inactivity, and staging files of no session.
    pub uploads: usize,
    /// Blob files that no metadata record names.
    pub orphan_blobs: usize,
}

impl SweepReport {
    /// Everything removed.
    pub fn removed(&self) -> usize {
        self.uploads + self.orphan_blobs
    }
}

impl Storage {
    /// Expire idle upload sessions, then remove orphan staging and blob files.
    pub async fn sweep(&self) -> Result<SweepReport> {
        let uploads = self.expire_uploads().await?;
        let mut orphan_blobs = 0;
        for digest in self.inner.blobs.list().await? {
            let _guard = self.digest_lock(&digest).lock().await;
            if self.inner.db.blob_size(&digest).await?.is_none() {
                tracing::info!(%digest, "removing a blob file that no record names");
                self.inner.blobs.delete(&digest).await?;
                orphan_blobs += 1;
            }
        }
        Ok(SweepReport {
            uploads,
            orphan_blobs,
        })
    }
}
