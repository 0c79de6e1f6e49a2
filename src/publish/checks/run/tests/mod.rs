//! Unit tests of the check runner on a fake [`Engine`]: check containers are run as host
//! processes (so the setup/teardown script and its quoting really run under `sh`), images
//! are tar archives written here, the daemon's runtimes are whatever a test says.

mod command_tests;
mod fake;
mod file_tests;
mod gpu_tests;
mod metadata_tests;

use std::path::Path;

use super::super::CheckFile;

/// Parses a check file written in a test.
fn check_file(yaml: &str) -> CheckFile {
    CheckFile::parse(yaml, Path::new("checks/test.yaml")).expect("test YAML parses")
}
