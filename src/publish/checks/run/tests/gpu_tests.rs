//! GPU tiers: static checks, DT_NEEDED resolution on real host libraries, runtime verdict.

use std::collections::BTreeMap;
use std::path::Path;

use super::super::gpu::elf::elf_deps;
use super::super::gpu::linkage::{check_linkage, Linkage};
use super::super::{run_checks, CheckKind, CheckOptions, CheckReport, GpuVerdict, Status};
use super::check_file;
use super::fake::{FakeEngine, Tar};
use crate::publish::docker::{ImageConfig, ImageFs};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn gpu_env() -> Vec<String> {
    vec![
        "NVIDIA_VISIBLE_DEVICES=all".into(),
        "NVIDIA_DRIVER_CAPABILITIES=compute,utility".into(),
    ]
}

/// A GPU image with empty files named like the CUDA libraries.
fn fake_cuda(extra: impl FnOnce(Tar) -> Tar) -> Vec<u8> {
    let tar = Tar::new()
        .dir("./", 0o755)
        .file(
            "etc/ld.so.conf.d/cuda.conf",
            0o644,
            b"# CUDA\n/usr/local/cuda/lib64\n",
        )
        .file("usr/local/cuda/lib64/libcudart.so.12.4.99", 0o755, b"")
        .symlink(
            "usr/local/cuda/lib64/libcudart.so.12",
            "libcudart.so.12.4.99",
        )
        .file("usr/local/cuda/lib64/libcublas.so.12", 0o755, b"")
        .file("usr/local/cuda/lib64/stubs/libcuda.so.1", 0o755, b"")
        .file("usr/lib/x86_64-linux-gnu/libcudnn.so.9", 0o755, b"");
    extra(tar).finish()
}

fn check(engine: &FakeEngine, yaml: &str, options: &CheckOptions) -> CheckReport {
    rt().block_on(run_checks(engine, "img", &[check_file(yaml)], options))
        .unwrap()
}

const DEVICE_TESTS: &str = r#"
schemaVersion: "2.0.0"
commandTests:
  - name: "gpu: matmul"
    command: echo
    args: ["ok on device"]
    expectedOutput: ["ok"]
  - name: cpu import
    command: "true"
"#;

fn gpu_options(require_gpu: bool) -> CheckOptions {
    CheckOptions {
        gpu: true,
        require_gpu,
        ..CheckOptions::default()
    }
}

fn result<'a>(report: &'a CheckReport, name: &str) -> &'a super::super::CheckResult {
    report
        .results
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:#?}", report.results))
}

#[test]
fn static_checks_pass_on_a_well_formed_gpu_image_but_the_verdict_is_not_verified() {
    let config = ImageConfig {
        env: gpu_env(),
        ..ImageConfig::default()
    };
    let engine = FakeEngine::new(config, fake_cuda(|t| t));
    let report = check(&engine, DEVICE_TESTS, &gpu_options(false));
    for name in [
        "gpu static: NVIDIA env",
        "gpu static: CUDA libraries",
        "gpu static: libcuda.so.1 not baked in",
        "gpu linkage: libraries resolve",
        "cpu import",
    ] {
        assert_eq!(
            result(&report, name).status,
            Status::Passed,
            "{name}: {:#?}",
            report.results
        );
    }
    let libs = &result(&report, "gpu static: CUDA libraries").message;
    assert!(
        libs.contains("/usr/local/cuda/lib64/libcudart.so.12"),
        "{libs}"
    );
    assert!(
        libs.contains("/usr/lib/x86_64-linux-gnu/libcudnn.so.9"),
        "{libs}"
    );
    let probe = result(&report, "gpu runtime: --gpus all probe");
    assert_eq!(
        (probe.kind, probe.status),
        (CheckKind::GpuRuntime, Status::Skipped)
    );
    assert!(
        probe.message.starts_with("gpu: not verified"),
        "{}",
        probe.message
    );
    let device = result(&report, "gpu: matmul");
    assert_eq!(device.status, Status::Skipped);
    assert_eq!(report.gpu, GpuVerdict::NotVerified);
    assert!(
        report.ok(),
        "not verified is not a failure without require_gpu"
    );
    assert_eq!(engine.runs().len(), 1, "only the CPU test ran");
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["gpu"], "not verified");

    let report = check(&engine, DEVICE_TESTS, &gpu_options(true));
    let probe = result(&report, "gpu runtime: --gpus all probe");
    assert_eq!(probe.status, Status::Failed);
    assert!(probe.message.contains("a GPU is required"));
    assert_eq!(report.gpu, GpuVerdict::NotVerified);
    assert!(!report.ok());
}

