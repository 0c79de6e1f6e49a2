//! Manifest parsing: image manifests, indexes, artifacts and their Docker equivalents.
//!
//! The registry stores manifests byte for byte; parsing only extracts what it must
//! check and index: the kind, the referenced blobs and child manifests, the
//! `subject` and the artifact type.

use super::digest::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why a manifest is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, or not the shape of any supported manifest.
    #[error("manifest is not valid: {0}")]
    Invalid(String),
    /// Docker image manifest schema 1 (deprecated, signed JSON).
    #[error(
        "Docker schema 1 manifests are not supported; push with a current client (schema 2 or OCI)"
    )]
    Schema1,
}

/// A content descriptor (`mediaType`, `digest`, `size`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes of the referenced content.
    pub size: u64,
    /// Artifact type, for referrers and artifact manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Platform of an index entry (kept opaque).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
    /// Alternate download locations (foreign layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Embedded content, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl Descriptor {
    /// Layers whose blobs are, by design, never pushed to a registry.
    pub fn is_non_distributable(&self) -> bool {
        self.media_type.contains(".nondistributable.")
            || self.media_type == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    }
}

/// Whether a manifest is a single image/artifact or a list of manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// OCI image manifest or Docker schema 2 manifest.
    Image,
    /// OCI image index or Docker manifest list.
    Index,
}

/// What the registry needs to know about a pushed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Image or index.
    pub kind: ManifestKind,
    /// The effective media type: the `mediaType` field, else the Content-Type when it names
    /// a manifest type, else detected from the content (`manifests`: OCI image index;
    /// `config`: OCI image manifest).
    pub media_type: String,
    /// `artifactType`, or for image manifests without one, the config media type.
    pub artifact_type: Option<String>,
    /// The `subject` descriptor, when this manifest refers to another.
    pub subject: Option<Descriptor>,
    /// Blobs that must be present in the repository (config and distributable layers).
    pub blobs: Vec<Descriptor>,
    /// Child manifests that must be present (for indexes).
    pub manifests: Vec<Descriptor>,
    /// Top-level annotations.
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<serde_json::Value>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
    // Docker schema 1 markers.
    fs_layers: Option<serde_json::Value>,
}

fn kind_of_media_type(mt: &str) -> Option<ManifestKind> {
    match mt {
        super::OCI_MANIFEST | super::DOCKER_MANIFEST => Some(ManifestKind::Image),
        super::OCI_INDEX | super::DOCKER_MANIFEST_LIST => Some(ManifestKind::Index),
        _ => None,
    }
}

fn invalid(msg: impl Into<String>) -> ManifestError {
    ManifestError::Invalid(msg.into())
}

