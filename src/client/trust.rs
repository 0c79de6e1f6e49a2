//! Which CA certificates to trust for a registry, the way docker decides.
//!
//! [`RegistryTrust::for_registry`] gathers, for `HOST[:PORT]`:
//! - the `--cacert` file, if given;
//! - every `*.crt` file of `/etc/docker/certs.d/HOST[:PORT]/` (`ca.crt` and any other,
//!   in name order), as dockerd reads them;
//! - the system's roots: the PEM bundle named by `SSL_CERT_FILE`, else the
//!   distribution's (Debian/Ubuntu, Fedora/RHEL, SUSE, Alpine paths), read by
//!   [`ClientBuilder`](super::ClientBuilder).
//!
//! Client certificates (`*.cert`/`*.key` pairs in `certs.d`) are not used.

use super::error::{ClientError, Result};
use std::path::{Path, PathBuf};

/// Where dockerd looks for per-registry CA certificates.
pub const DOCKER_CERTS_D: &str = "/etc/docker/certs.d";

/// The CA certificates to trust for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryTrust {
    /// PEM files of CAs to trust, in order: `--cacert`, then `certs.d`.
    pub ca_files: Vec<PathBuf>,
    /// Whether the system's roots are trusted as well.
    pub system_roots: bool,
}

impl RegistryTrust {
    /// The trust for registry `host` (`HOST[:PORT]`): `cacert` if given, the `*.crt`
    /// files of `/etc/docker/certs.d/HOST[:PORT]/`, and the system's roots.
    pub fn for_registry(host: &str, cacert: Option<&Path>) -> Result<RegistryTrust> {
        RegistryTrust::for_registry_in(Path::new(DOCKER_CERTS_D), host, cacert)
    }

    /// As [`RegistryTrust::for_registry`], with `certs_d` instead of
    /// `/etc/docker/certs.d`.
    pub fn for_registry_in(
        certs_d: &Path,
        host: &str,
        cacert: Option<&Path>,
    ) -> Result<RegistryTrust> {
        let mut ca_files = Vec::new();
        if let Some(file) = cacert {
            if !file.is_file() {
                return Err(ClientError::Setup(format!(
                    "CA file {} does not exist or is not a file",
                    file.display()
                )));
            }
            ca_files.push(file.to_path_buf());
        }
        if host.is_empty() || host.contains('/') || host.starts_with('.') {
            return Err(ClientError::Setup(format!(
                "invalid registry host {host:?} (expected HOST[:PORT])"
            )));
        }
        ca_files.extend(crt_files(&certs_d.join(host))?);
        Ok(RegistryTrust {
            ca_files,
            system_roots: true,
        })
    }
}

/// The `*.crt` files of `dir`, sorted; none when `dir` does not exist.
fn crt_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ClientError::io(format!("listing {}", dir.display()), e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| ClientError::io(format!("listing {}", dir.display()), e))?
            .path();
        if path.extension().is_some_and(|e| e == "crt") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_cacert_then_certs_d_crt_files() {
        let dir = tempfile::tempdir().unwrap();
        let certs_d = dir.path().join("certs.d");
        let host_dir = certs_d.join("r.example:5000");
        std::fs::create_dir_all(&host_dir).unwrap();
        for name in [
            "ca.crt",
            "extra.crt",
            "client.cert",
            "client.key",
            "notes.txt",
        ] {
            std::fs::write(host_dir.join(name), "x").unwrap();
        }
        std::fs::create_dir(host_dir.join("sub.crt")).unwrap();
        let cacert = dir.path().join("mine.pem");
        std::fs::write(&cacert, "x").unwrap();

        let t = RegistryTrust::for_registry_in(&certs_d, "r.example:5000", Some(&cacert)).unwrap();
        assert_eq!(
            t.ca_files,
            vec![
                cacert.clone(),
                host_dir.join("ca.crt"),
                host_dir.join("extra.crt")
            ]
        );
        assert!(t.system_roots);

        // Another port is another directory.
        let t = RegistryTrust::for_registry_in(&certs_d, "r.example:5001", None).unwrap();
        assert!(t.ca_files.is_empty());
    }

    #[test]
    fn refuses_missing_cacert_and_odd_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.crt");
        let err = RegistryTrust::for_registry_in(dir.path(), "r:1", Some(&missing)).unwrap_err();
        assert!(err.to_string().contains("nope.crt"), "{err}");
        for host in ["", "../etc", "a/b"] {
            assert!(RegistryTrust::for_registry_in(dir.path(), host, None).is_err());
        }
    }
}
