//! OCI image manifests (images and artifacts) and provenance annotations.
//!
//! Manifests are serialised with a fixed field order and sorted annotations, so the same
//! image and annotations give the same manifest bytes and digest.

use super::error::PushError;
use crate::oci::{self, Descriptor, Digest};
use serde::Serialize;
use std::collections::BTreeMap;

/// `org.opencontainers.image.created`: RFC 3339 date-time of the build.
pub const ANN_CREATED: &str = "org.opencontainers.image.created";
/// `org.opencontainers.image.revision`: source control revision.
pub const ANN_REVISION: &str = "org.opencontainers.image.revision";
/// `org.opencontainers.image.source`: URL of the source.
pub const ANN_SOURCE: &str = "org.opencontainers.image.source";
/// `org.opencontainers.image.version`: version of the packaged software.
pub const ANN_VERSION: &str = "org.opencontainers.image.version";
/// Whether the working tree had uncommitted changes (`true`/`false`).
pub const ANN_DIRTY: &str = "io.imgflow.source.dirty";
/// Version of imgflow that pushed the image.
pub const ANN_IMGFLOW_VERSION: &str = "io.imgflow.version";
/// Prefix of one annotation per build argument (`io.imgflow.build-arg.NAME`).
pub const ANN_BUILD_ARG_PREFIX: &str = "io.imgflow.build-arg.";

/// Where an image comes from; turned into manifest annotations by
/// [`Provenance::annotations`]. Empty fields are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// Git commit of the sources.
    pub revision: Option<String>,
    /// Whether the working tree had uncommitted changes.
    pub dirty: Option<bool>,
    /// Build time, RFC 3339 (e.g. `2026-12-02T16:00:00Z`).
    pub created: Option<String>,
    /// Version of the software in the image (e.g. the first tag).
    pub version: Option<String>,
    /// URL of the sources.
    pub source: Option<String>,
    /// Build arguments passed to the build.
    pub build_args: BTreeMap<String, String>,
    /// Further annotations, added last (they override the ones above).
    pub extra: BTreeMap<String, String>,
}

impl Provenance {
    /// The annotations, with the imgflow version always included.
    pub fn annotations(&self) -> Result<BTreeMap<String, String>, PushError> {
        let mut out = BTreeMap::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                out.insert(k.to_string(), v.clone());
            }
        };
        put(ANN_REVISION, &self.revision);
        put(ANN_CREATED, &self.created);
        put(ANN_VERSION, &self.version);
        put(ANN_SOURCE, &self.source);
        if let Some(dirty) = self.dirty {
            out.insert(ANN_DIRTY.to_string(), dirty.to_string());
        }
        out.insert(
            ANN_IMGFLOW_VERSION.to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        );
        for (name, value) in &self.build_args {
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(PushError::Invalid(format!(
                    "build argument name {name:?} cannot be an annotation key"
                )));
            }
            out.insert(format!("{ANN_BUILD_ARG_PREFIX}{name}"), value.clone());
        }
        out.extend(self.extra.clone());
        Ok(out)
    }
}

/// An OCI image manifest as written by imgflow.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageManifest<'a> {
    schema_version: u32,
    media_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<&'a str>,
    config: &'a Descriptor,
    layers: &'a [Descriptor],
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a Descriptor>,
    #[serde(skip_serializing_if = "no_annotations")]
    annotations: &'a BTreeMap<String, String>,
}

fn no_annotations(annotations: &&BTreeMap<String, String>) -> bool {
    annotations.is_empty()
}

/// A plain descriptor (media type, digest, size).
pub fn descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest,
        size,
        artifact_type: None,
        annotations: None,
        platform: None,
        urls: None,
        data: None,
    }
}

/// The bytes of an OCI image manifest for `config` and `layers`.
pub fn image_manifest(
    config: &Descriptor,
    layers: &[Descriptor],
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    serialize(&ImageManifest {
        schema_version: 2,
        media_type: oci::OCI_MANIFEST,
        artifact_type: None,
        config,
        layers,
        subject: None,
        annotations,
    })
}

