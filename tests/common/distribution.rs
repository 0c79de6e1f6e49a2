//! CNCF Distribution 2.8 (Debian's `docker-registry`) as the reference registry, over TLS
//! with a throwaway CA, filesystem storage in a temporary directory and deletes enabled.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use super::process::{dump_log_on_panic, log_to, no_proxy_env, poll, terminate};
use super::{free_port, require_tool, sha256_digest, tail_file, Registry, TestCa};

/// A running `docker-registry serve CONFIG`. Dropping it stops the process.
pub struct Distribution {
    tmp: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
    ca: TestCa,
    log_path: PathBuf,
}

impl Distribution {
    /// Starts Distribution on `127.0.0.1:<free port>` and waits until `GET /v2/` answers
    /// 200 over HTTPS with the generated CA. Panics (with the log) on failure.
    pub fn start() -> Distribution {
        require_tool("docker-registry");
        let tmp = tempfile::Builder::new()
            .prefix("imgflow-distribution-")
            .tempdir()
            .expect("creating temp dir for Distribution");
        let ca = TestCa::generate(&tmp.path().join("certs"), &["localhost", "127.0.0.1"]);
        let log_path = tmp.path().join("registry.log");

        let mut last_error = String::new();
        for _attempt in 0..3 {
            let port = free_port(Ipv4Addr::LOCALHOST);
            write_config(tmp.path(), port, &ca);
            let mut child = spawn(tmp.path(), &log_path);
            match wait_ready(&mut child, port, &ca.ca_path()) {
                Ok(()) => {
                    return Distribution {
                        tmp,
                        child: Some(child),
                        port,
                        ca,
                        log_path,
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = e;
                    if !tail_file(&log_path, 20).contains("address already in use") {
                        break;
                    }
                }
            }
        }
        panic!(
            "Distribution (docker-registry) did not start: {last_error}\nlog:\n{}",
            tail_file(&log_path, 80)
        );
    }

    /// Kills the registry with SIGKILL, then starts it again on the same port, storage and
    /// certificate.
    pub fn kill9_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut child = spawn(self.tmp.path(), &self.log_path);
        if let Err(e) = wait_ready(&mut child, self.port, &self.ca.ca_path()) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "Distribution did not restart: {e}\nlog:\n{}",
                tail_file(&self.log_path, 80)
            );
        }
        self.child = Some(child);
    }

    /// The port it listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.host_port())
    }

    /// The CA certificate clients must trust.
    pub fn ca_path(&self) -> PathBuf {
        self.ca.ca_path()
    }

    /// The storage root directory.
    pub fn storage_dir(&self) -> PathBuf {
        self.tmp.path().join("storage")
    }

    /// The registry's log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}

/// Waits until `GET /v2/` answers 200 over HTTPS, or the process exits, or 30 s pass.
fn wait_ready(child: &mut Child, port: u16, ca: &Path) -> Result<(), String> {
    let url = format!("https://127.0.0.1:{port}/v2/");
    let mut last = String::from("no attempt");
    let ready = poll(Duration::from_secs(30), || {
        if let Ok(Some(status)) = child.try_wait() {
            last = format!("docker-registry exited with {status}");
            return Some(false);
        }
        match super::https_get(&url, ca) {
            Ok(resp) if resp.status == 200 => Some(true),
            Ok(resp) => {
                last = format!("GET {url} answered {}", resp.status);
                None
            }
            Err(e) => {
                last = format!("GET {url}: {e}");
                None
            }
        }
    });
    match ready {
        Some(true) => Ok(()),
        Some(false) => Err(last),
        None => Err(format!("not ready within 30 s; last: {last}")),
    }
}

/// Starts `docker-registry serve ROOT/config.yml` with output appended to `log`.
fn spawn(root: &Path, log: &Path) -> Child {
    let binary = require_tool("docker-registry");
    let mut cmd = Command::new(&binary);
    cmd.arg("serve").arg(root.join("config.yml"));
    no_proxy_env(&mut cmd);
    log_to(&mut cmd, log);
    cmd.spawn()
        .unwrap_or_else(|e| panic!("spawning {}: {e}", binary.display()))
}

/// Writes `root/config.yml`: storage under `root/storage`, TLS with `ca`'s server pair.
fn write_config(root: &Path, port: u16, ca: &TestCa) {
    let path = root.join("config.yml");
    // A per-instance secret silences Distribution's "No HTTP secret" warning.
    let secret = &sha256_digest(format!("{}:{port}", root.display()).as_bytes())[7..39];
    let config = format!(
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: {secret}\n  \
         tls:\n    certificate: {cert}\n    key: {key}\n",
        storage = root.join("storage").display(),
        cert = ca.cert_path().display(),
        key = ca.key_path().display(),
    );
    std::fs::write(&path, config).expect("writing Distribution config");
}

impl Registry for Distribution {
    fn kind(&self) -> &'static str {
        "distribution"
    }
    fn host_port(&self) -> String {
        Distribution::host_port(self)
    }
    fn ca_path(&self) -> PathBuf {
        Distribution::ca_path(self)
    }
    fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log_path, lines)
    }
    fn kill9_restart(&mut self) {
        Distribution::kill9_restart(self)
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(5));
        }
        dump_log_on_panic("Distribution", &self.log_path);
    }
}
