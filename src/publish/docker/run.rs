//! Check containers: [`RunSpec`] (isolated by default: no network, memory, CPU and
//! process limits, a timeout), the `docker create` line made from it, and running it with
//! stdout and stderr captured apart.
//!
//! A check runs as `create` + `start --attach` + `rm --force`, not `run --rm`: with
//! `--rm` a CLI killed at the timeout (or a dropped future) leaves the container running,
//! while a container created under a known name can always be force-removed
//! ([`super::guard::ContainerGuard`]). The exit code comes from the container's state,
//! not from the CLI, so a CLI failure is never read as the command's exit code.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::build::NetworkMode;
use super::capture::{capture, Captured, DEFAULT_CAPTURE_LIMIT};
use super::cli::DockerCli;
use super::error::{DockerError, Result};
use super::guard::{with_container, CONTAINER_LABEL};

/// How long output readers may take to finish after a timed-out container was removed.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// One command to run in a throw-away container of an image.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// The image (id or local tag).
    pub image: String,
    /// Replaces the image's entrypoint: `Some(vec![])` clears it, `None` keeps it.
    pub entrypoint: Option<Vec<String>>,
    /// Command and arguments (after the entrypoint); empty keeps the image's `CMD`.
    pub cmd: Vec<String>,
    /// Extra environment variables, in order.
    pub env: Vec<(String, String)>,
    /// `--user`, when not the image's.
    pub user: Option<String>,
    /// `--workdir`, when not the image's.
    pub workdir: Option<String>,
    /// Network; [`NetworkMode::None`] unless told otherwise.
    pub network: NetworkMode,
    /// Memory limit in bytes (swap is not allowed beyond it).
    pub memory_bytes: u64,
    /// CPU limit, e.g. `1.0`.
    pub cpus: f64,
    /// Most processes the container may have.
    pub pids_limit: u32,
    /// Longest the command may run; then it is killed and `timed_out` is set.
    pub timeout: Duration,
    /// `--gpus` value (e.g. `all`) for GPU runtime checks; `None` for no GPU.
    pub gpus: Option<String>,
    /// Most bytes kept of stdout and of stderr each.
    pub output_limit: usize,
}

impl RunSpec {
    /// `cmd` in `image` with the defaults: no network, 1 GiB, 1 CPU, 512 processes, 60 s.
    pub fn new<S: Into<String>>(
        image: impl Into<String>,
        cmd: impl IntoIterator<Item = S>,
    ) -> RunSpec {
        RunSpec {
            image: image.into(),
            entrypoint: None,
            cmd: cmd.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            user: None,
            workdir: None,
            network: NetworkMode::None,
            memory_bytes: 1024 * 1024 * 1024,
            cpus: 1.0,
            pids_limit: 512,
            timeout: Duration::from_secs(60),
            gpus: None,
            output_limit: DEFAULT_CAPTURE_LIMIT,
        }
    }
}

/// What a check container did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOutput {
    /// The command's exit code; `None` when it timed out.
    pub exit_code: Option<i64>,
    /// Standard output (capped at the spec's `output_limit`).
    pub stdout: Captured,
    /// Standard error (capped likewise).
    pub stderr: Captured,
    /// The command ran past the spec's timeout and was killed.
    pub timed_out: bool,
    /// The kernel killed it for exceeding its memory limit.
    pub oom_killed: bool,
    /// The daemon's error when the command could not start (e.g. executable not found).
    pub start_error: String,
    /// Wall time from start to exit (or to the timeout).
    pub duration: Duration,
}

