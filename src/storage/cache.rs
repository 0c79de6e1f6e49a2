//! A bounded in-memory cache of metadata reads: manifests by tag and by digest, and
//! blob sizes, per repository.
//!
//! It is kept exact by versioning rather than by invalidating entries: every write to
//! a repository's metadata bumps the repository's version after its transaction
//! commits and before it answers; entries are keyed by the version read *before* the
//! database was read. A reader that raced a write therefore files its possibly stale
//! result under a version nobody asks for any more, and a request that starts after a
//! write's answer never sees what the write replaced. Old entries age out of the
//! bounded cache (weighted by bytes) on their own.

use super::db::StoredManifest;
use crate::oci::{Digest, RepoName, Tag};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What an entry answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum What {
    Tag(String),
    Manifest(String),
    Blob(String),
}

type Key = (String, u64, What);

#[derive(Clone)]
enum Value {
    Manifest(StoredManifest),
    BlobSize(u64),
}

/// Per-entry bookkeeping overhead counted on top of the bytes held.
const ENTRY_OVERHEAD: u64 = 128;

#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<Key, Value> for Weight {
    fn weight(&self, key: &Key, value: &Value) -> u64 {
        let key_len = key.0.len()
            + match &key.2 {
                What::Tag(s) | What::Manifest(s) | What::Blob(s) => s.len(),
            };
        let value_len = match value {
            Value::Manifest(m) => m.content.len() + m.media_type.len() + 80,
            Value::BlobSize(_) => 8,
        };
        ENTRY_OVERHEAD + (key_len + value_len) as u64
    }
}

/// The metadata cache; see the module docs.
pub(super) struct MetaCache {
    entries: Option<quick_cache::sync::Cache<Key, Value, Weight>>,
    versions: Mutex<HashMap<String, u64>>,
    next: AtomicU64,
}

/// A repository's version, read before the database is.
#[derive(Debug, Clone, Copy)]
pub(super) struct Version(u64);

impl MetaCache {
    /// A cache holding about `bytes` bytes; 0 disables it.
    pub(super) fn new(bytes: u64) -> MetaCache {
        let entries = (bytes > 0).then(|| {
            let estimated = (bytes / 2048).clamp(16, 1 << 20) as usize;
            quick_cache::sync::Cache::with_weighter(estimated, bytes, Weight)
        });
        MetaCache {
            entries,
            versions: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        }
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.versions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current version of `repo`'s metadata.
    pub(super) fn version(&self, repo: &RepoName) -> Version {
        Version(self.versions().get(repo.as_str()).copied().unwrap_or(0))
    }

    /// Record that `repo`'s metadata changed (call after the write committed).
    pub(super) fn changed(&self, repo: &RepoName) {
        let v = self.next.fetch_add(1, Ordering::Relaxed);
        self.versions().insert(repo.to_string(), v);
    }

    fn get(&self, repo: &RepoName, v: Version, what: What) -> Option<Value> {
        self.entries.as_ref()?.get(&(repo.to_string(), v.0, what))
    }

    fn put(&self, repo: &RepoName, v: Version, what: What, value: Value) {
        if let Some(entries) = &self.entries {
            entries.insert((repo.to_string(), v.0, what), value);
        }
    }

    fn manifest_key(reference: ManifestRef<'_>) -> What {
        match reference {
            ManifestRef::Tag(t) => What::Tag(t.as_str().to_string()),
            ManifestRef::Digest(d) => What::Manifest(d.as_str().to_string()),
        }
    }

    /// A cached manifest of `repo` at version `v`.
    pub(super) fn manifest(
        &self,
        repo: &RepoName,
        v: Version,
        reference: ManifestRef<'_>,
    ) -> Option<StoredManifest> {
        match self.get(repo, v, Self::manifest_key(reference))? {
            Value::Manifest(m) => Some(m),
            Value::BlobSize(_) => None,
        }
    }

    /// Remember a manifest of `repo` read at version `v`.
    pub(super) fn put_manifest(
        &self,
        repo: &RepoName,
        v: Version,
        reference: ManifestRef<'_>,
        m: &StoredManifest,
    ) {
        let value = Value::Manifest(m.clone());
        self.put(repo, v, Self::manifest_key(reference), value);
    }

    /// A cached blob size of `repo` at version `v`.
    pub(super) fn blob_size(&self, repo: &RepoName, v: Version, digest: &Digest) -> Option<u64> {
        match self.get(repo, v, What::Blob(digest.as_str().to_string()))? {
            Value::BlobSize(n) => Some(n),
            Value::Manifest(_) => None,
        }
    }

    /// Remember a blob size of `repo` read at version `v`.
    pub(super) fn put_blob_size(&self, repo: &RepoName, v: Version, digest: &Digest, size: u64) {
        let what = What::Blob(digest.as_str().to_string());
        self.put(repo, v, what, Value::BlobSize(size));
    }
}

/// A manifest reference, borrowed.
#[derive(Debug, Clone, Copy)]
pub(super) enum ManifestRef<'a> {
    /// By tag.
    Tag(&'a Tag),
    /// By digest.
    Digest(&'a Digest),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(body: &'static [u8]) -> StoredManifest {
        StoredManifest {
            digest: Digest::sha256(body),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            content: bytes::Bytes::from_static(body),
        }
    }

    #[test]
    fn a_read_that_raced_a_write_is_never_served() {
        let cache = MetaCache::new(1 << 20);
        let repo: RepoName = "team/spark".parse().unwrap();
        let tag: Tag = "latest".parse().unwrap();
        let old = manifest(b"old");
        // A reader reads the version, then the database (old content)...
        let v = cache.version(&repo);
        // ...meanwhile a write commits and bumps the version...
        cache.changed(&repo);
        // ...then the reader files what it read.
        cache.put_manifest(&repo, v, ManifestRef::Tag(&tag), &old);
        let now = cache.version(&repo);
        assert!(cache.manifest(&repo, now, ManifestRef::Tag(&tag)).is_none());
        // A read after the write is served from the cache.
        let new = manifest(b"new");
        cache.put_manifest(&repo, now, ManifestRef::Tag(&tag), &new);
        let hit = cache.manifest(&repo, now, ManifestRef::Tag(&tag)).unwrap();
        assert_eq!(hit.digest, new.digest);
        // Other repositories are untouched by the write.
        let other: RepoName = "team/jupyter".parse().unwrap();
        let vo = cache.version(&other);
        cache.put_blob_size(&other, vo, &new.digest, 3);
        cache.changed(&repo);
        assert_eq!(
            cache.blob_size(&other, cache.version(&other), &new.digest),
            Some(3)
        );
    }

    #[test]
    fn disabled_cache_holds_nothing() {
        let cache = MetaCache::new(0);
        let repo: RepoName = "a".parse().unwrap();
        let d = Digest::sha256(b"x");
        let v = cache.version(&repo);
        cache.put_blob_size(&repo, v, &d, 1);
        assert_eq!(cache.blob_size(&repo, v, &d), None);
    }
}
