//! GPU images (`gpu = true`), checked in three tiers, and honest about what was shown:
//!
//! 1. **Static** (always, from outside: the exported filesystem and the image config):
//!    `NVIDIA_VISIBLE_DEVICES` and `NVIDIA_DRIVER_CAPABILITIES` are set (and do not
//!    disable the GPU with `void`/`none`); the CUDA runtime (`libcudart.so*`), cuBLAS
//!    (`libcublas.so*`) and cuDNN (`libcudnn.so*`) are in the loader's directories; and
//!    the driver library `libcuda.so.1` is **not** baked in anywhere (outside CUDA's
//!    link-time `stubs/`), since the runtime mounts the host's matching one.
//! 2. **Linkage** (always, CPU side): every shared library's DT_NEEDED resolves inside the
//!    image, except the driver's ([`linkage`]).
//! 3. **Runtime** (only when the daemon has an NVIDIA runtime): a `--gpus all` probe
//!    (`nvidia-smi` without the entrypoint), then the image's **device tests**: the
//!    `commandTests` whose name starts with [`DEVICE_TEST_PREFIX`] (`gpu:`), run with
//!    `--gpus all`. For a GPU image, device tests run only here.
//!
//! The verdict is `verified` only when tier 3 ran and passed. Without an NVIDIA runtime
//! it is `not verified` (a skipped result), and with `require_gpu` that is a failure.

pub mod elf;
pub mod linkage;

use std::collections::BTreeMap;
use std::time::Instant;

use super::super::CommandTest;
use super::command::{command_spec, judge};
use super::report::{CheckKind, CheckResult, GpuVerdict, Status};
use super::CheckOptions;
use crate::publish::docker::{Engine, ImageConfig, ImageFs, RunSpec};

/// Command tests whose name starts with this are device tests of a GPU image.
pub const DEVICE_TEST_PREFIX: &str = "gpu:";

/// Environment variables a GPU image must set for the NVIDIA runtime.
pub const NVIDIA_ENV: &[&str] = &["NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES"];

/// Libraries (name prefixes) a GPU image must ship: CUDA runtime, cuBLAS, cuDNN.
pub const CUDA_LIBS: &[&str] = &["libcudart.so", "libcublas.so", "libcudnn.so"];

/// True for a device test (name starts with `gpu:`).
pub fn is_device_test(test: &CommandTest) -> bool {
    test.name.starts_with(DEVICE_TEST_PREFIX)
}

/// Tier 1: environment, CUDA libraries present, driver library absent.
pub async fn static_checks(fs: &ImageFs, config: &ImageConfig) -> Vec<CheckResult> {
    let kind = CheckKind::GpuStatic;
    let env = config.env_map();
    let mut env_problems = Vec::new();
    for key in NVIDIA_ENV {
        match env.get(*key).map(String::as_str) {
            None | Some("") => env_problems.push(format!("{key} is not set in the image config")),
            Some(v @ ("void" | "none")) if *key == "NVIDIA_VISIBLE_DEVICES" => {
                env_problems.push(format!("{key}={v} hides every GPU"))
            }
            _ => {}
        }
    }
    let mut results = vec![CheckResult::from_problems(
        kind,
        "gpu static: NVIDIA env",
        &env_problems,
    )];

    let dirs = linkage::search_dirs(fs, &env).await;
    let mut lib_problems = Vec::new();
    let mut found = Vec::new();
    for prefix in CUDA_LIBS {
        match find_in_dirs(fs, &dirs, prefix) {
            Some(path) => found.push(path),
            None => lib_problems.push(format!("no {prefix}* in the loader's directories")),
        }
    }
    let mut libs = CheckResult::from_problems(kind, "gpu static: CUDA libraries", &lib_problems);
    if libs.status == Status::Passed {
        libs.message = found.join(", ");
    } else {
        libs.message
            .push_str(&format!(" (searched {})", dirs.join(":")));
    }
    results.push(libs);

    let baked: Vec<String> = fs
        .entries()
        .filter(|m| is_driver_lib(m.name()) && !m.path.contains("/stubs/"))
        .map(|m| m.path.clone())
        .collect();
    let problems: Vec<String> = baked
        .iter()
        .map(|p| {
            format!(
                "{p} is baked into the image (the NVIDIA runtime mounts the host's driver library)"
            )
        })
        .collect();
    results.push(CheckResult::from_problems(
        kind,
        "gpu static: libcuda.so.1 not baked in",
        &problems,
    ));
    results
}

