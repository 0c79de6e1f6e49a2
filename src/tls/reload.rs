//! Certificate reload: the server certificate and key, and the client CA, follow their
//! files while the server runs.
//!
//! [`LiveTls`] holds the configuration new connections get. Its certificate comes from a
//! [`ResolvesServerCert`] that reads the current [`CertifiedKey`] from an [`ArcSwap`], so a
//! new certificate serves the next handshake without rebuilding anything. A new client CA
//! changes the verifier, which only a new [`ServerConfig`] can carry, so then the whole
//! configuration is swapped. A connection keeps what its handshake got: connections in
//! flight are never disturbed.
//!
//! [`LiveTls::watch`] polls the files' metadata every [`POLL_EVERY`]. When it changed, and
//! then stayed put for [`SETTLE`] (so that a certificate and key written one after the
//! other are read together), the changed files are loaded again. A pair that does not
//! load (unparsable, or a key that is not the certificate's) is refused with an error log
//! line and the current one stays; it is tried again only when the files change again.

use super::{certified_key, client_verifier, server_config, CertPaths, TlsError};
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the files' metadata is looked at.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// How long changed files must stay unchanged before they are read.
pub const SETTLE: Duration = Duration::from_millis(300);

/// The TLS configuration for new connections, kept in step with the certificate, key and
/// client CA files. See the module docs.
#[derive(Debug)]
pub struct LiveTls {
    paths: CertPaths,
    client_ca: Option<PathBuf>,
    cert: Arc<CurrentCert>,
    config: ArcSwap<ServerConfig>,
    /// The files' metadata when they were last read.
    seen: Mutex<Stamps>,
}

/// The certificate resolver: whatever certificate was loaded last.
#[derive(Debug)]
struct CurrentCert(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

impl LiveTls {
    /// Load the certificate and key in `paths` and, when given, the client CA (client
    /// certificates are then asked for but not required).
    pub fn load(paths: &CertPaths, client_ca: Option<&Path>) -> Result<Arc<LiveTls>, TlsError> {
        let client_ca = client_ca.map(Path::to_path_buf);
        // Taken before reading, so that a change while reading is noticed later.
        let seen = Stamps::of(paths, client_ca.as_deref());
        let cert = Arc::new(CurrentCert(ArcSwap::from_pointee(certified_key(paths)?)));
        let verifier = client_ca.as_deref().map(client_verifier).transpose()?;
        let config = server_config(cert.clone(), verifier)?;
        Ok(Arc::new(LiveTls {
            paths: paths.clone(),
            client_ca,
            cert,
            config: ArcSwap::from_pointee(config),
            seen: Mutex::new(seen),
        }))
    }

    /// The configuration for a new connection.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.config.load_full()
    }

    /// The certificate new connections get.
    pub fn certificate(&self) -> Arc<CertifiedKey> {
        self.cert.0.load_full()
    }

    /// Reload whatever files changed since they were last read, now. Returns false when
    /// nothing changed; errors are logged, and the current certificate or CA stays.
    pub fn check(&self) -> bool {
        let now = Stamps::of(&self.paths, self.client_ca.as_deref());
        let (cert_changed, ca_changed) = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == now {
                return false;
            }
            let changed = (
                seen.cert != now.cert || seen.key != now.key,
                seen.ca != now.ca,
            );
            *seen = now;
            changed
        };
        if cert_changed {
            self.reload_cert();
        }
        if ca_changed {
            self.reload_client_ca();
        }
        true
    }

    /// Poll the files every [`POLL_EVERY`] and reload them when they change, until the
    /// runtime stops.
    pub fn watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let live = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let mut now = live.stamps();
                if *live.seen.lock().unwrap_or_else(|p| p.into_inner()) == now {
                    continue;
                }
                // Wait until whoever writes the files is done.
                loop {
                    tokio::time::sleep(SETTLE).await;
                    let again = live.stamps();
                    if again == now {
                        break;
                    }
                    now = again;
                }
                live.check();
            }
        })
    }

    fn stamps(&self) -> Stamps {
        Stamps::of(&self.paths, self.client_ca.as_deref())
    }

    fn reload_cert(&self) {
        match certified_key(&self.paths) {
            Ok(ck) => {
                self.cert.0.store(Arc::new(ck));
                tracing::info!(
                    cert = %self.paths.cert.display(),
                    key = %self.paths.key.display(),
                    "reloaded TLS certificate"
                );
            }
            Err(e) => tracing::error!(
                cert = %self.paths.cert.display(),
                key = %self.paths.key.display(),
                error = %e,
                "refused the changed TLS certificate and key; still serving the previous ones"
            ),
        }
    }

    fn reload_client_ca(&self) {
        let Some(path) = &self.client_ca else { return };
        let built = client_verifier(path)
            .and_then(|verifier| server_config(self.cert.clone(), Some(verifier)));
        match built {
            Ok(config) => {
                self.config.store(Arc::new(config));
                tracing::info!(client_ca = %path.display(), "reloaded TLS client CA");
            }
            Err(e) => tracing::error!(
                client_ca = %path.display(),
                error = %e,
                "refused the changed client CA; still using the previous one"
            ),
        }
    }
}

/// What identifies a version of a file: device, inode, size, modification and change
/// times; `None` when it cannot be read.
type Stamp = Option<(u64, u64, u64, i64, i64, i64, i64)>;

/// The stamps of the certificate, key and client CA files.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamps {
    cert: Stamp,
    key: Stamp,
    ca: Stamp,
}

impl Stamps {
    fn of(paths: &CertPaths, client_ca: Option<&Path>) -> Stamps {
        Stamps {
            cert: stamp(&paths.cert),
            key: stamp(&paths.key),
            ca: client_ca.and_then(stamp),
        }
    }
}

/// The file's stamp, following symbolic links (so a link switched to a new directory,
/// as mounted secrets do, is a change).
fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

#[cfg(test)]
#[path = "reload_tests.rs"]
mod tests;
