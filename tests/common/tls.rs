//! TLS helpers: a throwaway CA for the reference registry, HTTPS clients that trust only a
//! given CA, and a way to run async reqwest code from synchronous tests.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A CA and a server certificate it signed, written as `ca.crt`, `server.crt` and
/// `server.key` (the same layout `imgflow serve` uses in its certs directory).
pub struct TestCa {
    /// Directory holding the three PEM files.
    pub dir: PathBuf,
}

impl TestCa {
    /// Generates a fresh CA and a server certificate for `sans` (DNS names or IP addresses)
    /// into `dir`, which is created if needed.
    pub fn generate(dir: &Path, sans: &[&str]) -> TestCa {
        std::fs::create_dir_all(dir).expect("creating certificate directory");

        let (ca_cert, ca_key) = self_signed_ca("imgflow test CA");

        let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let server_key = KeyPair::generate().expect("generating server key");
        let mut params = CertificateParams::new(names).expect("server cert params");
        params
            .distinguished_name
            .push(DnType::CommonName, "imgflow test server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let server_cert = params
            .signed_by(&server_key, &ca_cert, &ca_key)
            .expect("signing server certificate");

        write_private(&dir.join("ca.crt"), ca_cert.pem().as_bytes(), 0o644);
        write_private(&dir.join("server.crt"), server_cert.pem().as_bytes(), 0o644);
        write_private(
            &dir.join("server.key"),
            server_key.serialize_pem().as_bytes(),
            0o600,
        );
        TestCa {
            dir: dir.to_path_buf(),
        }
    }

    /// The CA certificate (what clients must trust).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The server certificate.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    /// The server private key.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("server.key")
    }
}

/// A fresh self-signed CA certificate with Common Name `cn`, and its key.
pub fn self_signed_ca(cn: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().expect("generating CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("self-signing CA");
    (cert, key)
}

fn write_private(path: &Path, bytes: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// An async reqwest client (rustls) that trusts exactly the CA in `ca_pem` and nothing
/// else, never uses a proxy, and times out after 120 s.
pub fn https_client(ca_pem: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca_pem)
        .unwrap_or_else(|e| panic!("reading CA certificate {}: {e}", ca_pem.display()));
    let cert = reqwest::Certificate::from_pem(&pem)
        .unwrap_or_else(|e| panic!("parsing CA certificate {}: {e}", ca_pem.display()));
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(cert)
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("building reqwest client")
}

/// Runs `fut` to completion on a fresh current-thread runtime in its own OS thread, so it
/// works both from plain `#[test]` functions and from inside another tokio runtime.
pub fn blocking<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("building tokio runtime")
            .block_on(fut)
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// A fully read HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Response body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header value as a string, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The body parsed as JSON; panics with the body text when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Blocking HTTPS request trusting only `ca_pem`. `Err` carries the transport error text
/// (for example a TLS verification failure).
pub fn https_request(
    method: reqwest::Method,
    url: &str,
    ca_pem: &Path,
    headers: &[(&str, &str)],
) -> Result<HttpResponse, String> {
    let client = https_client(ca_pem);
    let url = url.to_string();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    blocking(async move {
        let mut req = client.request(method, &url);
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = req.send().await.map_err(|e| format!("{e:?}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| format!("{e:?}"))?.to_vec();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    })
}

/// Blocking HTTPS GET trusting only `ca_pem`.
pub fn https_get(url: &str, ca_pem: &Path) -> Result<HttpResponse, String> {
    https_request(reqwest::Method::GET, url, ca_pem, &[])
}
