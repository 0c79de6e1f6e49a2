//! CNCF Distribution 2.8 (Debian's `docker-registry`), the reference implementation, fails
//! exactly the conformance cases documented in `conformance::known` (it predates
//! distribution-spec v1.1): no more, so the suite does not fail correct behaviour, and no
//! fewer, so the documented list stays true.

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
    let known = known_distribution_differences();
    assert!(!known.is_empty(), "the known-differences list is empty");

    let unexpected = &failed - &known;
    let fixed = &known - &failed;
    assert!(
        unexpected.is_empty() && fixed.is_empty() && skipped.is_empty(),
        "Distribution's results differ from the documented known differences.\n\
         failing but not documented:\n{}\n\
         documented but not failing: {fixed:?}\n\
         skipped:\n{}\nregistry log:\n{}",
        details(&cases, &unexpected),
        details(&cases, &skipped),
        registry.log_tail(40)
    );
    assert_eq!(code, 1, "exit status of a run with failures");
}