#[test]
fn static_checks_fail_on_missing_env_missing_libraries_and_a_baked_in_driver() {
    let config = ImageConfig {
        env: vec!["NVIDIA_VISIBLE_DEVICES=void".into()],
        ..ImageConfig::default()
    };
    let tar = Tar::new()
        .dir("./", 0o755)
        .file("usr/lib/x86_64-linux-gnu/libcudart.so.12", 0o755, b"")
        .file("usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05", 0o755, b"")
        .symlink(
            "usr/lib/x86_64-linux-gnu/libcuda.so.1",
            "libcuda.so.535.104.05",
        )
        // Not in a loader directory: does not count as present.
        .file("opt/libcublas.so.12", 0o755, b"")
        .finish();
    let engine = FakeEngine::new(config, tar);
    let report = check(&engine, "schemaVersion: \"2.0.0\"\n", &gpu_options(false));
    let env = result(&report, "gpu static: NVIDIA env");
    assert_eq!(env.status, Status::Failed);
    assert_eq!(
        env.message,
        "NVIDIA_VISIBLE_DEVICES=void hides every GPU; NVIDIA_DRIVER_CAPABILITIES is not set in the image config"
    );
    let libs = result(&report, "gpu static: CUDA libraries");
    assert_eq!(libs.status, Status::Failed);
    assert!(
        libs.message
            .starts_with("no libcublas.so* in the loader's directories; no libcudnn.so*"),
        "{}",
        libs.message
    );
    let driver = result(&report, "gpu static: libcuda.so.1 not baked in");
    assert_eq!(driver.status, Status::Failed);
    assert!(
        driver
            .message
            .contains("/usr/lib/x86_64-linux-gnu/libcuda.so.1 is baked into the image"),
        "{}",
        driver.message
    );
    assert!(
        driver.message.contains("libcuda.so.535.104.05"),
        "{}",
        driver.message
    );
    assert_eq!(report.gpu, GpuVerdict::NotVerified);
}

#[test]
fn with_an_nvidia_runtime_the_probe_and_device_tests_decide() {
    let config = ImageConfig {
        env: gpu_env(),
        ..ImageConfig::default()
    };
    let mut engine = FakeEngine::new(config, fake_cuda(|t| t));
    engine.nvidia = true;
    let report = check(&engine, DEVICE_TESTS, &gpu_options(true));
    assert_eq!(report.gpu, GpuVerdict::Verified, "{:#?}", report.results);
    assert_eq!(result(&report, "gpu: matmul").status, Status::Passed);
    let runs = engine.runs();
    let gpus: Vec<_> = runs
        .iter()
        .map(|r| (r.cmd[0].as_str(), r.gpus.as_deref()))
        .collect();
    assert_eq!(
        gpus,
        [
            ("true", None),
            ("nvidia-smi", Some("all")),
            ("echo", Some("all"))
        ]
    );

    engine.probe_exit = 9;
    let report = check(&engine, DEVICE_TESTS, &gpu_options(false));
    assert_eq!(report.gpu, GpuVerdict::NotVerified);
    assert_eq!(
        result(&report, "gpu runtime: --gpus all probe").status,
        Status::Failed
    );
    assert_eq!(result(&report, "gpu: matmul").status, Status::Skipped);
}

#[test]
fn device_tests_of_a_cpu_image_are_ordinary_tests() {
    let engine = FakeEngine::new(ImageConfig::default(), Tar::new().dir("./", 0o755).finish());
    let report = check(&engine, DEVICE_TESTS, &CheckOptions::default());
    assert_eq!(report.gpu, GpuVerdict::NotApplicable);
    assert_eq!(report.totals.passed, 2);
    assert_eq!(*engine.exports.lock().unwrap(), 0);
}

/// A host library directory and (name, bytes) of libm and what it needs.
type HostLibs = (String, Vec<(String, Vec<u8>)>);

/// The host's libc, libm and loader, and the directory they are in.
fn host_libs() -> Option<HostLibs> {
    let dir = [
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        "/lib/aarch64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/lib64",
    ]
    .into_iter()
    .find(|d| Path::new(d).join("libm.so.6").exists())?;
    let libm = std::fs::read(Path::new(dir).join("libm.so.6")).ok()?;
    let mut libs = vec![("libm.so.6".to_string(), libm.clone())];
    for needed in elf_deps(&libm).ok()?.needed {
        libs.push((
            needed.clone(),
            std::fs::read(Path::new(dir).join(&needed)).ok()?,
        ));
    }
    Some((dir.to_string(), libs))
}

