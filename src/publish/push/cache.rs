//! The layer cache: uncompressed diff id -> compressed blob (digest, size).
//!
//! It lets a push find an unchanged layer in the registry without compressing it again.
//! Only the mapping is kept (one small JSON file, `layers.json`), never the compressed
//! bytes, so the cache costs no disk space worth mentioning.
//!
//! Trust rule: an entry is a *candidate*. It is used only when the registry confirms it,
//! i.e. a HEAD finds the blob in the target repository (with the recorded size) or a
//! cross-repository mount of it succeeds. Otherwise the layer is compressed again, which
//! (compression being deterministic) normally yields the same digest; a different one
//! (other deflate version) replaces the entry. A stale or wrong entry can therefore cost
//! time, never a wrong image.
//!
//! Several pushes of one process share a [`LayerCache`]; concurrent processes merge
//! their entries into the file (read, merge, write a temp file, rename), the last one
//! winning for the same diff id. A missing or unreadable file is an empty cache.

use super::gzip::FORMAT;
use crate::oci::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// File name of the cache inside its directory.
pub const CACHE_FILE: &str = "layers.json";

/// A compressed blob the cache remembers for a diff id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedBlob {
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    format: String,
    layers: BTreeMap<String, CachedBlob>,
}

/// Maps diff ids to compressed blobs, persisted in `DIR/layers.json` (or in memory only).
#[derive(Debug)]
pub struct LayerCache {
    path: Option<PathBuf>,
    entries: Mutex<BTreeMap<String, CachedBlob>>,
}

/// `$XDG_CACHE_HOME/imgflow`, else `$HOME/.cache/imgflow`; `None` without either.
pub fn default_cache_dir() -> Option<PathBuf> {
    let from = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from("XDG_CACHE_HOME")
        .map(|d| d.join("imgflow"))
        .or_else(|| from("HOME").map(|h| h.join(".cache").join("imgflow")))
}

fn read_file(path: &Path) -> BTreeMap<String, CachedBlob> {
    let Ok(bytes) = std::fs::read(path) else {
        return BTreeMap::new();
    };
    match serde_json::from_slice::<CacheFile>(&bytes) {
        Ok(f) if f.format == FORMAT => f.layers,
        Ok(f) => {
            tracing::info!(
                "layer cache {} was made with {:?}, not {FORMAT:?}: ignored",
                path.display(),
                f.format
            );
            BTreeMap::new()
        }
        Err(e) => {
            tracing::warn!("layer cache {} is unreadable, ignored: {e}", path.display());
            BTreeMap::new()
        }
    }
}

impl LayerCache {
    /// A cache kept in memory only (for one run).
    pub fn in_memory() -> LayerCache {
        LayerCache {
            path: None,
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    /// The cache persisted in `dir` (created when first written).
    pub fn open(dir: impl AsRef<Path>) -> LayerCache {
        let path = dir.as_ref().join(CACHE_FILE);
        let entries = read_file(&path);
        LayerCache {
            path: Some(path),
            entries: Mutex::new(entries),
        }
    }

    /// The file backing the cache, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The candidate blob for `diff_id`.
    pub fn get(&self, diff_id: &Digest) -> Option<CachedBlob> {
        self.lock().get(diff_id.as_str()).cloned()
    }

    /// Remember `blob` for `diff_id` and persist it. A failure to write the file is
    /// logged, not returned: the cache only saves time.
    pub fn put(&self, diff_id: &Digest, blob: CachedBlob) {
        let snapshot = {
            let mut entries = self.lock();
            if entries.get(diff_id.as_str()) == Some(&blob) {
                return;
            }
            entries.insert(diff_id.to_string(), blob.clone());
            entries.clone()
        };
        if let Some(path) = &self.path {
            if let Err(e) = save(path, snapshot) {
                tracing::warn!("cannot write layer cache {}: {e}", path.display());
            }
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache has no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, CachedBlob>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Merge `ours` over what the file holds now and replace the file atomically.
fn save(path: &Path, ours: BTreeMap<String, CachedBlob>) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut layers = read_file(path);
    layers.extend(ours);
    let file = CacheFile {
        format: FORMAT.to_string(),
        layers,
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer_pretty(&mut tmp, &file)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: u8) -> CachedBlob {
        CachedBlob {
            digest: Digest::sha256(&[n]),
            size: u64::from(n) * 10,
        }
    }

    #[test]
    fn entries_persist_and_merge_across_instances() {
        let dir = tempfile::tempdir().unwrap();
        let a = LayerCache::open(dir.path());
        let b = LayerCache::open(dir.path());
        assert!(a.is_empty());
        let (d1, d2) = (Digest::sha256(b"one"), Digest::sha256(b"two"));
        a.put(&d1, blob(1));
        b.put(&d2, blob(2));
        let c = LayerCache::open(dir.path());
        assert_eq!(c.get(&d1), Some(blob(1)));
        assert_eq!(c.get(&d2), Some(blob(2)));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn unreadable_or_foreign_files_are_empty_caches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CACHE_FILE);
        std::fs::write(&path, b"{not json").unwrap();
        assert!(LayerCache::open(dir.path()).is_empty());
        let d = Digest::sha256(b"x");
        let other =
            format!(r#"{{"format":"zstd","layers":{{"{d}":{{"digest":"{d}","size":1}}}}}}"#);
        std::fs::write(&path, other).unwrap();
        assert!(LayerCache::open(dir.path()).get(&d).is_none());
        let cache = LayerCache::open(dir.path());
        cache.put(&d, blob(3));
        assert_eq!(LayerCache::open(dir.path()).get(&d), Some(blob(3)));
    }
}
