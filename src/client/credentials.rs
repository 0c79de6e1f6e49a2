//! Registry credentials found the way the docker CLI finds them.
//!
//! [`CredentialLookup::find`] reads `config.json` in `$DOCKER_CONFIG` (or `~/.docker`)
//! and, for a registry `HOST[:PORT]`:
//!
//! 1. `credHelpers[HOST]` names a helper: `docker-credential-<helper> get` is run with
//!    the host on stdin and answers `{"ServerURL","Username","Secret"}`;
//! 2. else `credsStore` names the helper used for every registry, asked the same way;
//! 3. else `auths[KEY]`: `auth` (base64 of `USER:PASSWORD`), or `username` and
//!    `password`, or `identitytoken`.
//!
//! `auths` keys match as docker matches them: the exact `HOST[:PORT]` first, then any
//! key that reduces to it once a scheme (`https://`, `http://`) and a path (`/v2/`,
//! `/v1/`) are removed. A helper answering "credentials not found" (or an empty entry)
//! means anonymous access, as for docker. A helper's `Username` of `<token>` means its
//! secret is an identity token (an OAuth 2 refresh token), as is an `identitytoken`
//! entry: the client exchanges it at the token endpoint (`grant_type=refresh_token`).
//!
//! Helpers are looked up in an explicit search path (by default `PATH`), so that callers,
//! tests in particular, need not change the process environment. Running a helper
//! blocks: call [`CredentialLookup::find`] before the work starts or from
//! `spawn_blocking`.

use super::error::CredentialsError;
use super::helper::run_helper;
use base64::Engine;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password (sent to the token endpoint, or as Basic).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// An identity token (OAuth 2 refresh token) from `docker login` with some
    /// registries; exchanged for access tokens at the token endpoint.
    IdentityToken {
        /// The user name, when known (may be empty).
        username: String,
        /// The refresh token.
        token: String,
    },
}

impl Credentials {
    /// User name and password.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials::Basic {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The user name (for messages; may be empty for an identity token).
    pub fn username(&self) -> &str {
        match self {
            Credentials::Basic { username, .. } | Credentials::IdentityToken { username, .. } => {
                username
            }
        }
    }
}

impl fmt::Debug for Credentials {
    /// Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .finish_non_exhaustive(),
            Credentials::IdentityToken { username, .. } => f
                .debug_struct("IdentityToken")
                .field("username", username)
                .finish_non_exhaustive(),
        }
    }
}

/// The parts of docker's `config.json` that hold credentials.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

/// One `auths` entry.
#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// Where to look for credentials: a Docker configuration directory and the search path
/// of credential helpers.
#[derive(Debug, Clone)]
pub struct CredentialLookup {
    config_dir: PathBuf,
    helper_path: OsString,
}

impl CredentialLookup {
    /// Look in `config_dir/config.json`, with helpers from the process's `PATH`.
    pub fn new(config_dir: impl Into<PathBuf>) -> CredentialLookup {
        CredentialLookup {
            config_dir: config_dir.into(),
            helper_path: std::env::var_os("PATH").unwrap_or_default(),
        }
    }

    /// As docker does: `$DOCKER_CONFIG`, else `$HOME/.docker`; helpers from `PATH`.
    pub fn from_env() -> CredentialLookup {
        let dir = match std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".docker"),
        };
        CredentialLookup::new(dir)
    }

    /// Look for `docker-credential-*` helpers in these directories (`:`-separated, like
    /// `PATH`) instead of the process's `PATH`.
    pub fn helper_path(mut self, path: impl Into<OsString>) -> CredentialLookup {
        self.helper_path = path.into();
        self
    }

    /// The configuration file read: `CONFIG_DIR/config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.config_dir.join("config.json")
    }

    /// The credentials for registry `host` (`HOST[:PORT]`, as in image references), or
    /// `None` for anonymous access (no file, no entry, or the helper has none).
    pub fn find(&self, host: &str) -> Result<Option<Credentials>, CredentialsError> {
        let path = self.config_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CredentialsError::Read { path, source }),
        };
        let config: ConfigFile =
            serde_json::from_str(&text).map_err(|e| CredentialsError::Parse {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let helper = lookup(&config.cred_helpers, host)
            .or(config.creds_store.as_ref())
            .filter(|h| !h.is_empty());
        if let Some(helper) = helper {
            return run_helper(helper, host, &self.helper_path);
        }
        match lookup(&config.auths, host) {
            Some(entry) => entry_credentials(entry, host, &path),
            None => Ok(None),
        }
    }
}

/// The host part of an `auths` key: without scheme and path (docker's
/// `ConvertToHostname`).
pub fn key_host(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

/// The value of the exact key `host`, else of the first key (in sorted order) whose host
/// part is `host`.
fn lookup<'m, V>(map: &'m BTreeMap<String, V>, host: &str) -> Option<&'m V> {
    map.get(host).or_else(|| {
        map.iter()
            .find(|(key, _)| key_host(key) == host)
            .map(|(_, v)| v)
    })
}

/// The credentials of an `auths` entry.
fn entry_credentials(
    entry: &AuthEntry,
    host: &str,
    path: &Path,
) -> Result<Option<Credentials>, CredentialsError> {
    let nonempty = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
    let (mut username, mut password) = (nonempty(&entry.username), nonempty(&entry.password));
    if let Some(auth) = nonempty(&entry.auth) {
        let (u, p) = decode_auth(&auth).ok_or_else(|| CredentialsError::Parse {
            path: path.to_path_buf(),
            reason: format!("auths[{host:?}].auth is not base64 of USER:PASSWORD"),
        })?;
        username = Some(u);
        password = Some(p);
    }
    if let Some(token) = nonempty(&entry.identitytoken) {
        return Ok(Some(Credentials::IdentityToken {
            username: username.unwrap_or_default(),
            token,
        }));
    }
    Ok(match (username, password) {
        (Some(username), Some(password)) => Some(Credentials::Basic { username, password }),
        _ => None,
    })
}

/// Decode `base64(USER:PASSWORD)`; the password may contain colons.
pub fn decode_auth(auth: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
