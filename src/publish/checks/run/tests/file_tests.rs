//! fileExistenceTests, fileContentTests, licenseTests on an exported archive.

use super::super::files::executable_by;
use super::super::{run_checks, CheckOptions, CheckResult, Status};
use super::check_file;
use super::fake::{FakeEngine, Tar};
use crate::publish::checks::ExecutableBy;
use crate::publish::docker::ImageConfig;

fn image() -> Vec<u8> {
    Tar::new()
        .dir("./", 0o755)
        .dir("bin/", 0o755)
        .file("bin/busybox", 0o755, b"\x7fELF")
        .symlink("bin/sh", "busybox")
        .dir("tmp/", 0o1777)
        .file_owned(
            "home/nb/notes.txt",
            0o640,
            1000,
            100,
            b"name = notebook\nport = 8888\n",
        )
        .file("usr/local/bin/tool", 0o4750, b"#!/bin/sh\n")
        .file("usr/local/bin/other-only", 0o701, b"")
        .file("usr/share/doc/pkg/copyright", 0o644, b"Apache-2.0")
        .finish()
}

fn run(yaml: &str) -> Vec<CheckResult> {
    let engine = FakeEngine::new(ImageConfig::default(), image());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt
        .block_on(run_checks(
            &engine,
            "img",
            &[check_file(yaml)],
            &CheckOptions::default(),
        ))
        .unwrap();
    assert_eq!(
        *engine.exports.lock().unwrap(),
        1,
        "one export for all file tests"
    );
    assert!(
        engine.runs().is_empty(),
        "file tests run nothing in the image"
    );
    report.results
}

fn statuses(results: &[CheckResult]) -> Vec<(&str, Status)> {
    results
        .iter()
        .map(|r| (r.name.as_str(), r.status))
        .collect()
}

#[test]
fn existence_permissions_owner_and_executable_bits() {
    let results = run(r#"
schemaVersion: "2.0.0"
fileExistenceTests:
  - name: busybox
    path: /bin/busybox
    permissions: "-rwxr-xr-x"
    uid: 0
    gid: 0
    isExecutableBy: any
  - name: symlink itself
    path: /bin/sh
    permissions: "Lrwxrwxrwx"
  - name: sticky tmp
    path: /tmp
    permissions: "dtrwxrwxrwx"
  - name: notes owner
    path: /home/nb/notes.txt
    permissions: "-rw-r-----"
    uid: 1000
    gid: 100
  - name: unchecked ids
    path: /home/nb/notes.txt
    uid: -1
    gid: -1
  - name: absent
    path: /etc/shadow
    shouldExist: false
  - name: setuid tool by group
    path: /usr/local/bin/tool
    permissions: "urwxr-x---"
    isExecutableBy: group
  - name: wrong permissions
    path: /home/nb/notes.txt
    permissions: "-rw-r--r--"
  - name: wrong owner
    path: /home/nb/notes.txt
    uid: 0
    gid: 0
  - name: missing
    path: /opt/app
  - name: should not exist
    path: /bin/sh
    shouldExist: false
  - name: not executable by other
    path: /usr/local/bin/tool
    isExecutableBy: other
"#);
    let passing = [
        "busybox",
        "symlink itself",
        "sticky tmp",
        "notes owner",
        "unchecked ids",
        "absent",
        "setuid tool by group",
    ];
    for (name, status) in statuses(&results) {
        let expected = if passing.contains(&name) {
            Status::Passed
        } else {
            Status::Failed
        };
        assert_eq!(status, expected, "{name}: {results:#?}");
    }
    let msg = |name: &str| {
        results
            .iter()
            .find(|r| r.name == name)
            .unwrap()
            .message
            .clone()
    };
    assert_eq!(
        msg("wrong permissions"),
        "expected permissions -rw-r--r--, got -rw-r-----"
    );
    assert_eq!(
        msg("wrong owner"),
        "expected uid 0, got 1000; expected gid 0, got 100"
    );
    assert_eq!(msg("missing"), "/opt/app does not exist");
    assert!(msg("should not exist").contains("should not exist"));
    assert!(msg("not executable by other").contains("urwxr-x---"));
}

#[test]
fn executable_by_reads_the_right_bit() {
    assert!(executable_by(0o100, ExecutableBy::Owner));
    assert!(!executable_by(0o011, ExecutableBy::Owner));
    assert!(executable_by(0o010, ExecutableBy::Group));
    assert!(!executable_by(0o101, ExecutableBy::Group));
    assert!(executable_by(0o001, ExecutableBy::Other));
    assert!(!executable_by(0o110, ExecutableBy::Other));
    assert!(executable_by(0o001, ExecutableBy::Any));
    assert!(!executable_by(0o644, ExecutableBy::Any));
}

#[test]
fn contents_must_match_expected_and_not_excluded_regexes() {
    let results = run(r#"
schemaVersion: "2.0.0"
fileContentTests:
  - name: good
    path: /home/nb/notes.txt
    expectedContents: ["port = \\d+", "(?m)^name = notebook$"]
    excludedContents: ["password"]
  - name: expected missing
    path: /home/nb/notes.txt
    expectedContents: ["port = 9999"]
  - name: excluded present
    path: /home/nb/notes.txt
    excludedContents: ["notebook"]
  - name: through a symlink
    path: /bin/sh
    expectedContents: ["ELF"]
  - name: no file
    path: /etc/app.conf
    expectedContents: ["x"]
  - name: a directory
    path: /tmp
"#);
    let expected = [
        ("good", Status::Passed),
        ("expected missing", Status::Failed),
        ("excluded present", Status::Failed),
        ("through a symlink", Status::Passed),
        ("no file", Status::Failed),
        ("a directory", Status::Failed),
    ];
    assert_eq!(statuses(&results), expected, "{results:#?}");
    assert!(
        results[1].message.contains(r#"to match "port = 9999""#),
        "{}",
        results[1].message
    );
    assert!(results[2].message.contains(r#"not to match "notebook""#));
    assert!(results[4].message.contains("cannot read /etc/app.conf"));
}

#[test]
fn license_files_are_checked_and_the_debian_scan_is_skipped() {
    let results = run(r#"
schemaVersion: "2.0.0"
licenseTests:
  - debian: true
    files: ["/usr/share/doc/pkg/copyright"]
  - files: ["/usr/share/doc/missing/copyright"]
"#);
    let expected = [
        ("licenseTests[0] debian", Status::Skipped),
        ("licenseTests[0] files", Status::Passed),
        ("licenseTests[1] files", Status::Failed),
    ];
    assert_eq!(statuses(&results), expected, "{results:#?}");
    assert!(results[0].message.contains("not implemented"));
}
