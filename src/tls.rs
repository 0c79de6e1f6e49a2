//! TLS: load the server certificate, or generate a development CA and certificate.
//!
//! Only TLS 1.2 and 1.3 are offered (rustls with the *ring* provider), with ALPN for
//! HTTP/2 and HTTP/1.1. [`reload`] keeps the certificate (and the client CA) in step with
//! their files; [`client_cert`] reads the identity of a verified client certificate.

pub mod client_cert;
pub mod reload;

pub use client_cert::cert_identity;
pub use reload::LiveTls;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// TLS setup errors.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a certificate file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{0}")]
    Pem(String),
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls rejected the certificate or key.
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA file cannot be used to verify client certificates.
    #[error("client CA {path}: {reason}")]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Paths of the files in a certificates directory.
#[derive(Debug, Clone)]
pub struct CertPaths {
    /// The development CA certificate clients should trust.
    pub ca: PathBuf,
    /// The server certificate chain.
    pub cert: PathBuf,
    /// The server private key.
    pub key: PathBuf,
}

impl CertPaths {
    /// The standard file names in `dir`.
    pub fn in_dir(dir: &Path) -> CertPaths {
        CertPaths {
            ca: dir.join("ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The names a generated certificate covers: localhost, loopback addresses, the host
/// name, and `extra`.
pub fn default_names(extra: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Ok(h) = hostname::get() {
        if let Some(h) = h.to_str().filter(|h| !h.is_empty()) {
            names.push(h.to_string());
        }
    }
    for n in extra {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    names
}

/// Generate a development CA and a server certificate for `names` into `paths`.
/// The CA's private key is not kept: to add names, delete the directory's files.
pub fn generate(paths: &CertPaths, names: &[String]) -> Result<(), TlsError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "imgflow development CA");
    dn.push(DnType::OrganizationName, "imgflow");
    ca_params.distinguished_name = dn;
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    ca_params.not_before = now - time::Duration::days(1);
    ca_params.not_after = now + time::Duration::days(3650);
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;

    let mut params = CertificateParams::new(names.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_else(|| "localhost".into()),
    );
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(825);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca, &ca_key)?;

    if let Some(dir) = paths.cert.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    write_file(&paths.ca, ca.pem().as_bytes(), 0o644)?;
    write_file(&paths.cert, cert.pem().as_bytes(), 0o644)?;
    write_file(&paths.key, key.serialize_pem().as_bytes(), 0o600)?;
    Ok(())
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(data).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Make sure `paths` holds a certificate and key; generates them when both are missing.
/// Returns true when it generated them.
pub fn ensure(paths: &CertPaths, names: &[String]) -> Result<bool, TlsError> {
    let (have_cert, have_key) = (paths.cert.exists(), paths.key.exists());
    match (have_cert, have_key) {
        (true, true) => Ok(false),
        (false, false) => generate(paths, names).map(|()| true),
        _ => Err(TlsError::Pem(format!(
            "only one of {} and {} exists; provide both, or remove it to generate a development certificate",
            paths.cert.display(),
            paths.key.display()
        ))),
    }
}

/// Read every certificate of PEM file `path`; an error when it holds none.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(io_err(path))?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(io_err(path))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(format!(
            "{}: no certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

/// The crypto provider of every configuration: *ring*.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server certificate chain and key in `paths`, checked to belong together (the
/// key's public key is the certificate's).
pub fn certified_key(paths: &CertPaths) -> Result<CertifiedKey, TlsError> {
    let certs = read_certs(&paths.cert)?;
    let key_pem = std::fs::read(&paths.key).map_err(io_err(&paths.key))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(io_err(&paths.key))?
        .ok_or_else(|| TlsError::Pem(format!("{}: no private key found", paths.key.display())))?;
    // Parses the key and compares its public key with the certificate's.
    Ok(CertifiedKey::from_der(certs, key, &provider())?)
}

/// A verifier of client certificates signed by the CA(s) in PEM file `path`. Clients
/// without a certificate are still admitted; a certificate the CA did not sign fails the
/// handshake.
pub fn client_verifier(path: &Path) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert).map_err(|e| TlsError::ClientCa {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::ClientCa {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// A rustls server configuration whose certificate comes from `certs`, asking for
/// client certificates when `clients` is given.
pub fn server_config(
    certs: Arc<dyn ResolvesServerCert>,
    clients: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<rustls::ServerConfig, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match clients {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_cert_resolver(certs);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_loadable_certificates_with_private_key_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let paths = CertPaths::in_dir(&dir.path().join("certs"));
        let names = default_names(&["registry.example".into(), "10.10.0.5".into()]);
        assert!(ensure(&paths, &names).unwrap());
        assert!(!ensure(&paths, &names).unwrap(), "second call must reuse");
        let mode = std::fs::metadata(&paths.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let live = LiveTls::load(&paths, None).unwrap();
        assert_eq!(live.current().alpn_protocols[0], b"h2");
    }
}
