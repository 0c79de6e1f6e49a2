//! `imgflow serve` passes every case of the OCI distribution-spec conformance suite
//! (`conformance/`), over HTTP/2 and over HTTP/1.1, with no failure and no skip, and the
//! suite's teardown leaves the registry empty.

mod common;
mod conformance_support;

use common::{Registry, Server};
use conformance_support::{details, ids_with, run, run_raw};
use std::path::{Path, PathBuf};

/// Fewest cases a full run has; guards against a suite that silently runs nothing.
const MIN_CASES: usize = 100;

/// Files under `dir`, recursively (none when it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// After a run (with its teardown) the registry holds nothing: no repository in the
/// catalog, no blob file, no upload staging file.
fn assert_nothing_left(server: &Server) {
    let catalog = common::https_get(&format!("{}/v2/_catalog", server.url()), &server.ca_path())
        .expect("GET /v2/_catalog");
    assert_eq!(catalog.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&catalog.body).expect("catalog JSON");
    assert_eq!(
        body["repositories"],
        serde_json::json!([]),
        "repositories left after teardown"
    );
    for dir in ["blobs", "uploads"] {
        let left = files_under(&server.data_dir().join(dir));
        assert!(
            left.is_empty(),
            "files left in {dir}/ after teardown: {left:?}"
        );
    }
}

fn assert_all_pass(server: &Server, extra: &[&str]) {
    let (code, cases) = run(&server.url(), &server.ca_path(), extra);
    let not_passed = &ids_with(&cases, "fail") | &ids_with(&cases, "skip");
    assert!(
        not_passed.is_empty(),
        "imgflow did not pass {} conformance case(s):\n{}\nserver log:\n{}",
        not_passed.len(),
        details(&cases, &not_passed),
        server.log_tail(60)
    );
    assert_eq!(code, 0, "conformance exit status with no failure");
    assert!(
        cases.len() >= MIN_CASES,
        "only {} cases ran, expected at least {MIN_CASES}",
        cases.len()
    );
    for category in ["pull", "push", "discovery", "management"] {
        assert!(
            cases.iter().any(|c| c.category == category),
            "no {category} case ran"
        );
    }
    for level in ["MUST", "SHOULD", "MAY"] {
        assert!(
            cases.iter().any(|c| c.level == level),
            "no {level} case ran"
        );
    }
    assert_nothing_left(server);
}

#[test]
fn keep_leaves_the_pushed_content() {
    let server = Server::start();
    let (code, _) = run(
        &server.url(),
        &server.ca_path(),
        &["--only", "pull", "--keep"],
    );
    assert_eq!(code, 0);
    assert!(
        !files_under(&server.data_dir().join("blobs")).is_empty(),
        "--keep deleted the run's blobs"
    );
}

#[test]
fn imgflow_passes_every_conformance_case() {
    let server = Server::start();
    assert_all_pass(&server, &[]);
}

#[test]
fn imgflow_passes_every_conformance_case_over_http1() {
    let server = Server::start();
    assert_all_pass(&server, &["--http1"]);
}

#[test]
fn human_report_ends_with_the_counts_line() {
    let server = Server::start();
    let (code, stdout, _) = run_raw(&server.url(), &server.ca_path(), &["--only", "pull"]);
    assert_eq!(code, 0, "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    let last = lines.last().copied().unwrap_or_default();
    let cases = lines.len() - 1;
    assert_eq!(
        last,
        format!("{cases} passed, 0 failed, 0 skipped"),
        "{stdout}"
    );
    assert!(
        lines[..cases].iter().all(|l| l.starts_with("PASS pull/")),
        "{stdout}"
    );
}