impl Manifest {
    /// Parse `body`, pushed with `content_type` (the request's Content-Type, if any).
    ///
    /// A manifest without a `mediaType` field pushed as `application/json` (or with no or
    /// another non-manifest Content-Type) gets the OCI type its content shows, so that
    /// clients negotiating manifest types (`docker pull`) find it.
    pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Manifest, ManifestError> {
        let content_type = content_type
            .map(|c| c.split(';').next().unwrap_or(c).trim())
            .filter(|c| !c.is_empty());
        if content_type.is_some_and(|c| super::DOCKER_SCHEMA1.contains(&c)) {
            return Err(ManifestError::Schema1);
        }
        let raw: RawManifest =
            serde_json::from_slice(body).map_err(|e| invalid(format!("bad JSON: {e}")))?;
        if raw.fs_layers.is_some()
            || raw
                .media_type
                .as_deref()
                .is_some_and(|m| super::DOCKER_SCHEMA1.contains(&m))
        {
            return Err(ManifestError::Schema1);
        }
        match &raw.schema_version {
            Some(v) if v.as_u64() == Some(2) => {}
            Some(v) if v.as_u64() == Some(1) => return Err(ManifestError::Schema1),
            Some(v) => return Err(invalid(format!("schemaVersion must be 2, got {v}"))),
            None => return Err(invalid("schemaVersion is missing (must be 2)")),
        }
        if let (Some(field), Some(ct)) = (raw.media_type.as_deref(), content_type) {
            if field != ct && kind_of_media_type(ct).is_some() {
                return Err(invalid(format!(
                    "mediaType {field:?} does not match Content-Type {ct:?}"
                )));
            }
        }
        // The `mediaType` field, else a Content-Type naming a manifest type. A generic
        // Content-Type (`application/json`, none, ...) says nothing: the shape decides.
        let declared = raw.media_type.clone().or(content_type
            .filter(|c| kind_of_media_type(c).is_some())
            .map(str::to_string));
        let kind = match declared.as_deref().and_then(kind_of_media_type) {
            Some(k) => k,
            // An unknown or missing media type: tell by shape.
            None if raw.manifests.is_some() && raw.config.is_none() => ManifestKind::Index,
            None if raw.config.is_some() => ManifestKind::Image,
            None => {
                return Err(invalid(format!(
                    "unsupported manifest media type {:?}",
                    declared.unwrap_or_default()
                )))
            }
        };
        let media_type = declared.unwrap_or_else(|| match kind {
            ManifestKind::Image => super::OCI_MANIFEST.to_string(),
            ManifestKind::Index => super::OCI_INDEX.to_string(),
        });
        let mut m = Manifest {
            kind,
            media_type,
            artifact_type: raw.artifact_type,
            subject: raw.subject,
            blobs: Vec::new(),
            manifests: Vec::new(),
            annotations: raw.annotations,
        };
        match kind {
            ManifestKind::Image => {
                let config = raw
                    .config
                    .ok_or_else(|| invalid("image manifest has no config descriptor"))?;
                let layers = raw.layers.unwrap_or_default();
                if m.artifact_type.is_none() {
                    m.artifact_type = Some(config.media_type.clone());
                }
                m.blobs.push(config);
                m.blobs
                    .extend(layers.into_iter().filter(|l| !l.is_non_distributable()));
            }
            ManifestKind::Index => {
                m.manifests = raw
                    .manifests
                    .ok_or_else(|| invalid("image index has no manifests list"))?;
            }
        }
        for d in m.blobs.iter().chain(&m.manifests) {
            if d.media_type.is_empty() {
                return Err(invalid(format!("descriptor {} has no mediaType", d.digest)));
            }
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        Digest::sha256(&[n]).to_string()
    }

    #[test]
    fn image_manifest() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":2}},
            "layers":[{{"mediaType":"{}","digest":"{}","size":3,"data":"YWJj","x-extra":1}},
                      {{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"{}","size":9}}],
            "subject":{{"mediaType":"{}","digest":"{}","size":1}},"unknownField":true}}"#,
            crate::oci::OCI_MANIFEST,
            crate::oci::OCI_CONFIG,
            d(1),
            crate::oci::OCI_LAYER_TAR,
            d(2),
            d(3),
            crate::oci::OCI_MANIFEST,
            d(4)
        );
        let m = Manifest::parse(body.as_bytes(), Some(crate::oci::OCI_MANIFEST)).unwrap();
        assert_eq!(m.kind, ManifestKind::Image);
        assert_eq!(
            m.blobs.len(),
            2,
            "non-distributable layer must not be required"
        );
        assert_eq!(m.subject.unwrap().digest.to_string(), d(4));
        assert_eq!(m.artifact_type.as_deref(), Some(crate::oci::OCI_CONFIG));
    }

    #[test]
    fn index_and_rejections() {
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{}","size":5}}]}}"#,
            crate::oci::OCI_MANIFEST,
            d(1)
        );
        let m = Manifest::parse(body.as_bytes(), Some(crate::oci::OCI_INDEX)).unwrap();
        assert_eq!(m.kind, ManifestKind::Index);
        assert_eq!(m.manifests.len(), 1);
        assert!(Manifest::parse(b"not json", None).is_err());
        assert!(Manifest::parse(br#"{"schemaVersion":3,"config":{}}"#, None).is_err());
        assert_eq!(
            Manifest::parse(br#"{"schemaVersion":1,"fsLayers":[]}"#, None),
            Err(ManifestError::Schema1)
        );
        let detected = Manifest::parse(body.as_bytes(), Some("application/json")).unwrap();
        assert_eq!(detected.media_type, crate::oci::OCI_INDEX);
        let mismatch = Manifest::parse(body.as_bytes(), Some(crate::oci::DOCKER_MANIFEST));
        assert!(
            mismatch.is_err(),
            "an index pushed as a Docker image manifest: {mismatch:?}"
        );
    }

    /// Without a `mediaType` field, a manifest's type is its Content-Type when that names
    /// a manifest type, and otherwise what its content shows; with the field, the field.
    #[test]
    fn media_type_detection() {
        use crate::oci::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
        let desc =
            |mt: &str, n: u8| format!(r#"{{"mediaType":"{mt}","digest":"{}","size":1}}"#, d(n));
        let image = |field: &str| {
            format!(
                r#"{{"schemaVersion":2,{field}"config":{},"layers":[{}]}}"#,
                desc(crate::oci::OCI_CONFIG, 1),
                desc(crate::oci::OCI_LAYER_TAR, 2)
            )
        };
        let index = |field: &str| {
            format!(
                r#"{{"schemaVersion":2,{field}"manifests":[{}]}}"#,
                desc(OCI_MANIFEST, 3)
            )
        };
        let generic = [
            None,
            Some("application/json"),
            Some("application/json; charset=utf-8"),
            Some("application/octet-stream"),
            Some("application/x-www-form-urlencoded"),
            Some(""),
        ];
        for ct in generic {
            let m = Manifest::parse(image("").as_bytes(), ct).unwrap();
            assert_eq!(
                (m.kind, m.media_type.as_str()),
                (ManifestKind::Image, OCI_MANIFEST),
                "{ct:?}"
            );
            let m = Manifest::parse(index("").as_bytes(), ct).unwrap();
            assert_eq!(
                (m.kind, m.media_type.as_str()),
                (ManifestKind::Index, OCI_INDEX),
                "{ct:?}"
            );
            let docker = image(&format!(r#""mediaType":"{DOCKER_MANIFEST}","#));
            let m = Manifest::parse(docker.as_bytes(), ct).unwrap();
            assert_eq!(m.media_type, DOCKER_MANIFEST, "{ct:?}");
            let list = index(&format!(r#""mediaType":"{DOCKER_MANIFEST_LIST}","#));
            let m = Manifest::parse(list.as_bytes(), ct).unwrap();
            assert_eq!(
                (m.kind, m.media_type.as_str()),
                (ManifestKind::Index, DOCKER_MANIFEST_LIST)
            );
        }
        // A Content-Type naming a manifest type still counts when the field is absent.
        let m = Manifest::parse(image("").as_bytes(), Some(DOCKER_MANIFEST)).unwrap();
        assert_eq!(m.media_type, DOCKER_MANIFEST);
        let m = Manifest::parse(index("").as_bytes(), Some(DOCKER_MANIFEST_LIST)).unwrap();
        assert_eq!(m.media_type, DOCKER_MANIFEST_LIST);
        // Neither a config nor a manifests list: nothing to detect.
        assert!(Manifest::parse(
            br#"{"schemaVersion":2,"layers":[]}"#,
            Some("application/json")
        )
        .is_err());
    }
}
