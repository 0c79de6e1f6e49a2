//! Building real images on disk without a daemon: a small ustar writer, gzip through the
//! system `gzip`, and OCI image layouts (oci-layout, index.json, blobs/sha256/...).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::sha256_digest;

/// OCI media types used by the builders.
pub mod media {
    /// OCI image manifest.
    pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// Gzip-compressed OCI layer.
    pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// Docker schema 2 manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
}

/// One entry of a tar archive.
#[derive(Debug, Clone)]
pub enum TarEntry {
    /// A regular file with contents and permission bits.
    File {
        /// Relative path inside the archive.
        path: String,
        /// File contents.
        data: Vec<u8>,
        /// Permission bits, e.g. `0o644`.
        mode: u32,
    },
    /// A directory (mode 0755).
    Dir {
        /// Relative path inside the archive.
        path: String,
    },
    /// A symbolic link.
    Symlink {
        /// Relative path inside the archive.
        path: String,
        /// Link target.
        target: String,
    },
}

impl TarEntry {
    /// A regular file.
    pub fn file(path: &str, data: Vec<u8>, mode: u32) -> TarEntry {
        TarEntry::File {
            path: path.to_string(),
            data,
            mode,
        }
    }

    /// A directory.
    pub fn dir(path: &str) -> TarEntry {
        TarEntry::Dir {
            path: path.to_string(),
        }
    }

    /// A symbolic link.
    pub fn symlink(path: &str, target: &str) -> TarEntry {
        TarEntry::Symlink {
            path: path.to_string(),
            target: target.to_string(),
        }
    }
}

/// Serialises `entries` as a deterministic POSIX ustar archive (owner root, mtime 0).
pub fn tar(entries: &[TarEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let (path, mode, size, kind, link, data): (&str, u32, usize, u8, &str, &[u8]) = match entry
        {
            TarEntry::File { path, data, mode } => (path, *mode, data.len(), b'0', "", data),
            TarEntry::Dir { path } => (path, 0o755, 0, b'5', "", &[]),
            TarEntry::Symlink { path, target } => (path, 0o777, 0, b'2', target, &[]),
        };
        let name = if kind == b'5' && !path.ends_with('/') {
            format!("{path}/")
        } else {
            path.to_string()
        };
        assert!(name.len() <= 100 && link.len() <= 100, "tar path too long");
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        put_octal(&mut h[100..108], mode as u64);
        put_octal(&mut h[108..116], 0);
        put_octal(&mut h[116..124], 0);
        put_octal(&mut h[124..136], size as u64);
        put_octal(&mut h[136..148], 0);
        h[148..156].fill(b' ');
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[265..269].copy_from_slice(b"root");
        h[297..301].copy_from_slice(b"root");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        let chk = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(chk.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn put_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    assert_eq!(text.len(), digits, "value {value} does not fit a tar field");
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
}

/// Compresses `data` with the system `gzip -n` (no name/timestamp: deterministic).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .args(["-n", "-6", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning gzip (Debian package gzip)");
    let mut stdin = child.stdin.take().expect("gzip stdin");
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .expect("gzip stdout")
        .read_to_end(&mut out)
        .expect("reading gzip output");
    writer
        .join()
        .expect("gzip writer thread")
        .expect("writing to gzip");
    assert!(
        child.wait().expect("waiting for gzip").success(),
        "gzip failed"
    );
    out
}

/// A content descriptor (media type, digest, size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// `sha256:...` digest.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

impl Descriptor {
    /// Describes `bytes` with the given media type.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
        }
    }

    /// The descriptor as JSON.
    pub fn to_json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// An image written into a layout.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// Descriptor of the manifest.
    pub manifest: Descriptor,
    /// The exact manifest bytes.
    pub manifest_bytes: Vec<u8>,
    /// Descriptor of the config blob.
    pub config: Descriptor,
    /// Descriptors of the (gzip) layers, bottom first.
    pub layers: Vec<Descriptor>,
}

/// An OCI image layout directory being written.
pub struct OciLayout {
    dir: PathBuf,
    refs: Vec<Value>,
}

