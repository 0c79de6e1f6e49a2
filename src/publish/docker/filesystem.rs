//! [`ImageFs`]: an image's files read from outside, from the tar `docker export` wrote to
//! an anonymous temporary file. Only metadata is indexed in memory; file contents are read
//! from the tar on demand, up to a size the caller gives.
//!
//! Paths are looked up as inside the image: symlinks in directory components are followed
//! within the image root (so `/lib/...` works on a merged-`/usr` image), `lstat`-style
//! lookups keep a final symlink, `stat`-style ones follow it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use tar::EntryType;

use super::error::{DockerError, Result};
use super::mode::{mode_string, FileKind};
use super::resolve::{normalize, parent, resolve, Node};

/// One file, directory, link or device of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// Absolute normalized path, e.g. `/usr/bin/python3`.
    pub path: String,
    /// What it is.
    pub kind: FileKind,
    /// Permission bits with setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u64,
    /// Owner group id.
    pub gid: u64,
    /// Size in bytes of a regular file's contents (0 for others).
    pub size: u64,
    /// A symlink's target as written (relative or absolute).
    pub link_target: Option<String>,
    /// Where the contents start in the tar (regular files only).
    data_offset: u64,
}

impl FileMeta {
    /// The mode as container-structure-test writes it, e.g. `-rwxr-xr-x`.
    pub fn permissions(&self) -> String {
        mode_string(self.kind, self.mode)
    }

    /// The last path component (empty for `/`).
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or("")
    }
}

/// An exported image filesystem.
#[derive(Debug)]
pub struct ImageFs {
    tar: Arc<File>,
    files: BTreeMap<String, FileMeta>,
}

impl ImageFs {
    /// Indexes a tar archive (blocking: call from `spawn_blocking`). `tar` must stay
    /// readable for as long as contents are read; an unlinked temporary file is ideal.
    pub fn index(mut tar: File) -> Result<ImageFs> {
        let bad = |e: std::io::Error| DockerError::io("reading the exported filesystem", e);
        tar.seek(SeekFrom::Start(0)).map_err(bad)?;
        let mut files = BTreeMap::new();
        {
            let mut archive = tar::Archive::new(&mut tar);
            for entry in archive.entries().map_err(bad)? {
                let entry = entry.map_err(bad)?;
                if let Some(meta) = entry_meta(&entry, &files).map_err(bad)? {
                    files.insert(meta.path.clone(), meta);
                }
            }
        }
        add_missing_dirs(&mut files);
        Ok(ImageFs {
            tar: Arc::new(tar),
            files,
        })
    }

    /// How many paths the image has.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True for an image without a single path (never the case after an export).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Every path, sorted, `/` first.
    pub fn entries(&self) -> impl Iterator<Item = &FileMeta> {
        self.files.values()
    }

    /// True when `path` names something (a dangling symlink counts).
    pub fn exists(&self, path: &str) -> bool {
        self.lstat(path).is_some()
    }

    /// What `path` names, not following a final symlink (like `lstat`).
    pub fn lstat(&self, path: &str) -> Option<&FileMeta> {
        let at = resolve(path, false, |p| self.node(p)).ok()?;
        self.files.get(&at)
    }

    /// What `path` leads to, following every symlink (like `stat`).
    pub fn stat(&self, path: &str) -> Option<&FileMeta> {
        self.files.get(&self.resolve(path).ok()?)
    }

    /// The path `path` leads to after following every symlink inside the image, which
    /// must exist.
    pub fn resolve(&self, path: &str) -> Result<String> {
        let at =
            resolve(path, true, |p| self.node(p)).map_err(|e| not_in_image(path, e.to_string()))?;
        if self.files.contains_key(&at) {
            Ok(at)
        } else {
            Err(not_in_image(path, format!("{at} does not exist")))
        }
    }

