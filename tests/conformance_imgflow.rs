//! `imgflow serve` passes every case of the OCI distribution-spec conformance suite
//! (`conformance/`), over HTTP/2 and over HTTP/1.1, with no failure and no skip.

mod common;
mod conformance_support;

use common::{Registry, Server};
use conformance_support::{details, ids_with, run, run_raw};

/// Fewest cases a full run has; guards against a suite that silently runs nothing.
const MIN_CASES: usize = 80;

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
