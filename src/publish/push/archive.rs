//! Reading a `docker save` archive without unpacking it.
//!
//! Both layouts are read through the archive's `manifest.json`
//! (`[{"Config": PATH, "RepoTags": [...], "Layers": [PATH, ...]}]`):
//!
//! - docker 25 and later write an OCI image layout (`index.json`, `blobs/sha256/<hex>`)
//!   whose `manifest.json` points at the blobs;
//! - older versions write `<id>/layer.tar` files (a repeated layer is a symlink to the
//!   first copy) and `<id>.json` configs.
//!
//! The archive is indexed once (member path -> offset and size in the file); a member is
//! then read straight from its place in the tar file, so layers are streamed, several at
//! a time, and never extracted to disk or memory. Layers are expected uncompressed (their
//! digest is the diff id); a gzip-compressed one is accepted too (see
//! [`super::gzip::recompress`]).

use super::error::PushError;
use crate::oci::Digest;
use serde::Deserialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Longest config or `manifest.json` read into memory.
const MAX_JSON: u64 = 64 << 20;

/// Symlink hops followed before giving up.
const MAX_HOPS: usize = 8;

/// One entry of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SavedImage {
    /// Path of the image config in the archive.
    #[serde(rename = "Config")]
    pub config: String,
    /// `repo:tag` names the image was saved under.
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    /// Paths of the layer tars, base layer first.
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
}

/// Where a member's bytes are in the archive file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Member {
    File { offset: u64, size: u64 },
    Link(String),
}

/// A `docker save` archive, indexed.
#[derive(Debug)]
pub struct DockerArchive {
    path: PathBuf,
    members: HashMap<String, Member>,
    images: Vec<SavedImage>,
}

/// A layer of an image, located in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSource {
    /// Position in the image, base layer 0.
    pub index: usize,
    /// Path of the member in the archive (as `manifest.json` names it).
    pub member: String,
    /// The diff id the image config gives for it.
    pub diff_id: Digest,
    /// Size of the member in the archive.
    pub size: u64,
}

/// An image of the archive: its config (exact bytes) and its layers.
#[derive(Debug, Clone)]
pub struct SavedImageData {
    /// The config JSON, byte for byte (its digest is the image id).
    pub config: bytes::Bytes,
    /// The layers, base first.
    pub layers: Vec<LayerSource>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<Digest>,
}

#[derive(Deserialize)]
struct ConfigRootFs {
    rootfs: RootFs,
}

/// `a/./b/../c` -> `a/c`, without leading `./` or `/`.
fn normalize(path: &str) -> String {
    crate::publish::tar_path::components(path).join("/")
}

