//! Configuration: the embedded default (`config/registry.toml`), an optional TOML file
//! merged over it, then command-line flags.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The default configuration, embedded in the binary; `config/registry.toml` in the
/// repository is this file and documents every key.
pub const DEFAULT_CONFIG: &str = include_str!("../config/registry.toml");

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The TOML is invalid or has unknown keys.
    #[error("invalid configuration{}: {message}", .path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Invalid {
        /// File path, if from a file.
        path: Option<PathBuf>,
        /// Parser message.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listener and HTTP settings.
    pub server: ServerConfig,
    /// Certificates.
    pub tls: TlsConfig,
    /// Storage settings.
    pub storage: StorageConfig,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Public URL for Location headers (empty: relative).
    pub public_url: String,
    /// TLS handshake timeout in seconds.
    pub tls_handshake_timeout_secs: u64,
    /// Request header timeout in seconds.
    pub header_read_timeout_secs: u64,
    /// Upload body idle timeout in seconds.
    pub body_idle_timeout_secs: u64,
    /// Shutdown grace period in seconds.
    pub shutdown_grace_secs: u64,
    /// Connections served at once; more are refused.
    pub max_connections: usize,
    /// Largest request header block in bytes.
    pub max_header_bytes: usize,
    /// Idle HTTP/2 connection timeout in seconds.
    pub idle_timeout_secs: u64,
    /// Minimum average upload body rate in bytes per second (0: none).
    pub min_upload_rate_bytes_per_sec: u64,
    /// Seconds an upload body is never cut for its rate.
    pub min_upload_rate_grace_secs: u64,
    /// Seconds the upload rate is averaged over.
    pub min_upload_rate_window_secs: u64,
    /// Memory shared by all manifest bodies being received, in bytes.
    pub manifest_budget_bytes: u64,
    /// Seconds a manifest PUT waits for room in the budget before a 429.
    pub manifest_budget_wait_secs: u64,
}

/// `[tls]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Directory of server.crt/server.key (and the generated ca.crt).
    pub certs_dir: PathBuf,
    /// Extra names for a generated certificate.
    pub extra_names: Vec<String>,
}

/// `[storage]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Manifest size limit in bytes.
    pub max_manifest_bytes: u64,
    /// Hours without acknowledged activity after which an upload session is removed.
    pub upload_expiry_hours: u64,
    /// Upload sessions open at once in the whole registry.
    pub max_upload_sessions: usize,
    /// Upload sessions open at once for one client address.
    pub max_upload_sessions_per_client: usize,
    /// Bytes of manifests and blob sizes cached in memory (0 = no cache).
    pub metadata_cache_bytes: u64,
}

/// Merge `over` into `base`, table by table.
fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

impl Config {
    /// The embedded default configuration.
    pub fn default_config() -> Config {
        Config::from_toml(DEFAULT_CONFIG, None)
            .unwrap_or_else(|e| unreachable!("embedded default config is invalid: {e}"))
    }

    /// The default with the TOML text `text` merged over it.
    pub fn from_toml(text: &str, path: Option<&Path>) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.map(Path::to_path_buf),
            message,
        };
        let mut base: toml::Value =
            toml::from_str(DEFAULT_CONFIG).map_err(|e| invalid(e.to_string()))?;
        let over: toml::Value = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        merge(&mut base, over);
        base.try_into()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))
    }

    /// Load `path` merged over the default, or the default when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            None => Ok(Config::default_config()),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                Config::from_toml(&text, Some(p))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_matches_documented_values() {
        let c = Config::default_config();
        assert_eq!(c.server.listen, "0.0.0.0:5000".parse().unwrap());
        assert_eq!(c.tls.certs_dir, PathBuf::from("certs"));
        assert_eq!(c.storage.data_dir, PathBuf::from("data"));
        assert_eq!(c.storage.max_manifest_bytes, 4 * 1024 * 1024);
        assert_eq!(c.server.max_header_bytes, 64 * 1024);
        assert_eq!(c.server.idle_timeout_secs, 60);
        assert_eq!(c.server.min_upload_rate_bytes_per_sec, 1024);
        assert_eq!(c.server.min_upload_rate_grace_secs, 60);
        assert_eq!(c.server.min_upload_rate_window_secs, 30);
        assert_eq!(c.server.manifest_budget_bytes, 16 * 1024 * 1024);
        assert_eq!(c.server.manifest_budget_wait_secs, 5);
        // The budget holds several manifests of the largest size.
        assert!(c.server.manifest_budget_bytes >= 4 * c.storage.max_manifest_bytes);
        // The repository's config/registry.toml is the embedded default.
        let on_disk = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/registry.toml"),
        )
        .unwrap();
        assert_eq!(on_disk, DEFAULT_CONFIG);
    }

    #[test]
    fn file_overrides_only_what_it_names() {
        let c = Config::from_toml("[server]\nlisten = \"127.0.0.1:6000\"\n", None).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(c.storage, Config::default_config().storage);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = Config::from_toml("[server]\nlisen = \"x\"\n", None).unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
    }
}
