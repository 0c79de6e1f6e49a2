//! [`ClientBuilder`]: the registry's URL, the CAs to trust, credentials, timeouts.

use super::auth::Authenticator;
use super::{Client, ClientError, Credentials, RegistryTrust, Result, Url};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// PEM bundles where common Linux distributions keep the system's trusted roots.
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Configures and builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base_url: String,
    ca_pems: Vec<Vec<u8>>,
    ca_paths: Vec<PathBuf>,
    system_roots: Option<bool>,
    credentials: Option<Credentials>,
    preemptive_basic: bool,
    timeout: Option<Duration>,
    connect_timeout: Duration,
    user_agent: String,
    http1_only: bool,
}

impl ClientBuilder {
    /// Defaults for the registry at `base_url`: see [`Client::builder`].
    pub(crate) fn new(base_url: String) -> ClientBuilder {
        ClientBuilder {
            base_url,
            ca_pems: Vec::new(),
            ca_paths: Vec::new(),
            system_roots: None,
            credentials: None,
            preemptive_basic: false,
            timeout: None,
            connect_timeout: Duration::from_secs(10),
            user_agent: format!("imgflow/{}", env!("CARGO_PKG_VERSION")),
            http1_only: false,
        }
    }

    /// Trust the CA certificates in the PEM file at `path` (may hold several).
    pub fn ca_file(mut self, path: impl AsRef<Path>) -> Self {
        self.ca_paths.push(path.as_ref().to_path_buf());
        self
    }

    /// Trust the CA certificates in `pem` (may hold several).
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pems.push(pem.into());
        self
    }

    /// Also trust the system's root certificates (`SSL_CERT_FILE` or the distribution's
    /// bundle). By default they are used only when no CA is given.
    pub fn system_roots(mut self, enabled: bool) -> Self {
        self.system_roots = Some(enabled);
        self
    }

    /// Send HTTP basic credentials with every request, from the first one on (like
    /// `curl -u`). Should the registry answer with a `Bearer` challenge, they are used at
    /// its token endpoint instead.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::basic(user, password));
        self.preemptive_basic = true;
        self
    }

    /// Sign in with `credentials` (`None`: anonymously) when the registry asks, like
    /// docker: nothing is sent before its first `401` challenge, then tokens (or Basic
    /// credentials, if that is the challenge).
    pub fn credentials(mut self, credentials: Option<Credentials>) -> Self {
        self.credentials = credentials;
        self.preemptive_basic = false;
        self
    }

    /// Trust the CA files of `trust`, and the system's roots if it says so.
    pub fn trust(mut self, trust: &RegistryTrust) -> Self {
        self.ca_paths.extend(trust.ca_files.iter().cloned());
        self.system_roots = Some(trust.system_roots);
        self
    }

    /// Limit the duration of each whole request (default: none, uploads can be long).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Limit the time to connect (default: 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Set the `User-Agent` header.
    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = agent.into();
        self
    }

    /// Use HTTP/1.1 only (by default HTTP/2 is negotiated through ALPN when offered).
    pub fn http1_only(mut self) -> Self {
        self.http1_only = true;
        self
    }

    /// Build the client. Fails when the base URL or a CA certificate is unusable.
    pub fn build(self) -> Result<Client> {
        let base = Url::parse(&self.base_url).map_err(|e| ClientError::InvalidUrl {
            url: self.base_url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(base.scheme(), "https" | "http") || base.host().is_none() {
            return Err(ClientError::InvalidUrl {
                url: self.base_url,
                reason: "expected https://HOST[:PORT]".to_string(),
            });
        }
        let mut http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .connect_timeout(self.connect_timeout)
            .user_agent(self.user_agent)
            .redirect(reqwest::redirect::Policy::limited(5));
        if let Some(t) = self.timeout {
            http = http.timeout(t);
        }
        if self.http1_only {
            http = http.http1_only();
        }
        let mut pems = self.ca_pems;
        for path in &self.ca_paths {
            let pem = std::fs::read(path).map_err(|e| {
                ClientError::Setup(format!("cannot read CA file {}: {e}", path.display()))
            })?;
            pems.push(pem);
        }
        let use_system = self.system_roots.unwrap_or(pems.is_empty());
        if use_system {
            if let Some(pem) = read_system_bundle() {
                pems.push(pem);
            }
        }
        for pem in &pems {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ClientError::Setup(format!("invalid PEM certificate: {e}")))?;
            if certs.is_empty() {
                return Err(ClientError::Setup(
                    "a CA bundle holds no PEM certificate".to_string(),
                ));
            }
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http
            .build()
            .map_err(|e| ClientError::Setup(format!("cannot build the HTTP client: {e}")))?;
        let https = base.scheme() == "https";
        Ok(Client {
            http,
            base,
            auth: Arc::new(Authenticator::new(
                self.credentials,
                self.preemptive_basic,
                https,
            )),
        })
    }
}

fn read_system_bundle() -> Option<Vec<u8>> {
    let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    from_env
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
        .find_map(|p| std::fs::read(p).ok())
}
