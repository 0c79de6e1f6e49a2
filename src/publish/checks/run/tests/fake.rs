//! The fake engine and a small archive builder.

use std::io::Write;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Instant;

use futures::future::BoxFuture;

use crate::publish::docker::filesystem::tests::header;
use crate::publish::docker::{
    BuildSpec, Captured, DockerError, DockerVersion, Engine, ImageConfig, ImageFs, ImageInfo,
    Result, RunOutput, RunSpec, Runtime, Runtimes,
};

/// What a check container run by the fake does.
pub enum Behaviour {
    /// Runs the container's argv on the host with only the spec's environment.
    Host,
    /// Returns this output for every container.
    Canned(RunOutput),
    /// Fails like a daemon that went away.
    Broken,
}

/// A fake engine with one image.
pub struct FakeEngine {
    pub config: ImageConfig,
    pub tar: Vec<u8>,
    pub nvidia: bool,
    pub behaviour: Behaviour,
    /// Probe (`nvidia-smi`) output when `nvidia` is true.
    pub probe_exit: i64,
    pub runs: Mutex<Vec<RunSpec>>,
    pub exports: Mutex<usize>,
}

impl FakeEngine {
    pub fn new(config: ImageConfig, tar: Vec<u8>) -> FakeEngine {
        FakeEngine {
            config,
            tar,
            nvidia: false,
            behaviour: Behaviour::Host,
            probe_exit: 0,
            runs: Mutex::new(Vec::new()),
            exports: Mutex::new(0),
        }
    }

    pub fn runs(&self) -> Vec<RunSpec> {
        self.runs.lock().unwrap().clone()
    }
}

fn unsupported(what: &str) -> DockerError {
    DockerError::BadOutput {
        command: what.into(),
        detail: "not in the fake".into(),
    }
}

fn run_on_host(spec: &RunSpec) -> RunOutput {
    let started = Instant::now();
    let mut cmd = std::process::Command::new(&spec.cmd[0]);
    cmd.args(&spec.cmd[1..])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    match cmd.output() {
        Ok(out) => RunOutput {
            exit_code: out.status.code().map(i64::from),
            stdout: captured(out.stdout),
            stderr: captured(out.stderr),
            duration: started.elapsed(),
            ..RunOutput::default()
        },
        Err(e) => RunOutput {
            exit_code: Some(127),
            start_error: format!("exec: {e}"),
            ..RunOutput::default()
        },
    }
}

pub fn captured(bytes: Vec<u8>) -> Captured {
    Captured {
        total: bytes.len() as u64,
        bytes,
        truncated: false,
    }
}

impl Engine for FakeEngine {
    fn build<'a>(
        &'a self,
        _spec: &'a BuildSpec,
        _on_line: &'a mut (dyn FnMut(&str) + Send),
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async { Err(unsupported("build")) })
    }

    fn inspect_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<ImageInfo>> {
        Box::pin(async move {
            Ok(ImageInfo {
                id: format!("sha256:{image}"),
                config: self.config.clone(),
                ..ImageInfo::default()
            })
        })
    }

    fn run_check<'a>(&'a self, spec: &'a RunSpec) -> BoxFuture<'a, Result<RunOutput>> {
        Box::pin(async move {
            self.runs.lock().unwrap().push(spec.clone());
            if spec.gpus.is_some() && spec.cmd == ["nvidia-smi"] {
                return Ok(RunOutput {
                    exit_code: Some(self.probe_exit),
                    ..RunOutput::default()
                });
            }
            match &self.behaviour {
                Behaviour::Host => Ok(run_on_host(spec)),
                Behaviour::Canned(out) => Ok(out.clone()),
                Behaviour::Broken => Err(DockerError::DaemonUnreachable {
                    host: "unix:///fake".into(),
                    detail: "gone".into(),
                }),
            }
        })
    }

    fn export_filesystem<'a>(&'a self, _image: &'a str) -> BoxFuture<'a, Result<ImageFs>> {
        Box::pin(async move {
            *self.exports.lock().unwrap() += 1;
            let mut file = tempfile::tempfile().unwrap();
            file.write_all(&self.tar).unwrap();
            ImageFs::index(file)
        })
    }

    fn save_image<'a>(
        &'a self,
        _image: &'a str,
        _dest: &'a std::path::Path,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Err(unsupported("save")) })
    }

    fn remove_image<'a>(&'a self, _image: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn runtimes(&self) -> BoxFuture<'_, Result<Runtimes>> {
        Box::pin(async move {
            let mut runtimes = Runtimes::new();
            runtimes.insert("runc".into(), Runtime::default());
            if self.nvidia {
                runtimes.insert(
                    "nvidia".into(),
                    Runtime {
                        path: Some("nvidia-container-runtime".into()),
                        ..Runtime::default()
                    },
                );
            }
            Ok(runtimes)
        })
    }

    fn version(&self) -> BoxFuture<'_, Result<DockerVersion>> {
        Box::pin(async { Err(unsupported("version")) })
    }
}

/// Builds an image archive shaped like `docker export` output.
pub struct Tar {
    builder: Option<tar::Builder<Vec<u8>>>,
}

impl Tar {
    pub fn new() -> Tar {
        Tar {
            builder: Some(tar::Builder::new(Vec::new())),
        }
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Tar {
        let mut h = header(tar::EntryType::Directory, mode, 0, 0, 0);
        let b = self.builder.as_mut().unwrap();
        b.append_data(&mut h, path, std::io::empty()).unwrap();
        self
    }

    pub fn file_owned(mut self, path: &str, mode: u32, uid: u64, gid: u64, data: &[u8]) -> Tar {
        let mut h = header(tar::EntryType::Regular, mode, uid, gid, data.len() as u64);
        let b = self.builder.as_mut().unwrap();
        b.append_data(&mut h, path, data).unwrap();
        self
    }

    pub fn file(self, path: &str, mode: u32, data: &[u8]) -> Tar {
        self.file_owned(path, mode, 0, 0, data)
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Tar {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0, 0, 0);
        let b = self.builder.as_mut().unwrap();
        b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.builder.take().unwrap().into_inner().unwrap()
    }
}
