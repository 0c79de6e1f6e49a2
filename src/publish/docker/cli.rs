//! [`DockerCli`]: how the docker CLI is started (program, environment, time limit) and how
//! its failures become [`DockerError`]s.
//!
//! imgflow passes no `-H`/`--context` of its own: the CLI finds the daemon exactly as it
//! does for the user (`DOCKER_HOST`, `DOCKER_CONTEXT`, the current context in
//! `~/.docker/config.json`, TLS settings), unless the caller sets variables here.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::capture::{capture, Captured};
use super::error::{DockerError, Result};

/// Default limit for one short docker command (inspect, create, rm, info, ...).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// Most bytes of stdout kept from a short command (inspect output of a large image).
const STDOUT_LIMIT: usize = 16 * 1024 * 1024;
/// Most bytes of stderr kept from any command, for error messages.
const STDERR_LIMIT: usize = 64 * 1024;

/// The docker CLI as imgflow runs it.
#[derive(Debug, Clone)]
pub struct DockerCli {
    program: PathBuf,
    env: Vec<(OsString, Option<OsString>)>,
    command_timeout: Duration,
}

impl Default for DockerCli {
    fn default() -> Self {
        DockerCli::new()
    }
}

impl DockerCli {
    /// `docker` from `PATH`, with the caller's environment.
    pub fn new() -> DockerCli {
        DockerCli {
            program: PathBuf::from("docker"),
            env: Vec::new(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// Runs this program instead of `docker` from `PATH`.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> DockerCli {
        self.program = program.into();
        self
    }

    /// Sets an environment variable for every docker command (e.g. `DOCKER_CONFIG`).
    pub fn with_env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> DockerCli {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an environment variable for every docker command.
    pub fn without_env(mut self, key: impl AsRef<OsStr>) -> DockerCli {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Talks to the daemon at `host` (sets `DOCKER_HOST`, which overrides any context).
    pub fn with_host(self, host: impl AsRef<OsStr>) -> DockerCli {
        self.with_env("DOCKER_HOST", host)
    }

    /// Limits each short command (inspect, create, rm, info) to `timeout`.
    pub fn with_command_timeout(mut self, timeout: Duration) -> DockerCli {
        self.command_timeout = timeout;
        self
    }

    /// The program that is run.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// A blocking command (used where no runtime may be available: `Drop`).
    pub(crate) fn std_command<S: AsRef<OsStr>>(&self, args: &[S]) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(args).stdin(Stdio::null());
        for (key, value) in &self.env {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        cmd
    }

    /// An async command with stdin closed, stdout and stderr piped, killed when dropped.
    pub(crate) fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::from(self.std_command(args));
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Starts `cmd`, reporting a missing CLI as [`DockerError::DockerNotFound`].
    pub(crate) fn spawn(&self, cmd: &mut tokio::process::Command) -> Result<tokio::process::Child> {
        cmd.spawn().map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                DockerError::DockerNotFound {
                    program: self.program.clone(),
                    source,
                }
            }
            _ => DockerError::io(format!("starting {}", self.program.display()), source),
        })
    }

    /// Runs a short command to its end within the command timeout and returns its stdout,
    /// or the classified failure.
    pub(crate) async fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Vec<u8>> {
        let label = describe(args);
        let mut child = self.spawn(&mut self.command(args))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let finish = async {
            let (out, err, status) = tokio::join!(
                capture(stdout, STDOUT_LIMIT),
                capture(stderr, STDERR_LIMIT),
                child.wait()
            );
            let io = |e| DockerError::io(format!("reading `docker {label}`"), e);
            Ok::<_, DockerError>((out.map_err(io)?, err.map_err(io)?, status.map_err(io)?))
        };
        let (out, err, status) = tokio::time::timeout(self.command_timeout, finish)
            .await
            .map_err(|_| DockerError::Timeout {
                command: label.clone(),
                after: self.command_timeout,
            })??;
        if !status.success() {
            return Err(self.failure(&label, &status.to_string(), &err.text()));
        }
        if out.truncated {
            return Err(DockerError::BadOutput {
                command: label,
                detail: format!("more than {STDOUT_LIMIT} bytes on stdout"),
            });
        }
        Ok(out.bytes)
    }

    /// Turns a failed command's stderr into the most specific error.
    pub(crate) fn failure(&self, command: &str, status: &str, stderr: &str) -> DockerError {
        classify_failure(command, status, stderr, self.configured_host().as_deref())
    }

    /// The `DOCKER_HOST` the CLI sees: set here, else inherited.
    fn configured_host(&self) -> Option<String> {
        let set_here = self.env.iter().rev().find(|(k, _)| k == "DOCKER_HOST");
        match set_here {
            Some((_, value)) => value.as_ref().map(|v| v.to_string_lossy().into_owned()),
            None => std::env::var("DOCKER_HOST").ok(),
        }
        .filter(|h| !h.is_empty())
    }
}

/// A short description of a command for messages: its first arguments.
pub(crate) fn describe<S: AsRef<OsStr>>(args: &[S]) -> String {
    let mut words: Vec<String> = args
        .iter()
        .take(4)
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    if args.len() > 4 {
        words.push("...".into());
    }
    words.join(" ")
}

/// Classifies a failed command by the CLI's message: daemon unreachable, missing image,
/// or a plain failure. `host` is the configured `DOCKER_HOST`, named when the message
/// does not say which address was tried.
pub fn classify_failure(
    command: &str,
    status: &str,
    stderr: &str,
    host: Option<&str>,
) -> DockerError {
    let message = last_chars(stderr.trim(), 2000);
    let unreachable = [
        "Cannot connect to the Docker daemon",
        "error during connect",
        "Is the docker daemon running",
    ];
    if unreachable.iter().any(|m| message.contains(m)) {
        let tried = message
            .split_once("daemon at ")
            .and_then(|(_, rest)| rest.split_once(". Is the"))
            .map(|(addr, _)| addr.to_string())
            .or_else(|| host.map(str::to_string))
            .unwrap_or_else(|| "the current docker context (DOCKER_HOST is not set)".into());
        return DockerError::DaemonUnreachable {
            host: tried,
            detail: message,
        };
    }
    if let Some((_, what)) = message.split_once("No such image: ") {
        return DockerError::NoSuchImage(what.lines().next().unwrap_or(what).trim().to_string());
    }
    DockerError::CommandFailed {
        command: command.to_string(),
        status: status.to_string(),
        stderr: message,
    }
}

/// The last `max` characters of `text` (whole characters), prefixed with `...` if cut.
fn last_chars(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let tail: String = text.chars().skip(count - max).collect();
    format!("...{tail}")
}

/// Output of a streamed command whose stdout went elsewhere: its exit and its stderr.
pub(crate) struct Finished {
    pub status: std::process::ExitStatus,
    pub stderr: Captured,
}

impl DockerCli {
    /// Waits for a spawned child whose stdout is consumed by the caller, capturing stderr.
    pub(crate) async fn finish(
        &self,
        child: &mut tokio::process::Child,
        label: &str,
    ) -> Result<Finished> {
        let stderr = child.stderr.take().expect("stderr is piped");
        let (stderr, status) = tokio::join!(capture(stderr, STDERR_LIMIT), child.wait());
        let io = |e| DockerError::io(format!("running `docker {label}`"), e);
        Ok(Finished {
            stderr: stderr.map_err(io)?,
            status: status.map_err(io)?,
        })
    }

