//! CNCF Distribution 2.8 (Debian's `docker-registry`), the reference implementation, fails
//! (or skips) exactly the conformance cases documented in `conformance::known` (it
//! predates distribution-spec v1.1): no more, so the suite does not fail correct
//! behaviour, and no fewer, so the documented list stays true. Its exit status follows
//! the levels: MUST failures fail a run, SHOULD/MAY ones only with `--strict`.

mod common;
mod conformance_support;

use common::{Distribution, Registry};
use conformance_support::{details, ids_with, known_distribution_differences, run};

#[test]
fn distribution_fails_exactly_the_known_differences() {
    let registry = Distribution::start();
    let (code, cases) = run(&registry.url(), &registry.ca_path(), &[]);
    let failed = ids_with(&cases, "fail");
    let skipped = ids_with(&cases, "skip");
    let known_failed = known_distribution_differences("fail");
    let known_skipped = known_distribution_differences("skip");
    assert!(
        !known_failed.is_empty(),
        "the known-differences list is empty"
    );

    let unexpected = &failed - &known_failed;
    let fixed = &known_failed - &failed;
    let unexpected_skips = &skipped - &known_skipped;
    let missing_skips = &known_skipped - &skipped;
    assert!(
        unexpected.is_empty()
            && fixed.is_empty()
            && unexpected_skips.is_empty()
            && missing_skips.is_empty(),
        "Distribution's results differ from the documented known differences.\n\
         failing but not documented:\n{}\n\
         documented but not failing: {fixed:?}\n\
         skipped but not documented:\n{}\n\
         documented as skipped but not skipped: {missing_skips:?}\nregistry log:\n{}",
        details(&cases, &unexpected),
        details(&cases, &unexpected_skips),
        registry.log_tail(40)
    );
    // Only MUST failures fail a run (SHOULD and MAY ones are reported).
    let must_failures = cases
        .iter()
        .filter(|c| c.result == "fail" && c.level == "MUST")
        .count();
    assert!(must_failures > 0, "Distribution 2.8 fails MUST cases");
    assert_eq!(code, 1, "exit status of a run with MUST failures");
    let should_or_may = cases
        .iter()
        .filter(|c| c.result == "fail" && c.level != "MUST")
        .count();
    assert!(
        should_or_may > 0,
        "the known differences include SHOULD/MAY failures, reported by level"
    );
}

/// A run limited to what Distribution does right at MUST level passes (exit 0) although
/// it fails SHOULD cases, and fails with `--strict`.
#[test]
fn distribution_pull_run_fails_only_with_strict() {
    let registry = Distribution::start();
    let (code, cases) = run(&registry.url(), &registry.ca_path(), &["--only", "pull"]);
    let failed: Vec<&conformance_support::Case> =
        cases.iter().filter(|c| c.result == "fail").collect();
    assert!(
        !failed.is_empty() && failed.iter().all(|c| c.level != "MUST"),
        "pull: Distribution fails only SHOULD/MAY cases: {failed:?}"
    );
    assert_eq!(code, 0, "SHOULD/MAY failures alone do not fail a run");
    let (code, _) = run(
        &registry.url(),
        &registry.ca_path(),
        &["--only", "pull", "--strict"],
    );
    assert_eq!(code, 1, "--strict fails on SHOULD/MAY failures");
}