/// The `docker create` arguments for `spec`, naming the container `name`.
pub fn create_args(spec: &RunSpec, name: &str) -> Vec<OsString> {
    let mut args: Vec<String> = vec!["create".into(), "--pull".into(), "never".into()];
    args.extend(["--name".into(), name.into()]);
    args.extend(["--label".into(), format!("{CONTAINER_LABEL}=check")]);
    let network = spec.network.flag_value().unwrap_or("default");
    args.extend(["--network".into(), network.into()]);
    let memory = spec.memory_bytes.to_string();
    args.extend([
        "--memory".into(),
        memory.clone(),
        "--memory-swap".into(),
        memory,
    ]);
    args.extend(["--cpus".into(), spec.cpus.to_string()]);
    args.extend(["--pids-limit".into(), spec.pids_limit.to_string()]);
    if let Some(user) = &spec.user {
        args.extend(["--user".into(), user.clone()]);
    }
    if let Some(workdir) = &spec.workdir {
        args.extend(["--workdir".into(), workdir.clone()]);
    }
    for (key, value) in &spec.env {
        args.extend(["--env".into(), format!("{key}={value}")]);
    }
    if let Some(gpus) = &spec.gpus {
        args.extend(["--gpus".into(), gpus.clone()]);
    }
    let mut rest: Vec<String> = Vec::new();
    if let Some(entrypoint) = &spec.entrypoint {
        let (first, more) = entrypoint
            .split_first()
            .map_or(("", &[][..]), |(f, m)| (f.as_str(), m));
        args.extend(["--entrypoint".into(), first.into()]);
        rest.extend(more.iter().cloned());
    }
    rest.extend(spec.cmd.iter().cloned());
    args.push("--".into());
    args.push(spec.image.clone());
    args.extend(rest);
    args.into_iter().map(OsString::from).collect()
}

/// The part of `docker inspect`'s `State` a finished check needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    /// `created`, `running`, `exited`, ...
    #[serde(default)]
    pub status: String,
    /// Exit code of the main process.
    #[serde(default)]
    pub exit_code: i64,
    /// Killed by the OOM killer.
    #[serde(rename = "OOMKilled", default)]
    pub oom_killed: bool,
    /// Why it could not start, if it could not.
    #[serde(default)]
    pub error: String,
}

/// Parses `docker inspect --format '{{json .State}}' CONTAINER`.
pub fn parse_state(json: &[u8]) -> Result<ContainerState> {
    serde_json::from_slice(json).map_err(|e| DockerError::BadOutput {
        command: "inspect".into(),
        detail: format!("container State is not JSON: {e}"),
    })
}

/// Runs `spec` in a new container and removes the container in every case.
pub async fn run_check(cli: &DockerCli, spec: &RunSpec) -> Result<RunOutput> {
    with_container(cli, "check", |name| async move {
        run_in(cli, spec, &name).await
    })
    .await
}

async fn run_in(cli: &DockerCli, spec: &RunSpec, name: &str) -> Result<RunOutput> {
    cli.run(&create_args(spec, name)).await?;
    let started = Instant::now();
    let mut child = cli.spawn(&mut cli.command(&["start", "--attach", name]))?;
    let stdout = tokio::spawn(capture(
        child.stdout.take().expect("piped"),
        spec.output_limit,
    ));
    let stderr = tokio::spawn(capture(
        child.stderr.take().expect("piped"),
        spec.output_limit,
    ));
    let waited = tokio::time::timeout(spec.timeout, child.wait()).await;
    let duration = started.elapsed();
    let timed_out = waited.is_err();
    if timed_out {
        // Killing the container ends the attached CLI and closes its pipes.
        cli.run(&["rm", "--force", "--volumes", name]).await?;
        let _ = tokio::time::timeout(DRAIN_GRACE, child.wait()).await;
        let _ = child.start_kill();
    } else if let Ok(Err(e)) = waited {
        return Err(DockerError::io("waiting for docker start", e));
    }
    let stdout = collect(stdout, timed_out).await?;
    let stderr = collect(stderr, timed_out).await?;
    if timed_out {
        return Ok(RunOutput {
            stdout,
            stderr,
            timed_out,
            duration,
            ..RunOutput::default()
        });
    }
    let state = parse_state(
        &cli.run(&["inspect", "--format", "{{json .State}}", name])
            .await?,
    )?;
    // A command that could not start leaves the container "created" with an error.
    if state.status != "exited" && state.error.is_empty() {
        return Err(DockerError::BadOutput {
            command: "start --attach".into(),
            detail: format!(
                "container is {:?} after the CLI returned: {}",
                state.status, state.error
            ),
        });
    }
    Ok(RunOutput {
        exit_code: Some(state.exit_code),
        stdout,
        stderr,
        timed_out,
        oom_killed: state.oom_killed,
        start_error: state.error,
        duration,
    })
}

