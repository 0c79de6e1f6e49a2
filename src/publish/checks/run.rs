//! Running a parsed check file against a built image, through the [`Engine`] trait (so
//! the pipeline runs on Docker and the unit tests on a fake).
//!
//! - `commandTests` run in check containers ([`command`]): `--network none`, the memory,
//!   CPU and process limits and the timeout of [`CheckOptions`], the entrypoint cleared,
//!   setup/command/teardown in one container, `globalEnvVars` then `envVars`;
//! - `fileExistenceTests`, `fileContentTests` and `licenseTests` read the image's
//!   filesystem from outside, exported once ([`files`]);
//! - `metadataTest` reads the image config from inspect ([`metadata`]);
//! - size budgets are judged on sizes the caller gives ([`budget`]);
//! - GPU images get the three tiers of [`gpu`] and a [`GpuVerdict`].
//!
//! Every result lands in a [`CheckReport`], which serialises to the JSON attached to the
//! image as its check-report referrer. Inspect and export failures end the run with a
//! [`CheckRunError`]; a check container the engine could not run is a failed result (a
//! check that did not run never passes).

pub mod budget;
pub mod command;
pub mod files;
pub mod gpu;
pub mod metadata;
pub mod report;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use budget::{size_budgets, Sizes, MB};
pub use report::{CheckKind, CheckReport, CheckResult, GpuVerdict, Status, Totals};

use super::{CheckFile, CommandTest, ContainerRunOptions, StructureTest};
use crate::publish::docker::{DockerError, Engine, ImageFs, RunSpec};

/// How checks are run.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOptions {
    /// Memory limit of each check container, in bytes (no swap beyond it).
    pub memory_bytes: u64,
    /// CPU limit of each check container.
    pub cpus: f64,
    /// Most processes in a check container.
    pub pids_limit: u32,
    /// Longest a check container may run.
    pub timeout: Duration,
    /// Most bytes of stdout and of stderr kept per check.
    pub output_limit: usize,
    /// Largest file a `fileContentTests` entry reads.
    pub file_read_limit: u64,
    /// Largest shared object the GPU linkage tier reads.
    pub elf_read_limit: u64,
    /// The image is a GPU image (`gpu = true`): run the GPU tiers.
    pub gpu: bool,
    /// `--require-gpu`: a GPU image that cannot be verified on a device fails.
    pub require_gpu: bool,
}

impl Default for CheckOptions {
    /// 1 GiB, 1 CPU, 512 processes, 60 s, 1 MiB of output, 64 MiB files, 4 GiB ELF files.
    fn default() -> Self {
        CheckOptions {
            memory_bytes: 1024 * 1024 * 1024,
            cpus: 1.0,
            pids_limit: 512,
            timeout: Duration::from_secs(60),
            output_limit: 1024 * 1024,
            file_read_limit: 64 * 1024 * 1024,
            elf_read_limit: 4 * 1024 * 1024 * 1024,
            gpu: false,
            require_gpu: false,
        }
    }
}

impl CheckOptions {
    /// Applies the limits to a check container (the network stays `none`).
    pub fn limit(&self, spec: &mut RunSpec) {
        spec.memory_bytes = self.memory_bytes;
        spec.cpus = self.cpus;
        spec.pids_limit = self.pids_limit;
        spec.timeout = self.timeout;
        spec.output_limit = self.output_limit;
    }
}

/// Why a whole check run could not be done.
#[derive(Debug, thiserror::Error)]
pub enum CheckRunError {
    /// The image could not be inspected.
    #[error("inspecting {image} for its checks: {source}")]
    Inspect {
        /// The image.
        image: String,
        /// The engine's error.
        #[source]
        source: DockerError,
    },
    /// The image's filesystem could not be exported.
    #[error("exporting the filesystem of {image} for its checks: {source}")]
    Export {
        /// The image.
        image: String,
        /// The engine's error.
        #[source]
        source: DockerError,
    },
}

/// True when some test of `files` (or the GPU tiers) needs the exported filesystem.
fn needs_export(files: &[CheckFile], options: &CheckOptions) -> bool {
    options.gpu
        || files.iter().any(|f| {
            let t = &f.tests;
            !t.file_existence_tests.is_empty()
                || !t.file_content_tests.is_empty()
                || !t.license_tests.is_empty()
        })
}

