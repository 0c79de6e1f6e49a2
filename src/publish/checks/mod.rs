//! Check files: container-structure-test YAML (schemaVersion 2.0.0) read into typed
//! tests. Existing files are read as they are; a field the tool does not know, a value
//! of the wrong type or a regex that does not compile is an error naming the file and
//! the line. [`run`] runs them against a built image.

mod pattern;
pub mod run;
mod schema;

pub use pattern::{KeyValue, Pattern};
pub use schema::{
    CommandTest, ContainerRunOptions, ExecutableBy, FileContentTest, FileExistenceTest,
    LicenseTest, MetadataTest, StructureTest, SCHEMA_VERSION,
};

use super::file_error::{read, FileError};
use std::path::{Path, PathBuf};

/// Errors reading a check file.
pub type CheckError = FileError;

/// How many tests of each kind a file has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// `commandTests`.
    pub command: usize,
    /// `fileExistenceTests`.
    pub file_existence: usize,
    /// `fileContentTests`.
    pub file_content: usize,
    /// `metadataTest` (0 or 1).
    pub metadata: usize,
    /// `licenseTests`.
    pub license: usize,
}

impl Counts {
    /// All tests.
    pub fn total(&self) -> usize {
        self.command + self.file_existence + self.file_content + self.metadata + self.license
    }
}

/// One check file, read.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckFile {
    /// The file.
    pub path: PathBuf,
    /// Its tests.
    pub tests: StructureTest,
}

impl CheckFile {
    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<CheckFile, CheckError> {
        CheckFile::parse(&read(path)?, path)
    }

    /// Parse `text` as the contents of `path`.
    pub fn parse(text: &str, path: &Path) -> Result<CheckFile, CheckError> {
        let invalid = |line: Option<usize>, message: String| FileError::Invalid {
            path: path.to_path_buf(),
            line,
            message,
        };
        // The version first, as container-structure-test does: a file of another schema
        // gets that said, not a list of the fields it does not know.
        #[derive(serde::Deserialize)]
        struct Version {
            #[serde(rename = "schemaVersion")]
            schema_version: Option<String>,
        }
        let version: Version = serde_norway::from_str(text).map_err(|e| yaml_error(e, &invalid))?;
        match version.schema_version.as_deref() {
            Some(SCHEMA_VERSION) => {}
            Some(other) => {
                return Err(invalid(
                    line_of_key(text, "schemaVersion"),
                    format!("schemaVersion {other:?} is not supported (only {SCHEMA_VERSION:?})"),
                ))
            }
            None => {
                return Err(invalid(
                    None,
                    format!("no schemaVersion (container-structure-test files start with schemaVersion: \"{SCHEMA_VERSION}\")"),
                ))
            }
        }
        let tests: StructureTest =
            serde_norway::from_str(text).map_err(|e| yaml_error(e, &invalid))?;
        Ok(CheckFile {
            path: path.to_path_buf(),
            tests,
        })
    }

    /// How many tests of each kind the file has.
    pub fn counts(&self) -> Counts {
        let t = &self.tests;
        Counts {
            command: t.command_tests.len(),
            file_existence: t.file_existence_tests.len(),
            file_content: t.file_content_tests.len(),
            metadata: usize::from(t.metadata_test.is_some()),
            license: t.license_tests.len(),
        }
    }
}

/// A YAML error as (line, message without the position the message repeats).
fn yaml_error(
    e: serde_norway::Error,
    invalid: &dyn Fn(Option<usize>, String) -> CheckError,
) -> CheckError {
    let line = e.location().map(|l| l.line());
    let full = e.to_string();
    let message = match full.rfind(" at line ") {
        Some(i) if line.is_some() => full[..i].to_string(),
        _ => full,
    };
    invalid(line, message)
}

/// The line of the first top-level `key:` in `text`.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with(':'))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests;