/// Awaits an output reader; after a timeout only for a short grace, then what it had is lost.
async fn collect(
    task: tokio::task::JoinHandle<std::io::Result<Captured>>,
    timed_out: bool,
) -> Result<Captured> {
    let abort = task.abort_handle();
    let joined = if timed_out {
        match tokio::time::timeout(DRAIN_GRACE, task).await {
            Ok(joined) => joined,
            Err(_) => {
                abort.abort();
                return Ok(Captured::default());
            }
        }
    } else {
        task.await
    };
    match joined {
        Ok(Ok(captured)) => Ok(captured),
        Ok(Err(e)) => Err(DockerError::io("reading a check's output", e)),
        Err(e) => Err(DockerError::io(
            "reading a check's output",
            std::io::Error::other(e),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(spec: &RunSpec) -> Vec<String> {
        create_args(spec, "c1")
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn checks_are_isolated_and_limited_by_default() {
        let args = words(&RunSpec::new("sha256:abc", ["ls", "-l"]));
        let expected = [
            "create",
            "--pull",
            "never",
            "--name",
            "c1",
            "--label",
            "imgflow.publish=check",
            "--network",
            "none",
            "--memory",
            "1073741824",
            "--memory-swap",
            "1073741824",
            "--cpus",
            "1",
            "--pids-limit",
            "512",
            "--",
            "sha256:abc",
            "ls",
            "-l",
        ];
        assert_eq!(args, expected);
        assert!(!args.iter().any(|a| a.contains("privileged")));
    }

    #[test]
    fn overrides_become_flags_and_the_entrypoint_splits_into_flag_and_arguments() {
        let mut spec = RunSpec::new("img", ["-c", "echo hi"]);
        spec.entrypoint = Some(vec!["/bin/sh".into(), "-e".into()]);
        spec.env = vec![("B".into(), "2".into()), ("A".into(), "x=y".into())];
        spec.user = Some("1000:100".into());
        spec.workdir = Some("/tmp".into());
        spec.network = NetworkMode::Host;
        spec.cpus = 0.5;
        spec.gpus = Some("all".into());
        let args = words(&spec);
        let tail: Vec<&str> = args[15..].iter().map(String::as_str).collect();
        assert_eq!(&args[7..9], ["--network", "host"]);
        assert_eq!(&args[13..15], ["--cpus", "0.5"]);
        assert_eq!(
            tail,
            [
                "--pids-limit",
                "512",
                "--user",
                "1000:100",
                "--workdir",
                "/tmp",
                "--env",
                "B=2",
                "--env",
                "A=x=y",
                "--gpus",
                "all",
                "--entrypoint",
                "/bin/sh",
                "--",
                "img",
                "-e",
                "-c",
                "echo hi",
            ]
        );
        spec.entrypoint = Some(vec![]);
        spec.network = NetworkMode::Default;
        let args = words(&spec);
        assert_eq!(&args[7..9], ["--network", "default"]);
        let at = args.iter().position(|a| a == "--entrypoint").unwrap();
        assert_eq!(
            &args[at..],
            ["--entrypoint", "", "--", "img", "-c", "echo hi"]
        );
    }

    #[test]
    fn container_state_is_parsed() {
        let state = parse_state(
            br#"{"Status":"exited","Running":false,"OOMKilled":true,"ExitCode":137,
                "Error":"","StartedAt":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(state.status, "exited");
        assert_eq!(state.exit_code, 137);
        assert!(state.oom_killed);
        assert!(parse_state(b"nope").is_err());
    }
}