fn linkage(tar: Vec<u8>, env: &[(&str, &str)]) -> Linkage {
    let mut file = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut file, &tar).unwrap();
    let fs = ImageFs::index(file).unwrap();
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    rt().block_on(check_linkage(&fs, &env, 1 << 30))
}

#[test]
fn dt_needed_resolves_through_default_dirs_ld_library_path_and_ld_so_conf() {
    let Some((dir, libs)) = host_libs() else {
        eprintln!("no host libm.so.6 with its dependencies: skipped");
        return;
    };
    let dir = dir.trim_start_matches('/');
    let names: Vec<&str> = libs.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"libc.so.6"), "{names:?}");
    let put = |tar: Tar, at: &str, skip: &str| {
        libs.iter()
            .filter(|(n, _)| n != skip)
            .fold(tar, |t, (n, bytes)| {
                t.file(&format!("{at}/{n}"), 0o755, bytes)
            })
    };

    // Everything in the host's multiarch dir (a default dir): resolves.
    let found = linkage(put(Tar::new().dir("./", 0o755), dir, "").finish(), &[]);
    assert_eq!(found.examined, libs.len());
    assert!(
        found.missing.is_empty() && found.unreadable.is_empty(),
        "{found:?}"
    );

    // libc missing: libm's DT_NEEDED does not resolve.
    let found = linkage(put(Tar::new(), dir, "libc.so.6").finish(), &[]);
    assert_eq!(found.missing.len(), 1, "{found:?}");
    assert_eq!(found.missing[0].file, format!("/{dir}/libm.so.6"));
    assert_eq!(found.missing[0].needed, "libc.so.6");

    // A file named libc.so.6 that is not ELF does not satisfy the loader.
    let tar =
        put(Tar::new(), dir, "libc.so.6").file(&format!("{dir}/libc.so.6"), 0o644, b"GROUP ( x )");
    assert_eq!(linkage(tar.finish(), &[]).missing.len(), 1);

    // libc in a framework dir: found through LD_LIBRARY_PATH or ld.so.conf.d, not otherwise.
    let libc = &libs.iter().find(|(n, _)| n == "libc.so.6").unwrap().1;
    let framework = |t: Tar| put(t, dir, "libc.so.6").file("opt/fw/lib/libc.so.6", 0o755, libc);
    assert_eq!(
        linkage(framework(Tar::new()).finish(), &[]).missing.len(),
        1
    );
    let found = linkage(
        framework(Tar::new()).finish(),
        &[("LD_LIBRARY_PATH", "/opt/fw/lib")],
    );
    assert!(found.missing.is_empty(), "{found:?}");
    let conf = framework(Tar::new())
        .file(
            "etc/ld.so.conf",
            0o644,
            b"include /etc/ld.so.conf.d/*.conf\n",
        )
        .file(
            "etc/ld.so.conf.d/fw.conf",
            0o644,
            b"/opt/fw/lib # framework\n",
        );
    assert!(linkage(conf.finish(), &[]).missing.is_empty());
}

#[test]
fn only_the_driver_library_may_be_missing() {
    let Some((dir, libs)) = host_libs() else {
        eprintln!("no host libm.so.6 with its dependencies: skipped");
        return;
    };
    let dir = dir.trim_start_matches('/');
    // A copy of libm whose longest DT_NEEDED name is rewritten in place to libcuda.so.1
    // (the string table keeps its offsets), as a CUDA framework library would need it.
    let mut fw = libs[0].1.clone();
    let longest = elf_deps(&fw)
        .unwrap()
        .needed
        .into_iter()
        .max_by_key(String::len)
        .unwrap();
    assert!(longest.len() >= "libcuda.so.1".len(), "{longest}");
    let mut from = longest.clone().into_bytes();
    from.push(0);
    let mut to = b"libcuda.so.1".to_vec();
    to.resize(from.len(), 0);
    let at = fw.windows(from.len()).position(|w| w == from).unwrap();
    fw[at..at + from.len()].copy_from_slice(&to);
    assert!(elf_deps(&fw)
        .unwrap()
        .needed
        .contains(&"libcuda.so.1".to_string()));

    let tar = libs
        .iter()
        .fold(Tar::new(), |t, (n, bytes)| {
            t.file(&format!("{dir}/{n}"), 0o755, bytes)
        })
        .file("opt/fw/libfw.so", 0o755, &fw)
        .file(
            "usr/local/cuda/lib64/stubs/libcuda.so",
            0o755,
            b"stub, not examined",
        );
    let found = linkage(tar.finish(), &[]);
    assert!(found.missing.is_empty(), "{found:?}");
    assert_eq!(found.driver_missing.len(), 1);
    assert_eq!(found.driver_missing[0].file, "/opt/fw/libfw.so");
}
