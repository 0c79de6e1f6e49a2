//! Shared harness for imgflow's integration tests.
//!
//! Every test binary includes this module with `mod common;`. It starts real processes
//! (`imgflow serve`, CNCF Distribution, a private dockerd, skopeo) on loopback addresses, or
//! in a network namespace the test creates ([`netns`]), and stops them from `Drop` guards,
//! so a panicking test never leaks a server, a mount or a namespace.
//!
//! Not every test binary uses every helper, hence the `dead_code` allowance below.
#![allow(dead_code)]

pub mod distribution;
pub mod dockerd;
pub mod load;
pub mod mtls;
pub mod netns;
pub mod oci_api;
pub mod oci_layout;
pub mod process;
pub mod raw_http;
pub mod server;
pub mod skopeo;
pub mod tls;

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

// Re-exports for the test files; each binary uses a different subset.
#[allow(unused_imports)]
pub use distribution::Distribution;
#[allow(unused_imports)]
pub use dockerd::{DockerCertsGuard, Dockerd};
#[allow(unused_imports)]
pub use netns::NetNs;
#[allow(unused_imports)]
pub use server::{Server, ServerBuilder};
#[allow(unused_imports)]
pub use skopeo::Skopeo;
#[allow(unused_imports)]
pub use tls::{blocking, https_client, https_get, https_request, HttpResponse, TestCa};

/// A running registry reachable over HTTPS on loopback, trusted through a CA file.
///
/// Implemented by [`Server`] (imgflow) and [`Distribution`] (the reference registry), so a
/// client workflow can be written once and run against both.
pub trait Registry {
    /// Short name used in messages and image names, e.g. `imgflow` or `distribution`.
    fn kind(&self) -> &'static str;
    /// `HOST:PORT` as clients write it in image references, e.g. `127.0.0.1:40123`.
    fn host_port(&self) -> String;
    /// Base URL, e.g. `https://127.0.0.1:40123`.
    fn url(&self) -> String {
        format!("https://{}", self.host_port())
    }
    /// PEM file of the CA that signed the registry's server certificate.
    fn ca_path(&self) -> PathBuf;
    /// The last `lines` lines of the registry's log (for failure messages).
    fn log_tail(&self, lines: usize) -> String;
    /// Simulates a crash: SIGKILL, then start again on the same address and data.
    fn kill9_restart(&mut self);
}

/// Panics with an actionable message when `tool` is not on `PATH`.
///
/// Missing tools are a failure, never a skip: `tests/run-all.sh` installs them.
pub fn require_tool(tool: &str) -> PathBuf {
    match find_in_path(tool) {
        Some(path) => path,
        None => panic!(
            "required tool `{tool}` was not found in PATH ({}). Run `bash tests/run-all.sh` \
             (it installs docker.io, skopeo, docker-registry, busybox-static, curl, ...) or \
             install the Debian package that provides it",
            std::env::var("PATH").unwrap_or_default()
        ),
    }
}

/// Returns the full path of `tool` when an executable file of that name is on `PATH`
/// (also looking in the sbin directories, which a non-login root shell may lack).
pub fn find_in_path(tool: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var("PATH").unwrap_or_default();
    let extra = ["/usr/local/sbin", "/usr/sbin", "/sbin"];
    let found = path
        .split(':')
        .chain(extra)
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(tool))
        .find(|candidate| {
            candidate
                .metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        });
    found
}

/// Panics unless the test runs as root (dockerd and `/etc/docker/certs.d` need it).
pub fn require_root(what: &str) {
    let out = std::process::Command::new("id")
        .arg("-u")
        .output()
        .expect("running `id -u`");
    let uid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        uid, "0",
        "{what} needs root (uid 0, got uid {uid}); CI runs tests/run-all.sh as root"
    );
}

/// Picks a currently free TCP port on `ip` (a 127.x.y.z address) by binding port 0.
///
/// The port is released before returning, so a rare race with another process is possible;
/// callers that start servers on it retry on "address already in use".
pub fn free_port(ip: Ipv4Addr) -> u16 {
    assert!(
        ip.is_loopback(),
        "tests only listen on 127.0.0.0/8, got {ip}"
    );
    let listener = TcpListener::bind((ip, 0)).expect("binding a free loopback port");
    listener.local_addr().expect("local_addr").port()
}

/// Returns the last `lines` lines of a text file, or a note when it cannot be read.
pub fn tail_file(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            all[start..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// Hex SHA-256 of `bytes` prefixed with `sha256:`, the OCI digest form.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Deterministic pseudo-random bytes (xorshift), incompressible enough to make real
/// multi-megabyte layers without a random-number crate.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}