    /// The entries of the directory `path` leads to, sorted by name.
    pub fn read_dir(&self, path: &str) -> Result<Vec<&FileMeta>> {
        let dir = self.resolve(path)?;
        if self.files[&dir].kind != FileKind::Dir {
            return Err(not_in_image(path, "is not a directory".into()));
        }
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        Ok(self
            .files
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| p.len() > prefix.len() && !p[prefix.len()..].contains('/'))
            .map(|(_, meta)| meta)
            .collect())
    }

    /// The contents of the regular file `path` leads to, refusing files over `limit` bytes.
    pub async fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>> {
        let meta = self
            .stat(path)
            .ok_or_else(|| not_in_image(path, "does not exist".into()))?;
        if meta.kind != FileKind::File {
            return Err(not_in_image(
                path,
                format!("is not a regular file ({:?})", meta.kind),
            ));
        }
        if meta.size > limit {
            return Err(DockerError::FileTooLarge {
                path: path.to_string(),
                size: meta.size,
                limit,
            });
        }
        let (tar, offset, size) = (self.tar.clone(), meta.data_offset, meta.size as usize);
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; size];
            tar.read_exact_at(&mut buf, offset).map(|()| buf)
        });
        let io = |e| DockerError::io(format!("reading {path} from the exported filesystem"), e);
        read.await
            .map_err(|e| io(std::io::Error::other(e)))?
            .map_err(io)
    }

    fn node(&self, path: &str) -> Option<Node> {
        let meta = self.files.get(path)?;
        Some(match meta.kind {
            FileKind::Dir => Node::Dir,
            FileKind::Symlink => Node::Symlink(meta.link_target.clone().unwrap_or_default()),
            _ => Node::Other,
        })
    }
}

fn not_in_image(path: &str, detail: String) -> DockerError {
    DockerError::NotInImage {
        path: path.to_string(),
        detail,
    }
}

/// The metadata of one archive entry; hard links become the file they link to (which
/// comes earlier in the archive). Entry types a filesystem cannot hold are skipped.
fn entry_meta<R: Read>(
    entry: &tar::Entry<'_, R>,
    seen: &BTreeMap<String, FileMeta>,
) -> std::io::Result<Option<FileMeta>> {
    let header = entry.header();
    let path = normalize(&entry.path()?.to_string_lossy());
    let link = entry.link_name()?.map(|l| l.to_string_lossy().into_owned());
    let mut meta = FileMeta {
        path,
        kind: FileKind::File,
        mode: header.mode()? & 0o7777,
        uid: header.uid()?,
        gid: header.gid()?,
        size: 0,
        link_target: None,
        data_offset: 0,
    };
    match header.entry_type() {
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            meta.size = entry.size();
            meta.data_offset = entry.raw_file_position();
        }
        EntryType::Directory => meta.kind = FileKind::Dir,
        EntryType::Symlink => {
            meta.kind = FileKind::Symlink;
            meta.link_target = link;
        }
        EntryType::Link => {
            let target = normalize(&link.unwrap_or_default());
            match seen.get(&target) {
                Some(original) => {
                    meta.size = original.size;
                    meta.data_offset = original.data_offset;
                }
                None => return Ok(None),
            }
        }
        EntryType::Char => meta.kind = FileKind::CharDevice,
        EntryType::Block => meta.kind = FileKind::BlockDevice,
        EntryType::Fifo => meta.kind = FileKind::Fifo,
        _ => return Ok(None),
    }
    Ok(Some(meta))
}

/// Adds directories the archive implies but does not list (root-owned, 0755), and `/`.
fn add_missing_dirs(files: &mut BTreeMap<String, FileMeta>) {
    let mut missing = Vec::new();
    for path in files.keys() {
        let mut dir = parent(path);
        while !files.contains_key(dir) && !missing.iter().any(|m: &String| m == dir) {
            missing.push(dir.to_string());
            if dir == "/" {
                break;
            }
            dir = parent(dir);
        }
    }
    if !files.contains_key("/") && !missing.iter().any(|m| m == "/") {
        missing.push("/".into());
    }
    for path in missing {
        let meta = FileMeta {
            path: path.clone(),
            kind: FileKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            link_target: None,
            data_offset: 0,
        };
        files.insert(path, meta);
    }
}

#[cfg(test)]
#[path = "filesystem_tests.rs"]
pub(crate) mod tests;
