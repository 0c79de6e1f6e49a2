//! `fileExistenceTests`, `fileContentTests` and `licenseTests`, judged on the image's
//! filesystem read from outside ([`ImageFs`], from `docker export`): no tool inside the
//! image is run, so a scratch or busybox image is checked like any other.
//!
//! Paths are looked up as inside the image. Existence, `permissions`, `uid`, `gid` and
//! `isExecutableBy` look at the path itself (a final symlink is not followed, like
//! container-structure-test reading the entry from the image: a symlink's permissions are
//! `Lrwxrwxrwx`); contents follow symlinks.

use std::time::Instant;

use super::super::{ExecutableBy, FileContentTest, FileExistenceTest, LicenseTest};
use super::command::excerpt;
use super::report::{CheckKind, CheckResult};
use crate::publish::docker::{FileKind, ImageFs};

/// Judges one `fileExistenceTests` entry.
pub fn file_existence(fs: &ImageFs, test: &FileExistenceTest) -> CheckResult {
    let started = Instant::now();
    let kind = CheckKind::FileExistence;
    let problems = match (fs.lstat(&test.path), test.should_exist) {
        (None, true) => vec![format!("{} does not exist", test.path)],
        (None, false) => Vec::new(),
        (Some(meta), false) => vec![format!(
            "{} should not exist, but is there ({})",
            test.path,
            meta.permissions()
        )],
        (Some(meta), true) => {
            let mut problems = Vec::new();
            if let Some(expected) = &test.permissions {
                let actual = meta.permissions();
                if &actual != expected {
                    problems.push(format!("expected permissions {expected}, got {actual}"));
                }
            }
            for (what, expected, actual) in
                [("uid", test.uid, meta.uid), ("gid", test.gid, meta.gid)]
            {
                match expected {
                    Some(e) if e >= 0 && u64::try_from(e).ok() != Some(actual) => {
                        problems.push(format!("expected {what} {e}, got {actual}"));
                    }
                    _ => {}
                }
            }
            if let Some(by) = test.is_executable_by {
                if !executable_by(meta.mode, by) {
                    problems.push(format!(
                        "expected it to be executable by {}, permissions are {}",
                        executable_by_word(by),
                        meta.permissions()
                    ));
                }
            }
            problems
        }
    };
    CheckResult::from_problems(kind, &test.name, &problems).with_duration(started.elapsed())
}

/// True when `mode` lets `by` execute: owner `0o100`, group `0o010`, other `0o001`, any
/// of the three for `any`.
pub fn executable_by(mode: u32, by: ExecutableBy) -> bool {
    let bits = match by {
        ExecutableBy::Owner => 0o100,
        ExecutableBy::Group => 0o010,
        ExecutableBy::Other => 0o001,
        ExecutableBy::Any => 0o111,
    };
    mode & bits != 0
}

fn executable_by_word(by: ExecutableBy) -> &'static str {
    match by {
        ExecutableBy::Owner => "owner",
        ExecutableBy::Group => "group",
        ExecutableBy::Other => "other",
        ExecutableBy::Any => "any",
    }
}

/// Judges one `fileContentTests` entry, reading at most `limit` bytes of contents.
pub async fn file_content(fs: &ImageFs, test: &FileContentTest, limit: u64) -> CheckResult {
    let started = Instant::now();
    let kind = CheckKind::FileContent;
    let contents = match fs.read(&test.path, limit).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            return CheckResult::failed(kind, &test.name, format!("cannot read {}: {e}", test.path))
                .with_duration(started.elapsed())
        }
    };
    let mut problems = Vec::new();
    for p in &test.expected_contents {
        if !p.is_match(&contents) {
            problems.push(format!(
                "expected {} to match {:?}, contents: {:?}",
                test.path,
                p.as_str(),
                excerpt(&contents)
            ));
        }
    }
    for p in &test.excluded_contents {
        if p.is_match(&contents) {
            problems.push(format!(
                "expected {} not to match {:?}, contents: {:?}",
                test.path,
                p.as_str(),
                excerpt(&contents)
            ));
        }
    }
    CheckResult::from_problems(kind, &test.name, &problems).with_duration(started.elapsed())
}

/// Judges one `licenseTests` entry: the listed `files` must exist as regular files; the
/// `debian` copyright scan is not implemented and is reported as skipped, never passed.
pub fn license(fs: &ImageFs, test: &LicenseTest, index: usize) -> Vec<CheckResult> {
    let mut results = Vec::new();
    let name = format!("licenseTests[{index}]");
    if test.debian {
        results.push(CheckResult::skipped(
            CheckKind::License,
            format!("{name} debian"),
            "the Debian copyright scan is not implemented by imgflow",
        ));
    }
    if !test.files.is_empty() {
        let problems: Vec<String> = test
            .files
            .iter()
            .filter(|f| fs.stat(f).map(|m| m.kind) != Some(FileKind::File))
            .map(|f| format!("license file {f} is missing"))
            .collect();
        results.push(CheckResult::from_problems(
            CheckKind::License,
            format!("{name} files"),
            &problems,
        ));
    }
    if results.is_empty() {
        results.push(CheckResult::skipped(
            CheckKind::License,
            name,
            "nothing to check (neither debian nor files)",
        ));
    }
    results
}
