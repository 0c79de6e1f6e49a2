//! Test content: random blobs, configs and manifests, unique to each run.

use imgflow::oci::{self, Algorithm, Digest};
use rand::Rng;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Digest of the OCI empty JSON blob `{}`.
pub const EMPTY_JSON_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// Annotation key carried by every referrer manifest of the suite.
pub const ANNOTATION_KEY: &str = "org.opencontainers.conformance.case";

/// A blob: content and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Content.
    pub data: Vec<u8>,
    /// Digest of the content.
    pub digest: Digest,
}

impl Blob {
    /// A blob with a SHA-256 digest.
    pub fn new(data: impl Into<Vec<u8>>) -> Blob {
        Blob::with(Algorithm::Sha256, data)
    }

    /// A blob digested with `algorithm`.
    pub fn with(algorithm: Algorithm, data: impl Into<Vec<u8>>) -> Blob {
        let data = data.into();
        let digest = Digest::of(algorithm, &data);
        Blob { data, digest }
    }

    /// `len` random bytes.
    pub fn random(len: usize) -> Blob {
        let mut data = vec![0u8; len];
        rand::thread_rng().fill(&mut data[..]);
        Blob::new(data)
    }

    /// The OCI empty JSON blob `{}`.
    pub fn empty_json() -> Blob {
        Blob::new(b"{}".to_vec())
    }

    /// An image config naming `label`, so that each run has its own.
    pub fn config(run_id: &str, label: &str) -> Blob {
        let body = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Labels": { "org.opencontainers.conformance.run": run_id,
                                    "org.opencontainers.conformance.label": label } },
            "rootfs": { "type": "layers", "diff_ids": [] }
        });
        Blob::new(serde_json::to_vec(&body).unwrap_or_default())
    }

    /// A descriptor of this blob with `media_type`.
    pub fn descriptor(&self, media_type: &str) -> Value {
        json!({ "mediaType": media_type, "digest": self.digest.as_str(), "size": self.data.len() })
    }
}

/// A digest no registry holds (of fresh random bytes).
pub fn unknown_digest() -> Digest {
    Blob::random(32).digest
}

/// A random lowercase alphanumeric string of `len` characters.
pub fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// An `Accept` naming the manifest types `docker pull` takes (Docker schema 2 and
/// manifest lists, OCI manifests and indexes).
pub const DOCKER_PULL_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json";

/// A manifest document: bytes as pushed, digest and media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    /// The JSON bytes.
    pub body: Vec<u8>,
    /// Their SHA-256 digest.
    pub digest: Digest,
    /// The `mediaType` (also the Content-Type to push with).
    pub media_type: &'static str,
}

impl Doc {
    fn from_value(value: &Value, media_type: &'static str) -> Doc {
        let body = serde_json::to_vec(value).unwrap_or_default();
        let digest = Digest::sha256(&body);
        Doc {
            body,
            digest,
            media_type,
        }
    }

    /// A descriptor of this document.
    pub fn descriptor(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest.as_str(), "size": self.body.len() })
    }

    /// A descriptor with a `platform`, for index entries.
    pub fn platform_descriptor(&self, arch: &str) -> Value {
        let mut d = self.descriptor();
        d["platform"] = json!({ "architecture": arch, "os": "linux" });
        d
    }
}

/// Builder of OCI image manifests and indexes.
#[derive(Debug, Clone, Default)]
pub struct ManifestBuilder {
    fields: Map<String, Value>,
}

impl ManifestBuilder {
    /// An image manifest with `config` (descriptor) and `layers`.
    pub fn image(config: Value, layers: Vec<Value>) -> ManifestBuilder {
        let mut fields = Map::new();
        fields.insert("schemaVersion".into(), json!(2));
        fields.insert("mediaType".into(), json!(oci::OCI_MANIFEST));
        fields.insert("config".into(), config);
        fields.insert("layers".into(), Value::Array(layers));
        ManifestBuilder { fields }
    }

