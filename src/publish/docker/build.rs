//! `docker build`: what a build is given ([`BuildSpec`]), the command line made from it, and
//! running it with its log streamed line by line and its image id read from `--iidfile`.
//!
//! The CLI sends the context itself (honouring `.dockerignore`) and picks BuildKit or the
//! legacy builder as it would for the user; `BUILDKIT_PROGRESS=plain` makes BuildKit's
//! progress line-oriented, and the legacy builder ignores it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

use serde::Deserialize;

use super::capture::{read_lines, Tail};
use super::cli::DockerCli;
use super::error::{DockerError, Result};

/// How many log lines a failed build reports.
pub const BUILD_LOG_TAIL: usize = 40;

/// Network for a build's `RUN` steps or a container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// The daemon's default (a bridge, where the daemon has one).
    #[default]
    Default,
    /// The host's network stack.
    Host,
    /// A loopback interface only.
    None,
}

impl NetworkMode {
    /// The value for `--network`, or `None` when the flag is left out (the default).
    pub fn flag_value(self) -> Option<&'static str> {
        match self {
            NetworkMode::Default => None,
            NetworkMode::Host => Some("host"),
            NetworkMode::None => Some("none"),
        }
    }
}

impl FromStr for NetworkMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "default" => Ok(NetworkMode::Default),
            "host" => Ok(NetworkMode::Host),
            "none" => Ok(NetworkMode::None),
            other => Err(format!(
                "unknown network {other:?} (expected \"default\", \"host\" or \"none\")"
            )),
        }
    }
}

/// One image build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile, when not `Dockerfile` in the context.
    pub dockerfile: Option<PathBuf>,
    /// The local tag to give the result, e.g. `imgflow-build/team/spark:RUN-ID`.
    pub tag: String,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--label` values.
    pub labels: BTreeMap<String, String>,
    /// Network of the `RUN` steps.
    pub network: NetworkMode,
    /// Always look for newer base images (`--pull`); off by default.
    pub pull: bool,
    /// Build only up to this stage (`--target`).
    pub target: Option<String>,
}

impl BuildSpec {
    /// A build of `context` tagged `tag`, with everything else at its default.
    pub fn new(context: impl Into<PathBuf>, tag: impl Into<String>) -> BuildSpec {
        BuildSpec {
            context: context.into(),
            dockerfile: None,
            tag: tag.into(),
            build_args: BTreeMap::new(),
            labels: BTreeMap::new(),
            network: NetworkMode::Default,
            pull: false,
            target: None,
        }
    }
}

/// The `docker build` arguments for `spec`, writing the image id to `iidfile`.
pub fn build_args(spec: &BuildSpec, iidfile: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["build".into(), "--iidfile".into(), iidfile.into()];
    // The legacy builder keeps a failed step's container unless told otherwise.
    args.push("--force-rm".into());
    args.extend(["--tag".into(), OsString::from(&spec.tag)]);
    if let Some(dockerfile) = &spec.dockerfile {
        args.extend(["--file".into(), dockerfile.into()]);
    }
    for (key, value) in &spec.build_args {
        args.extend(["--build-arg".into(), format!("{key}={value}").into()]);
    }
    for (key, value) in &spec.labels {
        args.extend(["--label".into(), format!("{key}={value}").into()]);
    }
    if let Some(network) = spec.network.flag_value() {
        args.extend(["--network".into(), network.into()]);
    }
    if spec.pull {
        args.push("--pull".into());
    }
    if let Some(target) = &spec.target {
        args.extend(["--target".into(), target.into()]);
    }
    // `--` keeps a context path starting with `-` from being read as a flag.
    args.extend(["--".into(), spec.context.clone().into()]);
    args
}

/// Runs `docker build`, calling `on_line` for each log line (stdout and stderr, as they
/// come), and returns the new image id.
pub async fn build(
    cli: &DockerCli,
    spec: &BuildSpec,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<String> {
    let dir = tempfile::tempdir().map_err(|e| DockerError::io("creating a temp dir", e))?;
    let iidfile = dir.path().join("iid");
    let mut cmd = cli.command(&build_args(spec, &iidfile));
    cmd.env("BUILDKIT_PROGRESS", "plain");
    let mut child = cli.spawn(&mut cmd)?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");

    // Both readers run on this task, so the lock is never contended.
    let log = Mutex::new((on_line, Tail::new(BUILD_LOG_TAIL)));
    let emit = |line: String| {
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        (log.0)(&line);
        log.1.push(line);
    };
    let (out, err, status) = tokio::join!(
        read_lines(stdout, emit),
        read_lines(stderr, emit),
        child.wait()
    );
    let io = |e| DockerError::io(format!("running docker build for {}", spec.tag), e);
    out.map_err(io)?;
    err.map_err(io)?;
    let status = status.map_err(io)?;
    let tail = log
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .1
        .into_vec();
    if !status.success() {
        let classified = cli.failure("build", &status.to_string(), &tail.join("\n"));
        return Err(match classified {
            DockerError::DaemonUnreachable { .. } => classified,
            _ => DockerError::BuildFailed {
                tag: spec.tag.clone(),
                status: status.to_string(),
                log_tail: tail,
            },
        });
    }
    let id = tokio::fs::read_to_string(&iidfile)
        .await
        .map_err(|e| DockerError::io("reading the build's --iidfile", e))?;
    let id = id.trim();
    if !id.starts_with("sha256:") {
        return Err(DockerError::BadOutput {
            command: "build".into(),
            detail: format!("--iidfile holds {id:?}, not an image id"),
        });
    }
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_default_build_omits_network_pull_and_target() {
        let spec = BuildSpec::new("images/base", "imgflow-build/base:r1");
        let args = words(&build_args(&spec, Path::new("/tmp/iid")));
        assert_eq!(
            args,
            [
                "build",
                "--iidfile",
                "/tmp/iid",
                "--force-rm",
                "--tag",
                "imgflow-build/base:r1",
                "--",
                "images/base"
            ]
        );
    }

    #[test]
    fn every_field_becomes_its_flag() {
        let mut spec = BuildSpec::new("-ctx", "t:1");
        spec.dockerfile = Some("other/Dockerfile.gpu".into());
        spec.build_args.insert("REGISTRY".into(), "r:5000".into());
        spec.build_args.insert("A".into(), "x y".into());
        spec.labels
            .insert("org.opencontainers.image.revision".into(), "abc".into());
        spec.network = NetworkMode::None;
        spec.pull = true;
        spec.target = Some("final".into());
        let args = words(&build_args(&spec, Path::new("/i")));
        let expected = [
            "build",
            "--iidfile",
            "/i",
            "--force-rm",
            "--tag",
            "t:1",
            "--file",
            "other/Dockerfile.gpu",
            "--build-arg",
            "A=x y",
            "--build-arg",
            "REGISTRY=r:5000",
            "--label",
            "org.opencontainers.image.revision=abc",
            "--network",
            "none",
            "--pull",
            "--target",
            "final",
            "--",
            "-ctx",
        ];
        assert_eq!(args, expected);
    }

    #[test]
    fn network_modes_parse_and_map_to_flags() {
        assert_eq!(
            "host".parse::<NetworkMode>().unwrap().flag_value(),
            Some("host")
        );
        assert_eq!(
            "none".parse::<NetworkMode>().unwrap().flag_value(),
            Some("none")
        );
        assert_eq!("default".parse::<NetworkMode>().unwrap().flag_value(), None);
        assert!("bridge"
            .parse::<NetworkMode>()
            .unwrap_err()
            .contains("bridge"));
    }
}