impl DockerArchive {
    /// Index the archive at `path` and read its `manifest.json`.
    pub fn open(path: impl AsRef<Path>) -> Result<DockerArchive, PushError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path)
            .map_err(|e| PushError::io(format!("opening {}", path.display()), e))?;
        let bad = |reason: String| PushError::Archive {
            path: path.clone(),
            reason,
        };
        let mut members = HashMap::new();
        let mut tar = tar::Archive::new(BufReader::new(file));
        // Seeking over member data: indexing reads the headers only.
        let entries = tar
            .entries_with_seek()
            .map_err(|e| bad(format!("not a tar archive: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| bad(format!("corrupt tar archive: {e}")))?;
            let name = entry
                .path()
                .map_err(|e| bad(format!("bad member name: {e}")))?
                .to_string_lossy()
                .into_owned();
            let name = normalize(&name);
            let kind = entry.header().entry_type();
            if kind.is_file() {
                let member = Member::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                };
                members.insert(name, member);
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name()
                    .map_err(|e| bad(format!("bad link in {name}: {e}")))?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // Symlinks are relative to their directory, hard links to the root.
                let resolved = if kind.is_symlink() && !target.starts_with('/') {
                    let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                    normalize(&format!("{dir}/{target}"))
                } else {
                    normalize(&target)
                };
                members.insert(name, Member::Link(resolved));
            }
        }
        let mut archive = DockerArchive {
            path,
            members,
            images: Vec::new(),
        };
        let manifest = archive.read_small("manifest.json")?;
        archive.images = serde_json::from_slice(&manifest).map_err(|e| {
            archive.error(format!("manifest.json is not a docker save manifest: {e}"))
        })?;
        if archive.images.is_empty() {
            return Err(archive.error("manifest.json lists no image"));
        }
        Ok(archive)
    }

    /// The archive file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The images `manifest.json` lists.
    pub fn images(&self) -> &[SavedImage] {
        &self.images
    }

    fn error(&self, reason: impl Into<String>) -> PushError {
        PushError::Archive {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// Offset and size of `member`, following links.
    fn locate(&self, member: &str) -> Result<(u64, u64), PushError> {
        let mut name = normalize(member);
        for _ in 0..MAX_HOPS {
            match self.members.get(&name) {
                Some(Member::File { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Link(target)) => name = target.clone(),
                None => return Err(self.error(format!("no member {member:?}"))),
            }
        }
        Err(self.error(format!("too many links from {member:?}")))
    }

    /// Size of `member` in bytes.
    pub fn member_size(&self, member: &str) -> Result<u64, PushError> {
        Ok(self.locate(member)?.1)
    }

    /// A reader of `member`'s bytes, straight from the archive file.
    pub fn open_member(&self, member: &str) -> Result<impl Read + Send + 'static, PushError> {
        let (offset, size) = self.locate(member)?;
        let context = || format!("reading {member} in {}", self.path.display());
        let mut file = File::open(&self.path).map_err(|e| PushError::io(context(), e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| PushError::io(context(), e))?;
        Ok(file.take(size))
    }

    /// A small member (JSON) read into memory.
    pub fn read_small(&self, member: &str) -> Result<Vec<u8>, PushError> {
        let size = self.member_size(member)?;
        if size > MAX_JSON {
            return Err(self.error(format!("{member} is too large ({size} bytes)")));
        }
        let mut out = Vec::with_capacity(size as usize);
        self.open_member(member)?
            .read_to_end(&mut out)
            .map_err(|e| PushError::io(format!("reading {member}"), e))?;
        Ok(out)
    }

    /// The position in `manifest.json` of the image saved as `repo_tag`, else of the only
    /// image.
    pub fn find_image(&self, repo_tag: Option<&str>) -> Result<usize, PushError> {
        match repo_tag {
            Some(wanted) => self
                .images
                .iter()
                .position(|i| i.repo_tags.iter().flatten().any(|t| t == wanted))
                .ok_or_else(|| self.error(format!("no image tagged {wanted:?}"))),
            None if self.images.len() == 1 => Ok(0),
            None => Err(self.error(format!(
                "{} images in the archive: name the one to push",
                self.images.len()
            ))),
        }
    }

    /// The config and layers of image number `index` of `manifest.json`.
    pub fn image(&self, index: usize) -> Result<SavedImageData, PushError> {
        let image = self
            .images
            .get(index)
            .ok_or_else(|| self.error(format!("no image number {index}")))?;
        let config = self.read_small(&image.config)?;
        let parsed: ConfigRootFs = serde_json::from_slice(&config)
            .map_err(|e| self.error(format!("config {}: {e}", image.config)))?;
        let diff_ids = parsed.rootfs.diff_ids;
        if diff_ids.len() != image.layers.len() {
            return Err(self.error(format!(
                "config {} names {} layers, manifest.json {}",
                image.config,
                diff_ids.len(),
                image.layers.len()
            )));
        }
        let mut layers = Vec::with_capacity(diff_ids.len());
        for (index, (member, diff_id)) in image.layers.iter().zip(diff_ids).enumerate() {
            layers.push(LayerSource {
                index,
                member: member.clone(),
                diff_id,
                size: self.member_size(member)?,
            });
        }
        Ok(SavedImageData {
            config: config.into(),
            layers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(tar: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, path, data).unwrap();
    }

    fn link(tar: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Symlink);
        tar.append_link(&mut h, path, target).unwrap();
    }

    fn config(diff_ids: &[&[u8]]) -> Vec<u8> {
        let ids: Vec<String> = diff_ids
            .iter()
            .map(|d| Digest::sha256(d).to_string())
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": ids}
        }))
        .unwrap()
    }

    fn write(dir: &Path, tar: tar::Builder<Vec<u8>>) -> PathBuf {
        let path = dir.join("image.tar");
        std::fs::write(&path, tar.into_inner().unwrap()).unwrap();
        path
    }

    #[test]
    fn reads_the_oci_layout_of_current_docker() {
        let dir = tempfile::tempdir().unwrap();
        let (l1, l2) = (b"first layer".as_slice(), b"second".as_slice());
        let cfg = config(&[l1, l2]);
        let blob = |d: &[u8]| format!("blobs/sha256/{}", Digest::sha256(d).hex());
        let manifest = serde_json::json!([{
            "Config": blob(&cfg), "RepoTags": ["team/app:1"],
            "Layers": [blob(l1), blob(l2)]
        }]);
        let mut tar = tar::Builder::new(Vec::new());
        add(&mut tar, "index.json", b"{}");
        add(&mut tar, &blob(l1), l1);
        add(&mut tar, &blob(l2), l2);
        add(&mut tar, &blob(&cfg), &cfg);
        add(&mut tar, "manifest.json", manifest.to_string().as_bytes());
        let archive = DockerArchive::open(write(dir.path(), tar)).unwrap();
        assert_eq!(archive.find_image(None).unwrap(), 0);
        assert_eq!(archive.find_image(Some("team/app:1")).unwrap(), 0);
        assert!(archive.find_image(Some("team/app:2")).is_err());
        let image = archive.image(0).unwrap();
        assert_eq!(&image.config[..], &cfg[..]);
        assert_eq!(image.layers.len(), 2);
        assert_eq!(image.layers[1].diff_id, Digest::sha256(l2));
        assert_eq!(image.layers[1].size, l2.len() as u64);
        let mut back = Vec::new();
        archive
            .open_member(&image.layers[0].member)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, l1);
    }

    #[test]
    fn reads_the_legacy_layout_with_symlinked_layers() {
        let dir = tempfile::tempdir().unwrap();
        let l1 = b"shared layer".as_slice();
        let cfg = config(&[l1, l1]);
        let manifest = serde_json::json!([{
            "Config": "abc.json", "RepoTags": null,
            "Layers": ["aaa/layer.tar", "bbb/layer.tar"]
        }]);
        let mut tar = tar::Builder::new(Vec::new());
        add(&mut tar, "./aaa/layer.tar", l1);
        link(&mut tar, "bbb/layer.tar", "../aaa/layer.tar");
        add(&mut tar, "abc.json", &cfg);
        add(&mut tar, "manifest.json", manifest.to_string().as_bytes());
        let archive = DockerArchive::open(write(dir.path(), tar)).unwrap();
        let image = archive.image(archive.find_image(None).unwrap()).unwrap();
        for layer in &image.layers {
            let mut back = Vec::new();
            archive
                .open_member(&layer.member)
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, l1, "{}", layer.member);
        }
    }

    #[test]
    fn rejects_inconsistent_archives() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(&[b"a"]);
        let manifest = serde_json::json!([{"Config": "c.json", "Layers": ["l1", "l2"]}]);
        let mut tar = tar::Builder::new(Vec::new());
        add(&mut tar, "c.json", &cfg);
        add(&mut tar, "l1", b"a");
        add(&mut tar, "l2", b"b");
        add(&mut tar, "manifest.json", manifest.to_string().as_bytes());
        let archive = DockerArchive::open(write(dir.path(), tar)).unwrap();
        let err = archive.image(0).unwrap_err().to_string();
        assert!(err.contains("names 1 layers"), "{err}");

        let mut tar = tar::Builder::new(Vec::new());
        add(&mut tar, "index.json", b"{}");
        let err = DockerArchive::open(write(dir.path(), tar)).unwrap_err();
        assert!(err.to_string().contains("manifest.json"), "{err}");
        assert_eq!(normalize("./a/b/../c//d"), "a/c/d");
    }
}
