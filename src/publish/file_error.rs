//! The error of reading one of the files `imgflow publish` is given (imgflow.toml, check
//! files): it names the file and, where it can, the line.

use std::path::{Path, PathBuf};

/// A file could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid: bad syntax, an unknown key or field, a wrong value, a
    /// path that does not exist.
    #[error("{}{}: {message}", .path.display(), .line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending key or value, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
}

impl FileError {
    /// The line the error names, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            FileError::Invalid { line, .. } => *line,
            FileError::Read { .. } => None,
        }
    }
}

/// The text of `path`.
pub(crate) fn read(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The 1-based line of byte `offset` in `text`.
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}