    /// An image index of `manifests` (descriptors).
    pub fn index(manifests: Vec<Value>) -> ManifestBuilder {
        let mut fields = Map::new();
        fields.insert("schemaVersion".into(), json!(2));
        fields.insert("mediaType".into(), json!(oci::OCI_INDEX));
        fields.insert("manifests".into(), Value::Array(manifests));
        ManifestBuilder { fields }
    }

    /// Set `artifactType`.
    pub fn artifact_type(mut self, t: &str) -> Self {
        self.fields.insert("artifactType".into(), json!(t));
        self
    }

    /// Set `subject`.
    pub fn subject(mut self, subject: Value) -> Self {
        self.fields.insert("subject".into(), subject);
        self
    }

    /// Add an annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        let entry = self
            .fields
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(map) = entry {
            map.insert(key.into(), json!(value));
        }
        self
    }

    /// Override `mediaType` (e.g. for Docker manifests).
    pub fn media_type(mut self, media_type: &'static str) -> Self {
        self.fields.insert("mediaType".into(), json!(media_type));
        self
    }

    /// Drop `mediaType` (allowed, though the spec asks for it); [`Doc::media_type`] is
    /// then the OCI type the content shows.
    pub fn without_media_type(mut self) -> Self {
        self.fields.remove("mediaType");
        self
    }

    /// The document.
    pub fn build(self) -> Doc {
        let media_type = match self.fields.get("mediaType").and_then(Value::as_str) {
            Some(oci::OCI_INDEX) => oci::OCI_INDEX,
            Some(oci::DOCKER_MANIFEST) => oci::DOCKER_MANIFEST,
            Some(oci::DOCKER_MANIFEST_LIST) => oci::DOCKER_MANIFEST_LIST,
            None if self.fields.contains_key("manifests") => oci::OCI_INDEX,
            _ => oci::OCI_MANIFEST,
        };
        Doc::from_value(&Value::Object(self.fields), media_type)
    }
}

/// An image manifest of `config` and `layers` with one annotation making it unique.
pub fn simple_image(config: &Blob, layers: &[&Blob], label: &str) -> Doc {
    ManifestBuilder::image(
        config.descriptor(oci::OCI_CONFIG),
        layers
            .iter()
            .map(|l| l.descriptor(oci::OCI_LAYER_TAR_GZIP))
            .collect(),
    )
    .annotation("org.opencontainers.conformance.label", label)
    .build()
}

/// Annotations of a descriptor as a map (empty when absent).
pub fn annotations_of(descriptor: &Value) -> BTreeMap<String, String> {
    descriptor
        .get("annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_json_digest_is_right() {
        assert_eq!(Blob::empty_json().digest.as_str(), EMPTY_JSON_DIGEST);
    }

    #[test]
    fn manifests_parse_with_imgflow_types() {
        let cfg = Blob::config("run", "x");
        let layer = Blob::random(10);
        let img = simple_image(&cfg, &[&layer], "a");
        let parsed = oci::Manifest::parse(&img.body, Some(img.media_type)).unwrap();
        assert_eq!(parsed.blobs.len(), 2);
        let referrer =
            ManifestBuilder::image(Blob::empty_json().descriptor(oci::OCI_EMPTY), vec![])
                .artifact_type("application/vnd.example")
                .subject(img.descriptor())
                .annotation(ANNOTATION_KEY, "r")
                .build();
        let parsed = oci::Manifest::parse(&referrer.body, None).unwrap();
        assert_eq!(parsed.subject.unwrap().digest, img.digest);
        assert_eq!(
            parsed.artifact_type.as_deref(),
            Some("application/vnd.example")
        );
        let index = ManifestBuilder::index(vec![img.platform_descriptor("amd64")]).build();
        assert_eq!(index.media_type, oci::OCI_INDEX);
        assert_eq!(random_id(8).len(), 8);
        assert_ne!(unknown_digest(), unknown_digest());
    }
}
