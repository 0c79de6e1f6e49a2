//! [`DockerError`]: every way talking to Docker can fail, with what a user needs to act on
//! it (the daemon address that was tried, the last lines of a failed build, ...).

use std::path::PathBuf;
use std::time::Duration;

/// Result of a Docker operation.
pub type Result<T, E = DockerError> = std::result::Result<T, E>;

/// A failure while driving the docker CLI or reading what it produced.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The docker CLI could not be started (not installed, or not on `PATH`).
    #[error("the docker CLI `{program}` was not found: {source} (install Docker's CLI or put it on PATH)")]
    DockerNotFound {
        /// The program that was looked up.
        program: PathBuf,
        /// Why starting it failed.
        #[source]
        source: std::io::Error,
    },
    /// The CLI runs but cannot reach a daemon.
    #[error("cannot reach the Docker daemon at {host}: {detail}")]
    DaemonUnreachable {
        /// The address the CLI tried (from its message, else `DOCKER_HOST` or the context).
        host: String,
        /// The CLI's own message.
        detail: String,
    },
    /// `docker build` failed; `log_tail` holds the last lines of its output.
    #[error("building {tag} failed ({status}):\n{}", log_tail.join("\n"))]
    BuildFailed {
        /// The tag the build was given.
        tag: String,
        /// How the CLI exited.
        status: String,
        /// The last lines of the build log (each line capped in length).
        log_tail: Vec<String>,
    },
    /// An image (or other object) the daemon does not have.
    #[error("no such image: {0}")]
    NoSuchImage(String),
    /// A docker command exited unsuccessfully for another reason.
    #[error("`docker {command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The subcommand and its main arguments, for the message.
        command: String,
        /// How the CLI exited.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
    /// A docker command did not finish in time (it was killed).
    #[error("`docker {command}` did not finish within {after:?}")]
    Timeout {
        /// The subcommand.
        command: String,
        /// The limit that was exceeded.
        after: Duration,
    },
    /// The CLI succeeded but printed something that could not be understood.
    #[error("unexpected output from `docker {command}`: {detail}")]
    BadOutput {
        /// The subcommand.
        command: String,
        /// What was wrong with it.
        detail: String,
    },
    /// A file in an exported filesystem is larger than the caller allowed to read.
    #[error("{path} is {size} bytes, more than the {limit} bytes allowed")]
    FileTooLarge {
        /// The path inside the image.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A path inside an exported filesystem that does not exist (or is not what was asked).
    #[error("{path}: {detail}")]
    NotInImage {
        /// The path inside the image.
        path: String,
        /// What is wrong (missing, a directory, a symlink loop, ...).
        detail: String,
    },
    /// A local I/O error (temporary files, pipes).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl DockerError {
    /// An [`DockerError::Io`] with a description of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> DockerError {
        DockerError::Io {
            context: context.into(),
            source,
        }
    }
}