/// The bytes of an artifact manifest: an OCI image manifest with `artifactType`, the
/// empty config (`{}`), `layers` as its content and `subject` the manifest it refers to.
pub fn artifact_manifest(
    artifact_type: &str,
    layers: &[Descriptor],
    subject: &Descriptor,
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    let config = empty_descriptor();
    serialize(&ImageManifest {
        schema_version: 2,
        media_type: oci::OCI_MANIFEST,
        artifact_type: Some(artifact_type),
        config: &config,
        layers,
        subject: Some(subject),
        annotations,
    })
}

/// The content of the empty descriptor.
pub const EMPTY_JSON: &[u8] = b"{}";

/// The OCI empty descriptor: `application/vnd.oci.empty.v1+json`, content `{}`.
pub fn empty_descriptor() -> Descriptor {
    descriptor(
        oci::OCI_EMPTY,
        Digest::sha256(EMPTY_JSON),
        EMPTY_JSON.len() as u64,
    )
}

fn serialize(m: &ImageManifest<'_>) -> Vec<u8> {
    serde_json::to_vec(m).expect("a manifest always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{Manifest, ManifestKind};

    #[test]
    fn provenance_becomes_sorted_annotations() {
        let p = Provenance {
            revision: Some("abc1234".into()),
            dirty: Some(true),
            created: Some("2026-12-02T16:00:00Z".into()),
            version: Some("3.5.1".into()),
            source: Some(String::new()),
            build_args: [("SPARK_VERSION".to_string(), "3.5.1".to_string())].into(),
            extra: [(ANN_VERSION.to_string(), "override".to_string())].into(),
        };
        let a = p.annotations().unwrap();
        assert_eq!(a[ANN_REVISION], "abc1234");
        assert_eq!(a[ANN_DIRTY], "true");
        assert_eq!(a[ANN_CREATED], "2026-12-02T16:00:00Z");
        assert_eq!(a["io.imgflow.build-arg.SPARK_VERSION"], "3.5.1");
        assert_eq!(a[ANN_VERSION], "override");
        assert_eq!(a[ANN_IMGFLOW_VERSION], env!("CARGO_PKG_VERSION"));
        assert!(!a.contains_key(ANN_SOURCE), "empty values are left out");
        let bad = Provenance {
            build_args: [("A B".to_string(), "x".to_string())].into(),
            ..Provenance::default()
        };
        assert!(bad.annotations().is_err());
    }

    #[test]
    fn manifests_parse_as_oci_and_are_stable() {
        let config = descriptor(oci::OCI_CONFIG, Digest::sha256(b"cfg"), 3);
        let layers = vec![descriptor(oci::OCI_LAYER_TAR_GZIP, Digest::sha256(b"l"), 1)];
        let ann: BTreeMap<String, String> = [(ANN_REVISION.into(), "x".into())].into();
        let body = image_manifest(&config, &layers, &ann);
        assert_eq!(body, image_manifest(&config, &layers, &ann));
        let m = Manifest::parse(&body, Some(oci::OCI_MANIFEST)).unwrap();
        assert_eq!(m.kind, ManifestKind::Image);
        assert_eq!(m.blobs.len(), 2);
        assert_eq!(m.annotations.unwrap()[ANN_REVISION], "x");
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"schemaVersion":2,"mediaType":"#),
            "{text}"
        );

        let subject = descriptor(oci::OCI_MANIFEST, Digest::sha256(&body), body.len() as u64);
        let art = artifact_manifest("application/x.report", &layers, &subject, &BTreeMap::new());
        let m = Manifest::parse(&art, Some(oci::OCI_MANIFEST)).unwrap();
        assert_eq!(m.artifact_type.as_deref(), Some("application/x.report"));
        assert_eq!(m.subject.unwrap().digest, subject.digest);
        assert_eq!(
            m.blobs[0].digest.to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert!(!String::from_utf8(art).unwrap().contains("annotations"));
    }
}
