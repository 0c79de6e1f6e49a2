//! Client certificates for mTLS tests: a CA that keeps its key in memory and issues
//! client certificates with a given Common Name, written as PEM files for curl and skopeo.

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};

/// A CA for client certificates; its certificate is `DIR/NAME-ca.crt`.
pub struct ClientCa {
    dir: PathBuf,
    name: String,
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A client certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// The certificate (`--cert` for curl).
    pub cert: PathBuf,
    /// The private key (`--key` for curl).
    pub key: PathBuf,
}

impl ClientCa {
    /// A fresh CA named `name`, its certificate written into `dir` (created if needed).
    pub fn generate(dir: &Path, name: &str) -> ClientCa {
        std::fs::create_dir_all(dir).expect("creating certificate directory");
        let (cert, key) = super::tls::self_signed_ca(&format!("imgflow test client CA {name}"));
        let ca = ClientCa {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            cert,
            key,
        };
        std::fs::write(ca.ca_path(), ca.cert.pem()).expect("writing CA certificate");
        ca
    }

    /// The CA certificate (what `[tls] client_ca` names).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.crt", self.name))
    }

    /// Issue a client certificate with Common Name `cn`, written as
    /// `DIR/NAME-CN.crt` and `DIR/NAME-CN.key`.
    pub fn issue(&self, cn: &str) -> ClientCert {
        let key = KeyPair::generate().expect("generating client key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signing client certificate");
        let out = ClientCert {
            cert: self.dir.join(format!("{}-{cn}.crt", self.name)),
            key: self.dir.join(format!("{}-{cn}.key", self.name)),
        };
        std::fs::write(&out.cert, cert.pem()).expect("writing client certificate");
        std::fs::write(&out.key, key.serialize_pem()).expect("writing client key");
        out
    }
}

/// The result of one curl run.
#[derive(Debug)]
pub struct Curl {
    /// curl's exit code (0: the transfer worked, whatever the HTTP status).
    pub code: Option<i32>,
    /// The HTTP status curl printed (`%{http_code}`), 0 when there was no response.
    pub status: u16,
    /// curl's standard error.
    pub stderr: String,
}

/// `curl GET url` trusting only `ca`, with `cert` as client certificate when given.
pub fn curl_get(url: &str, ca: &Path, cert: Option<&ClientCert>) -> Curl {
    let mut cmd = std::process::Command::new(super::require_tool("curl"));
    cmd.args([
        "-sS",
        "--max-time",
        "30",
        "--noproxy",
        "*",
        "-o",
        "/dev/null",
    ])
    .args(["-w", "%{http_code}", "--cacert"])
    .arg(ca);
    if let Some(c) = cert {
        cmd.arg("--cert").arg(&c.cert).arg("--key").arg(&c.key);
    }
    let out = cmd.arg(url).output().expect("running curl");
    Curl {
        code: out.status.code(),
        status: String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
