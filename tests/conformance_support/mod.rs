//! Running the `conformance` binary (workspace member `conformance/`) from the root
//! crate's tests.
//!
//! The root crate cannot depend on `conformance` (which depends on it), so the tests run
//! its binary. `cargo build --workspace --release` puts it next to `imgflow` in the same
//! target directory; it is located from `CARGO_BIN_EXE_imgflow`.
#![allow(dead_code)]

use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a whole conformance run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// One case of the JSON report.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    /// Stable id, e.g. `push/chunked/out-of-order-416`.
    pub id: String,
    /// `pull`, `push`, `discovery` or `management`.
    pub category: String,
    /// `MUST`, `SHOULD` or `MAY`.
    pub level: String,
    /// `pass`, `fail` or `skip`.
    pub result: String,
    /// Why it failed or was skipped.
    pub detail: String,
}

/// Path of the `conformance` binary built alongside `imgflow`; panics with the command
/// that builds it when it is missing.
pub fn binary() -> PathBuf {
    let imgflow = PathBuf::from(env!("CARGO_BIN_EXE_imgflow"));
    let dir = imgflow
        .parent()
        .expect("CARGO_BIN_EXE_imgflow has a parent directory");
    let path = dir.join(format!("conformance{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "the conformance binary is missing at {}: build the whole workspace first \
         (`cargo build --workspace --release`, same profile as `cargo test`)",
        path.display()
    );
    path
}

/// Run the suite against `url` trusting `ca` with `extra` arguments; returns the exit
/// code and the parsed JSON report. Panics (with stderr) on exit code 2, a timeout or
/// an unreadable report.
pub fn run(url: &str, ca: &Path, extra: &[&str]) -> (i32, Vec<Case>) {
    let (code, stdout, stderr) = run_raw(url, ca, &[&["--json"], extra].concat());
    let cases: Vec<Case> = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("conformance printed no valid JSON report ({e}):\n{stdout}\nstderr:\n{stderr}")
    });
    assert!(!cases.is_empty(), "the conformance run reported no case");
    (code, cases)
}

/// Run the suite with `args` after `--url` and `--cacert`; returns exit code, stdout and
/// stderr. Panics on exit code 2 (usage or connection error) and on timeouts.
pub fn run_raw(url: &str, ca: &Path, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("temp dir for conformance output");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = Command::new(binary())
        .arg("--url")
        .arg(url)
        .arg("--cacert")
        .arg(ca)
        .args(args)
        .env_remove("CONFORMANCE_BASIC_AUTH")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawning the conformance binary");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for conformance") {
            break status;
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "conformance did not finish within {RUN_TIMEOUT:?}; stderr:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let code = status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "conformance exited with {status} (usage or connection error):\n{stderr}"
    );
    (code, stdout, stderr)
}

/// Ids of the cases with `result`.
pub fn ids_with(cases: &[Case], result: &str) -> BTreeSet<String> {
    cases
        .iter()
        .filter(|c| c.result == result)
        .map(|c| c.id.clone())
        .collect()
}

/// `id: detail` lines of the cases whose id is in `ids`.
pub fn details(cases: &[Case], ids: &BTreeSet<String>) -> String {
    cases
        .iter()
        .filter(|c| ids.contains(&c.id))
        .map(|c| format!("  {} [{}]: {}", c.id, c.result, c.detail))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The case ids CNCF Distribution 2.8 is documented not to pass with `result` (`fail` or
/// `skip`).
pub fn known_distribution_differences(result: &str) -> BTreeSet<String> {
    let out = Command::new(binary())
        .arg("--list-known-differences")
        .output()
        .expect("running conformance --list-known-differences");
    assert!(
        out.status.success(),
        "conformance --list-known-differences failed"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut fields = l.split('\t');
            Some((fields.next()?, fields.next()?))
        })
        .filter(|(id, r)| !id.is_empty() && *r == result)
        .map(|(id, _)| id.to_string())
        .collect()
}