impl OciLayout {
    /// Creates `dir` with `oci-layout` and an empty `blobs/sha256`.
    pub fn create(dir: &Path) -> OciLayout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("creating layout dirs");
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("writing oci-layout");
        let layout = OciLayout {
            dir: dir.to_path_buf(),
            refs: Vec::new(),
        };
        layout.write_index();
        layout
    }

    /// The layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores a blob and returns its descriptor.
    pub fn put_blob(&self, media_type: &str, bytes: &[u8]) -> Descriptor {
        let desc = Descriptor::of(media_type, bytes);
        let hex = desc.digest.trim_start_matches("sha256:");
        std::fs::write(self.dir.join("blobs/sha256").join(hex), bytes).expect("writing blob");
        desc
    }

    /// Writes an image (gzip layers from `layers`, a config for `arch`, an OCI manifest
    /// with `annotations`) and returns what was written. Not referenced from index.json
    /// until [`OciLayout::tag`] is called.
    pub fn add_image(&self, arch: &str, layers: &[Vec<TarEntry>], annotation: &str) -> BuiltImage {
        let mut diff_ids = Vec::new();
        let mut layer_descs = Vec::new();
        for entries in layers {
            let raw = tar(entries);
            diff_ids.push(sha256_digest(&raw));
            layer_descs.push(self.put_blob(media::LAYER_GZIP, &gzip(&raw)));
        }
        let config = json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": layers.iter().enumerate().map(|(i, _)| json!({
                "created": "2024-01-01T00:00:00Z",
                "created_by": format!("imgflow test layer {i}")
            })).collect::<Vec<_>>()
        });
        let config_bytes = serde_json::to_vec(&config).expect("config JSON");
        let config_desc = self.put_blob(media::CONFIG, &config_bytes);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media::MANIFEST,
            "config": config_desc.to_json(),
            "layers": layer_descs.iter().map(Descriptor::to_json).collect::<Vec<_>>(),
            "annotations": {"org.opencontainers.image.description": annotation}
        });
        let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("manifest JSON");
        let manifest_desc = self.put_blob(media::MANIFEST, &manifest_bytes);
        BuiltImage {
            manifest: manifest_desc,
            manifest_bytes,
            config: config_desc,
            layers: layer_descs,
        }
    }

    /// Writes an image index over `images` (each with its platform architecture) and
    /// returns its descriptor and bytes.
    pub fn add_index(&self, images: &[(&BuiltImage, &str)]) -> (Descriptor, Vec<u8>) {
        let manifests: Vec<Value> = images
            .iter()
            .map(|(img, arch)| {
                let mut d = img.manifest.to_json();
                d["platform"] = json!({"architecture": arch, "os": "linux"});
                d
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": media::INDEX, "manifests": manifests});
        let bytes = serde_json::to_vec_pretty(&index).expect("index JSON");
        (self.put_blob(media::INDEX, &bytes), bytes)
    }

    /// Points reference `name` in index.json at `desc` (a manifest or an index).
    pub fn tag(&mut self, name: &str, desc: &Descriptor) {
        let mut entry = desc.to_json();
        entry["annotations"] = json!({"org.opencontainers.image.ref.name": name});
        self.refs.push(entry);
        self.write_index();
    }

    fn write_index(&self) {
        let index = json!({"schemaVersion": 2, "manifests": self.refs});
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec_pretty(&index).expect("index.json"),
        )
        .expect("writing index.json");
    }
}

/// Reads `index.json` of a layout and returns the descriptor tagged `name`.
pub fn read_ref(layout_dir: &Path, name: &str) -> Descriptor {
    let text = std::fs::read(layout_dir.join("index.json"))
        .unwrap_or_else(|e| panic!("reading {}/index.json: {e}", layout_dir.display()));
    let index: Value = serde_json::from_slice(&text).expect("index.json is JSON");
    let entries = index["manifests"].as_array().expect("index.json manifests");
    let entry = entries
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .unwrap_or_else(|| panic!("no ref {name:?} in index.json: {index}"));
    Descriptor {
        media_type: entry["mediaType"].as_str().unwrap_or_default().to_string(),
        digest: entry["digest"].as_str().expect("digest").to_string(),
        size: entry["size"].as_u64().expect("size"),
    }
}

/// Reads a blob of a layout by digest and checks that its content matches the digest.
pub fn read_blob(layout_dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("unexpected digest {digest}"));
    let path = layout_dir.join("blobs/sha256").join(hex);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert_eq!(
        sha256_digest(&bytes),
        digest,
        "blob {} is corrupt",
        path.display()
    );
    bytes
}
