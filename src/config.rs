//! Configuration: the embedded default (`config/registry.toml`), an optional TOML file
//! merged over it, then command-line flags.
//!
//! Errors in the user's file name the file and the line: the merged configuration is
//! deserialized with the path of each key tracked, and a failing key is then looked up in
//! the user's text ([`locate`]).

mod locate;

use crate::access::{AccessConfig, AuditConfig, DisplayPath, KeyPart, Policy};
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
    /// The TOML is invalid, has unknown keys or wrong values.
    #[error("invalid configuration{}{}: {message}",
        .path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default(),
        .line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Invalid {
        /// File path, if from a file.
        path: Option<PathBuf>,
        /// 1-based line of the offending key in that file, when known (TOML syntax errors
        /// carry theirs in `message`).
        line: Option<usize>,
        /// What is wrong, with the key's path.
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
    /// Access control; `None` (no `[access]` section): the default policy.
    #[serde(default)]
    pub access: Option<AccessConfig>,
    /// Audit log.
    pub audit: AuditConfig,
    /// Directory relative paths of access control are resolved from: the config file's
    /// directory, `None` for the working directory.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
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
    /// `Strict-Transport-Security: max-age` of HTTPS responses in seconds (0: no header).
    pub hsts_max_age_secs: u64,
    /// Address of the plain-HTTP listener that redirects to HTTPS (empty: none).
    pub http_redirect_listen: String,
}

impl ServerConfig {
    /// The redirect listener's address, `None` when `http_redirect_listen` is empty.
    /// Loading a configuration checks it, so this only fails for values set afterwards.
    pub fn redirect_listen(&self) -> Result<Option<SocketAddr>, std::net::AddrParseError> {
        let text = self.http_redirect_listen.trim();
        (!text.is_empty()).then(|| text.parse()).transpose()
    }
}

/// `[tls]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Directory of server.crt/server.key (and the generated ca.crt).
    pub certs_dir: PathBuf,
    /// Extra names for a generated certificate.
    pub extra_names: Vec<String>,
    /// PEM CA whose client certificates identify their Common Name (empty: no mTLS).
    pub client_ca: PathBuf,
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
    /// Bytes of read-ahead buffers all downloads share (beyond one chunk each).
    pub read_ahead_bytes: u64,
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

    /// The default with the TOML text `text` (of file `path`, if any) merged over it.
    /// Relative access-control paths will be resolved from `path`'s directory.
    pub fn from_toml(text: &str, path: Option<&Path>) -> Result<Config, ConfigError> {
        let invalid = |line: Option<usize>, message: String| ConfigError::Invalid {
            path: path.map(Path::to_path_buf),
            line,
            message,
        };
        let at = |keys: &[KeyPart], message: String| invalid(locate::line_of(text, keys), message);
        let mut base: toml::Value =
            toml::from_str(DEFAULT_CONFIG).map_err(|e| invalid(None, e.to_string()))?;
        let over: toml::Value = toml::from_str(text).map_err(|e| invalid(None, e.to_string()))?;
        merge(&mut base, over);
        let mut cfg: Config = serde_path_to_error::deserialize(base).map_err(|e| {
            // The first line: later ones only repeat the enclosing table.
            let full = e.inner().to_string();
            let message = full.lines().next().unwrap_or_default().to_string();
            let keys = locate::error_path(e.path(), &message);
            at(&keys, format!("{}: {message}", DisplayPath(&keys)))
        })?;
        if let Err(e) = cfg.server.redirect_listen() {
            let keys = [
                KeyPart::Key("server".into()),
                KeyPart::Key("http_redirect_listen".into()),
            ];
            return Err(at(&keys, format!("server.http_redirect_listen: {e}")));
        }
        // Names a rule uses must exist: compiling the policy checks them.
        Policy::new(cfg.access.as_ref()).map_err(|e| at(&e.path, e.to_string()))?;
        cfg.base_dir = path.map(|p| p.parent().unwrap_or(Path::new("")).to_path_buf());
        Ok(cfg)
    }

    /// `p` resolved from the config file's directory (the working directory without a
    /// file); absolute paths are unchanged.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        match &self.base_dir {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }

    /// The htpasswd file, resolved, when `[access] htpasswd` names one.
    pub fn htpasswd_path(&self) -> Option<PathBuf> {
        let access = self.access.as_ref()?;
        access.htpasswd_file().map(|p| self.resolve(p))
    }

    /// The token signing key file, resolved.
    pub fn token_key_path(&self) -> PathBuf {
        let default = crate::access::TokenConfig::default();
        let token = self.access.as_ref().map_or(&default, |a| &a.token);
        self.resolve(&token.key)
    }

    /// The client CA file, resolved, when `[tls] client_ca` is set.
    pub fn client_ca_path(&self) -> Option<PathBuf> {
        Some(&self.tls.client_ca)
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| self.resolve(p))
    }

    /// Where audit lines go, with a file path resolved.
    pub fn audit_sink(&self) -> crate::access::AuditSink {
        use crate::access::AuditSink;
        match self.audit.path.as_str() {
            "" => AuditSink::Off,
            "-" => AuditSink::Stdout,
            p => AuditSink::File(self.resolve(Path::new(p))),
        }
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
        assert_eq!(c.server.hsts_max_age_secs, 31_536_000);
        assert_eq!(c.server.redirect_listen().unwrap(), None);
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
    fn a_bad_redirect_address_is_an_error_with_its_line() {
        let e = Config::from_toml("[server]\n\nhttp_redirect_listen = \"80\"\n", None).unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
        let c = Config::from_toml("[server]\nhttp_redirect_listen = \"[::]:80\"\n", None).unwrap();
        assert_eq!(
            c.server.redirect_listen().unwrap(),
            Some("[::]:80".parse().unwrap())
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = Config::from_toml("[server]\nlisen = \"x\"\n", None).unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
    }
}

#[cfg(test)]
mod tests_access;