/// Runs every test of `files` against `image` and, for a GPU image, the GPU tiers.
/// Size budgets are added by the caller with [`size_budgets`] and [`CheckReport::extend`].
pub async fn run_checks(
    engine: &dyn Engine,
    image: &str,
    files: &[CheckFile],
    options: &CheckOptions,
) -> Result<CheckReport, CheckRunError> {
    let info = engine
        .inspect_image(image)
        .await
        .map_err(|source| CheckRunError::Inspect {
            image: image.into(),
            source,
        })?;
    let fs = if needs_export(files, options) {
        Some(
            engine
                .export_filesystem(image)
                .await
                .map_err(|source| CheckRunError::Export {
                    image: image.into(),
                    source,
                })?,
        )
    } else {
        None
    };
    let image_env = info.config.env_map();
    let mut report = CheckReport::new(image);
    let mut device_tests = Vec::new();
    let mut device_user = None;
    for file in files {
        let label = file.path.display().to_string();
        let t = &file.tests;
        let (user, mut results) = run_options(t.container_run_options.as_ref());
        for test in &t.command_tests {
            let env = command::test_env(&image_env, &t.global_env_vars, &test.env_vars);
            let env = with_host_env(env, t.container_run_options.as_ref());
            if options.gpu && gpu::is_device_test(test) {
                device_user = user.clone();
                device_tests.push((test, env));
                continue;
            }
            results.push(run_command(engine, image, test, env, user.clone(), options).await);
        }
        if let Some(fs) = &fs {
            results.extend(file_results(fs, t, options).await);
        }
        if let Some(meta) = &t.metadata_test {
            results.extend(metadata::metadata(meta, &info.config));
        }
        for mut result in results {
            result.file = Some(label.clone());
            report.extend([result]);
        }
    }
    if options.gpu {
        let fs = fs.as_ref().expect("exported for GPU images");
        report.extend(gpu::static_checks(fs, &info.config).await);
        report.extend([gpu::linkage_check(fs, &image_env, options.elf_read_limit).await]);
        let (results, verdict) =
            gpu::runtime_checks(engine, image, &device_tests, device_user, options).await;
        report.extend(results);
        report.gpu = verdict;
    }
    Ok(report)
}

async fn run_command(
    engine: &dyn Engine,
    image: &str,
    test: &CommandTest,
    env: Vec<(String, String)>,
    user: Option<String>,
    options: &CheckOptions,
) -> CheckResult {
    let spec = command::command_spec(image, test, env, user, options);
    match engine.run_check(&spec).await {
        Ok(out) => command::judge(test, &out),
        Err(e) => CheckResult::failed(
            CheckKind::Command,
            &test.name,
            format!("the engine failed: {e}"),
        ),
    }
}

async fn file_results(fs: &ImageFs, t: &StructureTest, options: &CheckOptions) -> Vec<CheckResult> {
    let mut results: Vec<CheckResult> = t
        .file_existence_tests
        .iter()
        .map(|test| files::file_existence(fs, test))
        .collect();
    for test in &t.file_content_tests {
        results.push(files::file_content(fs, test, options.file_read_limit).await);
    }
    for (i, test) in t.license_tests.iter().enumerate() {
        results.extend(files::license(fs, test, i));
    }
    results
}

/// The user of `containerRunOptions`, and a failed result when it asks for what check
/// containers never get (privileges, capabilities, mounts, an env file from the host).
/// `allocateTty` is ignored: output is captured without a TTY.
fn run_options(options: Option<&ContainerRunOptions>) -> (Option<String>, Vec<CheckResult>) {
    let Some(o) = options else {
        return (None, Vec::new());
    };
    let mut refused = Vec::new();
    if o.privileged {
        refused.push("privileged".to_string());
    }
    if !o.capabilities.is_empty() {
        refused.push(format!("capabilities {:?}", o.capabilities));
    }
    if !o.bind_mounts.is_empty() {
        refused.push(format!("bindMounts {:?}", o.bind_mounts));
    }
    if let Some(file) = &o.env_file {
        refused.push(format!("envFile {file:?}"));
    }
    let results = if refused.is_empty() {
        Vec::new()
    } else {
        vec![CheckResult::failed(
            CheckKind::RunOptions,
            "containerRunOptions",
            format!(
                "not allowed for check containers (they run unprivileged, isolated): {}",
                refused.join(", ")
            ),
        )]
    };
    (o.user.clone(), results)
}

/// Adds the variables `containerRunOptions.envVars` names, from imgflow's environment
/// (unset ones are left out), before the test's own.
fn with_host_env(
    env: Vec<(String, String)>,
    options: Option<&ContainerRunOptions>,
) -> Vec<(String, String)> {
    let Some(o) = options else {
        return env;
    };
    let mut out: Vec<(String, String)> = o
        .env_vars
        .iter()
        .filter(|k| !env.iter().any(|(e, _)| e == *k))
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
        .collect();
    out.extend(env);
    out
}
