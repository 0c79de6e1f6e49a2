//! The check report: one [`CheckResult`] per test, totals, and the GPU verdict. It is
//! what publish prints and what it attaches to the image as the check-report referrer, so
//! it serialises to stable JSON (snake_case fields, lower-case statuses, durations in ms).

use std::time::Duration;

use serde::{Serialize, Serializer};

/// Which kind of check a result belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// A `commandTests` entry run in a container.
    Command,
    /// A `fileExistenceTests` entry read from the exported filesystem.
    FileExistence,
    /// A `fileContentTests` entry read from the exported filesystem.
    FileContent,
    /// One field of the `metadataTest`, read from the image config.
    Metadata,
    /// A `licenseTests` entry.
    License,
    /// `containerRunOptions` that imgflow refuses (privileged, capabilities, mounts).
    RunOptions,
    /// `max_size_mb` / `max_growth_mb`.
    SizeBudget,
    /// GPU tier 1: environment and libraries, from outside.
    GpuStatic,
    /// GPU tier 2: every shared library's DT_NEEDED resolves inside the image.
    GpuLinkage,
    /// GPU tier 3: `--gpus all` probe and device tests (needs an NVIDIA runtime).
    GpuRuntime,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The check held.
    Passed,
    /// The check did not hold (or could not be run in a way that proves it).
    Failed,
    /// The check was not run; the message says why.
    Skipped,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// The kind of check.
    pub kind: CheckKind,
    /// The test's name (from the check file, or chosen by imgflow for its own checks).
    pub name: String,
    /// The check file it came from, when it came from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Passed, failed or skipped.
    pub status: Status,
    /// On failure what was expected and what was found; when skipped, why; when passed,
    /// empty or a detail (what was found, how much of a budget was used).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// How long the check took.
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
}

impl CheckResult {
    /// A result with no file and no duration yet.
    pub fn new(kind: CheckKind, name: impl Into<String>, status: Status) -> CheckResult {
        CheckResult {
            kind,
            name: name.into(),
            file: None,
            status,
            message: String::new(),
            duration: Duration::ZERO,
        }
    }

    /// A passed result.
    pub fn passed(kind: CheckKind, name: impl Into<String>) -> CheckResult {
        CheckResult::new(kind, name, Status::Passed)
    }

    /// A failed result saying why.
    pub fn failed(kind: CheckKind, name: impl Into<String>, why: impl Into<String>) -> CheckResult {
        CheckResult::new(kind, name, Status::Failed).with_message(why)
    }

    /// A skipped result saying why.
    pub fn skipped(
        kind: CheckKind,
        name: impl Into<String>,
        why: impl Into<String>,
    ) -> CheckResult {
        CheckResult::new(kind, name, Status::Skipped).with_message(why)
    }

    /// Passed when `problems` is empty, else failed with them joined by `; `.
    pub fn from_problems(
        kind: CheckKind,
        name: impl Into<String>,
        problems: &[String],
    ) -> CheckResult {
        if problems.is_empty() {
            CheckResult::passed(kind, name)
        } else {
            CheckResult::failed(kind, name, problems.join("; "))
        }
    }

    /// Sets the message.
    pub fn with_message(mut self, message: impl Into<String>) -> CheckResult {
        self.message = message.into();
        self
    }

    /// Sets the duration.
    pub fn with_duration(mut self, duration: Duration) -> CheckResult {
        self.duration = duration;
        self
    }
}

fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How many checks passed, failed and were skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Passed checks.
    pub passed: usize,
    /// Failed checks.
    pub failed: usize,
    /// Skipped checks.
    pub skipped: usize,
}

/// What can honestly be said about an image's GPU support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum GpuVerdict {
    /// The image is not a GPU image (`gpu = false`).
    #[serde(rename = "n/a")]
    NotApplicable,
    /// A GPU image whose runtime tier did not run or did not pass: static and linkage
    /// checks say nothing about whether it works on a device.
    #[serde(rename = "not verified")]
    NotVerified,
    /// The `--gpus all` probe and every device test passed on an NVIDIA runtime.
    #[serde(rename = "verified")]
    Verified,
}

impl GpuVerdict {
    /// The word publish prints (`n/a`, `not verified`, `verified`).
    pub fn as_str(self) -> &'static str {
        match self {
            GpuVerdict::NotApplicable => "n/a",
            GpuVerdict::NotVerified => "not verified",
            GpuVerdict::Verified => "verified",
        }
    }
}

/// The checks of one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    /// The image that was checked (id or tag, as given).
    pub image: String,
    /// Every result, in the order the checks ran.
    pub results: Vec<CheckResult>,
    /// Counts of `results` by status.
    pub totals: Totals,
    /// The GPU verdict.
    pub gpu: GpuVerdict,
}

impl CheckReport {
    /// An empty report for `image`.
    pub fn new(image: impl Into<String>) -> CheckReport {
        CheckReport {
            image: image.into(),
            results: Vec::new(),
            totals: Totals::default(),
            gpu: GpuVerdict::NotApplicable,
        }
    }

    /// Adds results and updates the totals.
    pub fn extend(&mut self, results: impl IntoIterator<Item = CheckResult>) {
        for result in results {
            match result.status {
                Status::Passed => self.totals.passed += 1,
                Status::Failed => self.totals.failed += 1,
                Status::Skipped => self.totals.skipped += 1,
            }
            self.results.push(result);
        }
    }

    /// True when no check failed (skipped ones do not fail an image).
    pub fn ok(&self) -> bool {
        self.totals.failed == 0
    }

    /// The report as pretty JSON (the referrer artifact's content).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }
}
