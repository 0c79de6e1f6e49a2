//! What the daemon offers: its OCI runtimes (an NVIDIA one decides whether GPU runtime
//! checks can run) and the client and server versions (for diagnostics).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::{DockerError, Result};

/// One runtime from `docker info`'s `Runtimes` map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Runtime {
    /// Binary of a runc-compatible runtime, e.g. `nvidia-container-runtime`.
    #[serde(default)]
    pub path: Option<String>,
    /// Extra arguments the daemon passes to it.
    #[serde(default)]
    pub runtime_args: Option<Vec<String>>,
    /// containerd shim type, for shim-based runtimes.
    #[serde(default)]
    pub runtime_type: Option<String>,
}

/// Runtimes by the name `docker run --runtime` takes.
pub type Runtimes = BTreeMap<String, Runtime>;

/// Parses `docker info --format '{{json .Runtimes}}'`.
pub fn parse_runtimes(json: &[u8]) -> Result<Runtimes> {
    serde_json::from_slice::<Option<Runtimes>>(json)
        .map(Option::unwrap_or_default)
        .map_err(|e| DockerError::BadOutput {
            command: "info".into(),
            detail: format!("Runtimes is not a JSON map of runtimes: {e}"),
        })
}

/// True when one of `runtimes` is NVIDIA's (by name, binary or shim type).
///
/// This says the daemon is configured for GPUs, not that a GPU works: the runtime tier
/// of the GPU checks still probes with `--gpus all`.
pub fn is_nvidia_present(runtimes: &Runtimes) -> bool {
    runtimes.iter().any(|(name, runtime)| {
        let mentions = |s: &Option<String>| s.as_deref().is_some_and(|s| s.contains("nvidia"));
        name.contains("nvidia") || mentions(&runtime.path) || mentions(&runtime.runtime_type)
    })
}

/// Client and daemon versions, from `docker version`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerVersion {
    /// The CLI's version, e.g. `28.2.2`.
    pub client: String,
    /// The highest API version the CLI speaks.
    pub client_api: String,
    /// The daemon's version.
    pub server: String,
    /// The daemon's API version.
    pub server_api: String,
    /// The daemon's `os/arch`, e.g. `linux/amd64`.
    pub server_platform: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VersionJson {
    client: Option<Side>,
    server: Option<Side>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Side {
    #[serde(default)]
    version: String,
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    arch: String,
}

/// Parses `docker version --format '{{json .}}'`; a missing server part is an error.
pub fn parse_version(json: &[u8]) -> Result<DockerVersion> {
    let bad = |detail: String| DockerError::BadOutput {
        command: "version".into(),
        detail,
    };
    let parsed: VersionJson =
        serde_json::from_slice(json).map_err(|e| bad(format!("not version JSON: {e}")))?;
    let client = parsed.client.unwrap_or_default();
    let server = parsed
        .server
        .ok_or_else(|| bad("no Server part (is the daemon reachable?)".into()))?;
    Ok(DockerVersion {
        client: client.version,
        client_api: client.api_version,
        server: server.version,
        server_api: server.api_version,
        server_platform: format!("{}/{}", server.os, server.arch),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimes_are_parsed_and_nvidia_is_recognised() {
        let plain = br#"{"io.containerd.runc.v2":{"runtimeType":"io.containerd.runc.v2"},
            "runc":{"path":"runc","status":{"org.opencontainers.runtime-spec.features":"{}"}}}"#;
        let runtimes = parse_runtimes(plain).unwrap();
        assert_eq!(runtimes.len(), 2);
        assert_eq!(runtimes["runc"].path.as_deref(), Some("runc"));
        assert!(!is_nvidia_present(&runtimes));

        let gpu = br#"{"runc":{"path":"runc"},
            "nv":{"path":"/usr/bin/nvidia-container-runtime","runtimeArgs":["--debug"]}}"#;
        let runtimes = parse_runtimes(gpu).unwrap();
        assert_eq!(
            runtimes["nv"].runtime_args.as_deref(),
            Some(&["--debug".to_string()][..])
        );
        assert!(is_nvidia_present(&runtimes));
        assert!(is_nvidia_present(
            &parse_runtimes(br#"{"nvidia":{}}"#).unwrap()
        ));
        assert!(parse_runtimes(b"null").unwrap().is_empty());
        assert!(parse_runtimes(b"[1]").is_err());
    }

    #[test]
    fn versions_need_a_server_part() {
        let json =
            br#"{"Client":{"Version":"28.2.2","ApiVersion":"1.50","Os":"linux","Arch":"amd64"},
            "Server":{"Version":"26.1.5","ApiVersion":"1.45","Os":"linux","Arch":"arm64",
            "Components":[{"Name":"Engine","Version":"26.1.5"}]}}"#;
        let version = parse_version(json).unwrap();
        assert_eq!(version.client, "28.2.2");
        assert_eq!(version.client_api, "1.50");
        assert_eq!(version.server, "26.1.5");
        assert_eq!(version.server_api, "1.45");
        assert_eq!(version.server_platform, "linux/arm64");
        let err = parse_version(br#"{"Client":{"Version":"28.2.2"},"Server":null}"#).unwrap_err();
        assert!(err.to_string().contains("daemon reachable"), "{err}");
    }
}
