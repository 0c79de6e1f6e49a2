//! skopeo with an isolated configuration: its own trust policy, an empty registries.conf
//! (no host mirror or "insecure" entries), its own auth file and temp dir, no proxy.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::netns::NetNs;
use super::process::{no_proxy_env, output_with_timeout};
use super::require_tool;

/// A skopeo invoker; its temporary configuration lives as long as the value.
pub struct Skopeo {
    tmp: tempfile::TempDir,
    bin: PathBuf,
    cert_dirs: AtomicUsize,
}

impl Skopeo {
    /// Prepares the isolated configuration; panics if skopeo is not installed.
    pub fn new() -> Skopeo {
        let bin = require_tool("skopeo");
        let tmp = tempfile::Builder::new()
            .prefix("imgflow-skopeo-")
            .tempdir()
            .expect("creating skopeo temp dir");
        let root = tmp.path();
        std::fs::write(
            root.join("policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .expect("writing policy.json");
        std::fs::write(
            root.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .expect("writing registries.conf");
        for dir in ["registries.d", "tmp", "work"] {
            std::fs::create_dir_all(root.join(dir)).expect("creating skopeo dirs");
        }
        Skopeo {
            tmp,
            bin,
            cert_dirs: AtomicUsize::new(0),
        }
    }

    /// A scratch directory for layouts and copies.
    pub fn work_dir(&self) -> PathBuf {
        self.tmp.path().join("work")
    }

    /// Creates a directory containing only `ca.crt` (a copy of `ca_pem`), suitable for
    /// `--cert-dir`, `--src-cert-dir` and `--dest-cert-dir`.
    pub fn cert_dir(&self, ca_pem: &Path) -> PathBuf {
        let n = self.cert_dirs.fetch_add(1, Ordering::SeqCst);
        let dir = self.tmp.path().join(format!("certs-{n}"));
        std::fs::create_dir_all(&dir).expect("creating cert dir");
        std::fs::copy(ca_pem, dir.join("ca.crt"))
            .unwrap_or_else(|e| panic!("copying {}: {e}", ca_pem.display()));
        dir
    }

    /// A `skopeo` command with the isolated global options already set.
    pub fn command(&self) -> Command {
        self.isolated(Command::new(&self.bin))
    }

    /// As [`Skopeo::command`], run inside network namespace `ns` (`ip netns exec`).
    pub fn command_in(&self, ns: &NetNs) -> Command {
        self.isolated(ns.command(&self.bin))
    }

    /// Adds the isolated global options and environment to `cmd`, which runs skopeo.
    fn isolated(&self, mut cmd: Command) -> Command {
        let root = self.tmp.path();
        cmd.arg("--policy")
            .arg(root.join("policy.json"))
            .arg("--registries.d")
            .arg(root.join("registries.d"))
            .arg("--tmpdir")
            .arg(root.join("tmp"))
            .args(["--command-timeout", "300s"])
            .env("CONTAINERS_REGISTRIES_CONF", root.join("registries.conf"))
            .env("REGISTRY_AUTH_FILE", root.join("auth.json"));
        no_proxy_env(&mut cmd);
        cmd
    }

    /// Runs `skopeo ARGS` and returns its raw output.
    /// Panics if it runs longer than 5 minutes.
    pub fn output(&self, args: &[&str]) -> Output {
        output_with_timeout(self.command().args(args), Duration::from_secs(300))
    }

    /// As [`Skopeo::output`], inside network namespace `ns`.
    pub fn output_in(&self, ns: &NetNs, args: &[&str]) -> Output {
        output_with_timeout(self.command_in(ns).args(args), Duration::from_secs(300))
    }

    /// Runs `skopeo ARGS`; panics with its output unless it succeeds; returns stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "`skopeo {}` failed with {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Runs `skopeo ARGS`; panics if it succeeds; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.output(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "`skopeo {}` unexpectedly succeeded\n--- stdout ---\n{}\n--- stderr ---\n{stderr}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }
}

impl Default for Skopeo {
    fn default() -> Self {
        Skopeo::new()
    }
}