    /// Like [`DockerCli::finish`], failing unless the command succeeded.
    pub(crate) async fn finish_ok(
        &self,
        child: &mut tokio::process::Child,
        label: &str,
    ) -> Result<()> {
        let done = self.finish(child, label).await?;
        if done.status.success() {
            Ok(())
        } else {
            Err(self.failure(label, &done.status.to_string(), &done.stderr.text()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_daemon_names_the_address_the_cli_tried() {
        let err = classify_failure(
            "info",
            "exit status: 1",
            "Cannot connect to the Docker daemon at unix:///tmp/x/docker.sock. Is the docker daemon running?\n",
            Some("tcp://ignored:2375"),
        );
        match err {
            DockerError::DaemonUnreachable { host, .. } => {
                assert_eq!(host, "unix:///tmp/x/docker.sock")
            }
            other => panic!("{other:?}"),
        }
        let err = classify_failure(
            "info",
            "exit status: 1",
            "error during connect: Get \"http://h:2375/v1.50/info\": dial tcp: lookup h: no such host",
            Some("tcp://h:2375"),
        );
        assert!(
            matches!(&err, DockerError::DaemonUnreachable { host, .. } if host == "tcp://h:2375"),
            "{err:?}"
        );
        assert!(err.to_string().contains("no such host"));
    }

    #[test]
    fn missing_images_and_other_failures_are_told_apart() {
        let err = classify_failure(
            "image inspect nope",
            "exit status: 1",
            "Error response from daemon: No such image: nope:latest\n",
            None,
        );
        assert!(
            matches!(&err, DockerError::NoSuchImage(i) if i == "nope:latest"),
            "{err:?}"
        );
        let err = classify_failure("rm -f x", "exit status: 1", "Error: boom", None);
        assert!(matches!(err, DockerError::CommandFailed { .. }));
    }

    #[test]
    fn commands_are_described_by_their_first_arguments() {
        assert_eq!(describe(&["image", "inspect", "x"]), "image inspect x");
        assert_eq!(describe(&["a", "b", "c", "d", "e"]), "a b c d ...");
    }

    #[tokio::test]
    async fn a_missing_cli_is_reported_as_such() {
        let cli = DockerCli::new().with_program("/nonexistent/imgflow-docker");
        let err = cli.run(&["version"]).await.unwrap_err();
        assert!(matches!(err, DockerError::DockerNotFound { .. }), "{err:?}");
    }
}