/// `libcuda.so.1` or a versioned driver build such as `libcuda.so.535.104.05`.
fn is_driver_lib(name: &str) -> bool {
    name.strip_prefix("libcuda.so.")
        .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// The first file (or link to one) named `prefix*` in `dirs`.
fn find_in_dirs(fs: &ImageFs, dirs: &[String], prefix: &str) -> Option<String> {
    dirs.iter().find_map(|dir| {
        fs.read_dir(dir).ok()?.into_iter().find_map(|m| {
            let ok = m.name().starts_with(prefix) && fs.stat(&m.path).is_some();
            ok.then(|| m.path.clone())
        })
    })
}

/// Tier 2 as one result.
pub async fn linkage_check(
    fs: &ImageFs,
    env: &BTreeMap<String, String>,
    read_limit: u64,
) -> CheckResult {
    let started = Instant::now();
    let found = linkage::check_linkage(fs, env, read_limit).await;
    let mut problems: Vec<String> = found
        .missing
        .iter()
        .map(|m| format!("{} needs {}, which does not resolve", m.file, m.needed))
        .collect();
    problems.extend(
        found
            .unreadable
            .iter()
            .map(|(p, why)| format!("{p}: {why}")),
    );
    let mut result = CheckResult::from_problems(
        CheckKind::GpuLinkage,
        "gpu linkage: libraries resolve",
        &problems,
    );
    if result.status == Status::Passed {
        result.message = format!(
            "{} shared objects examined; {} need the driver's {} (provided at run time)",
            found.examined,
            found.driver_missing.len(),
            linkage::DRIVER_LIBS.join(", ")
        );
    }
    result.with_duration(started.elapsed())
}

/// Tier 3 and the verdict: the probe and `device_tests` when the daemon has an NVIDIA
/// runtime; otherwise "not verified" (a failure with `options.require_gpu`).
pub async fn runtime_checks(
    engine: &dyn Engine,
    image: &str,
    device_tests: &[(&CommandTest, Vec<(String, String)>)],
    user: Option<String>,
    options: &CheckOptions,
) -> (Vec<CheckResult>, GpuVerdict) {
    let kind = CheckKind::GpuRuntime;
    let name = "gpu runtime: --gpus all probe";
    let (present, why) = match engine.has_nvidia_runtime().await {
        Ok(true) => (true, String::new()),
        Ok(false) => (false, "the Docker daemon has no NVIDIA runtime".to_string()),
        Err(e) => (
            false,
            format!("the daemon's runtimes could not be read: {e}"),
        ),
    };
    if !present {
        let message = format!("gpu: not verified: {why}");
        let probe = if options.require_gpu {
            CheckResult::failed(kind, name, format!("{message} (a GPU is required)"))
        } else {
            CheckResult::skipped(kind, name, message)
        };
        let mut results = vec![probe];
        results.extend(device_tests.iter().map(|(t, _)| {
            CheckResult::skipped(
                CheckKind::Command,
                &t.name,
                format!("device test not run: {why}"),
            )
        }));
        return (results, GpuVerdict::NotVerified);
    }
    let mut probe = RunSpec::new(image, ["nvidia-smi"]);
    probe.entrypoint = Some(Vec::new());
    probe.gpus = Some("all".into());
    options.limit(&mut probe);
    let started = Instant::now();
    let probe_result = match engine.run_check(&probe).await {
        Ok(out) if out.exit_code == Some(0) => CheckResult::passed(kind, name),
        Ok(out) => CheckResult::failed(
            kind,
            name,
            format!(
                "nvidia-smi exited {:?}{}: {}",
                out.exit_code,
                if out.timed_out { " (timed out)" } else { "" },
                super::command::excerpt(&format!(
                    "{}{}{}",
                    out.stdout.text(),
                    out.stderr.text(),
                    out.start_error
                ))
            ),
        ),
        Err(e) => CheckResult::failed(kind, name, format!("the probe could not run: {e}")),
    }
    .with_duration(started.elapsed());
    if probe_result.status != Status::Passed {
        let mut results = vec![probe_result];
        results.extend(device_tests.iter().map(|(t, _)| {
            CheckResult::skipped(
                CheckKind::Command,
                &t.name,
                "device test not run: the GPU probe failed",
            )
        }));
        return (results, GpuVerdict::NotVerified);
    }
    let mut results = vec![probe_result];
    let mut all_passed = true;
    for (test, env) in device_tests {
        let mut spec = command_spec(image, test, env.clone(), user.clone(), options);
        spec.gpus = Some("all".into());
        let result = match engine.run_check(&spec).await {
            Ok(out) => judge(test, &out),
            Err(e) => CheckResult::failed(
                CheckKind::Command,
                &test.name,
                format!("the engine failed: {e}"),
            ),
        };
        all_passed &= result.status == Status::Passed;
        results.push(result);
    }
    let verdict = if all_passed {
        GpuVerdict::Verified
    } else {
        GpuVerdict::NotVerified
    };
    (results, verdict)
}
