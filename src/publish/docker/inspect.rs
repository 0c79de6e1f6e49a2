//! [`ImageInfo`]: the part of `docker image inspect` that publish uses (metadata checks,
//! size budgets, layer diff ids), parsed from the CLI's JSON.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer};

use super::error::{DockerError, Result};

/// What publish needs to know about a local image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInfo {
    /// The image id, `sha256:...` (the digest of its config).
    pub id: String,
    /// The image's run configuration.
    #[serde(default, deserialize_with = "null_default")]
    pub config: ImageConfig,
    /// The layers' uncompressed digests (diff ids), base first.
    #[serde(rename = "RootFS", default, deserialize_with = "null_default")]
    pub root_fs: RootFs,
    /// Uncompressed size in bytes, as the daemon reports it.
    #[serde(default)]
    pub size: u64,
    /// CPU architecture, e.g. `amd64`.
    #[serde(default)]
    pub architecture: String,
    /// Operating system, e.g. `linux`.
    #[serde(default)]
    pub os: String,
    /// Tags naming this image locally.
    #[serde(default, deserialize_with = "null_default")]
    pub repo_tags: Vec<String>,
}

/// The image config's `config` object (what a container starts with).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    /// `KEY=value` entries, in order.
    #[serde(default, deserialize_with = "null_default")]
    pub env: Vec<String>,
    /// Default command, absent when the image sets none.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Entrypoint, absent when the image sets none.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Working directory (empty: `/`).
    #[serde(default, deserialize_with = "null_default")]
    pub working_dir: String,
    /// User (empty: root).
    #[serde(default, deserialize_with = "null_default")]
    pub user: String,
    /// Exposed ports such as `8888/tcp`.
    #[serde(default, deserialize_with = "set_of_keys")]
    pub exposed_ports: BTreeSet<String>,
    /// Volume mount points.
    #[serde(default, deserialize_with = "set_of_keys")]
    pub volumes: BTreeSet<String>,
    /// Labels.
    #[serde(default, deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
}

impl ImageConfig {
    /// The environment as a map (a later entry for the same key wins).
    pub fn env_map(&self) -> BTreeMap<String, String> {
        self.env
            .iter()
            .map(|entry| match entry.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (entry.clone(), String::new()),
            })
            .collect()
    }
}

/// The image's `RootFS` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFs {
    /// Diff ids (`sha256:...` of each uncompressed layer tar), base first.
    #[serde(default, deserialize_with = "null_default")]
    pub layers: Vec<String>,
}

/// Parses the output of `docker image inspect ID` (a JSON array with one image).
pub fn parse_image_inspect(json: &[u8]) -> Result<ImageInfo> {
    let bad = |detail: String| DockerError::BadOutput {
        command: "image inspect".into(),
        detail,
    };
    let mut images: Vec<ImageInfo> =
        serde_json::from_slice(json).map_err(|e| bad(format!("not image JSON: {e}")))?;
    if images.len() != 1 {
        return Err(bad(format!("expected one image, got {}", images.len())));
    }
    let image = images.remove(0);
    if !image.id.starts_with("sha256:") {
        return Err(bad(format!("image id {:?} is not sha256:...", image.id)));
    }
    Ok(image)
}

/// Reads `null` as the type's default (the daemon writes `null` for empty lists and maps).
fn null_default<'de, D, T>(de: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// Reads a `{"key": {}, ...}` object (or `null`) as the set of its keys.
fn set_of_keys<'de, D>(de: D) -> std::result::Result<BTreeSet<String>, D::Error>
where
    D: Deserializer<'de>,
{
    let map: Option<BTreeMap<String, serde::de::IgnoredAny>> = Option::deserialize(de)?;
    Ok(map.unwrap_or_default().into_keys().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSPECT: &str = r#"[{
        "Id": "sha256:4a1b0c",
        "RepoTags": ["imgflow-build/notebook:run1"],
        "RepoDigests": [],
        "Parent": "",
        "Config": {
            "Hostname": "",
            "User": "1000:1000",
            "ExposedPorts": {"8888/tcp": {}, "53/udp": {}},
            "Env": ["PATH=/usr/bin:/bin", "NOTEBOOK_HOME=/opt/nb", "EMPTY=", "A=b=c"],
            "Cmd": ["serve", "--port=8888"],
            "Image": "",
            "Volumes": {"/data": {}},
            "WorkingDir": "/opt/nb",
            "Entrypoint": ["/bin/sh", "-c"],
            "OnBuild": null,
            "Labels": {"org.opencontainers.image.title": "notebook"}
        },
        "Architecture": "amd64",
        "Os": "linux",
        "Size": 2345678,
        "RootFS": {"Type": "layers", "Layers": ["sha256:aaa", "sha256:bbb"]},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"}
    }]"#;

    #[test]
    fn parses_the_fields_checks_and_budgets_use() {
        let image = parse_image_inspect(INSPECT.as_bytes()).unwrap();
        assert_eq!(image.id, "sha256:4a1b0c");
        assert_eq!(image.size, 2_345_678);
        assert_eq!(
            (image.architecture.as_str(), image.os.as_str()),
            ("amd64", "linux")
        );
        assert_eq!(image.root_fs.layers, ["sha256:aaa", "sha256:bbb"]);
        assert_eq!(image.repo_tags, ["imgflow-build/notebook:run1"]);
        let config = &image.config;
        assert_eq!(config.user, "1000:1000");
        assert_eq!(config.working_dir, "/opt/nb");
        assert_eq!(
            config.cmd.as_deref(),
            Some(&["serve".to_string(), "--port=8888".into()][..])
        );
        assert_eq!(config.entrypoint.as_ref().map(Vec::len), Some(2));
        assert_eq!(
            config.exposed_ports.iter().collect::<Vec<_>>(),
            ["53/udp", "8888/tcp"]
        );
        assert!(config.volumes.contains("/data"));
        assert_eq!(config.labels["org.opencontainers.image.title"], "notebook");
        let env = config.env_map();
        assert_eq!(env["NOTEBOOK_HOME"], "/opt/nb");
        assert_eq!(env["EMPTY"], "");
        assert_eq!(env["A"], "b=c");
    }

    #[test]
    fn nulls_and_missing_fields_read_as_empty() {
        let json = r#"[{"Id": "sha256:1", "Config": {"Env": null, "Cmd": null,
            "Entrypoint": null, "Labels": null, "ExposedPorts": null, "Volumes": null,
            "WorkingDir": "", "User": ""}, "RootFS": {"Type": "layers"}}]"#;
        let image = parse_image_inspect(json.as_bytes()).unwrap();
        assert_eq!(image.config, ImageConfig::default());
        assert!(image.root_fs.layers.is_empty());
        let bare = parse_image_inspect(br#"[{"Id": "sha256:2", "Config": null}]"#).unwrap();
        assert_eq!(bare.config, ImageConfig::default());
    }

    #[test]
    fn anything_but_one_image_is_bad_output() {
        for bad in [
            "[]",
            "{}",
            "not json",
            r#"[{"Id": "abc"}]"#,
            r#"[{"Id":"sha256:1"},{"Id":"sha256:2"}]"#,
        ] {
            let err = parse_image_inspect(bad.as_bytes()).unwrap_err();
            assert!(
                matches!(err, DockerError::BadOutput { .. }),
                "{bad}: {err:?}"
            );
        }
    }
}
