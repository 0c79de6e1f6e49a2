//! Integration: the check runner ([`imgflow::publish::checks::run`]) on images built by the
//! docker engine in a private dockerd. A small app image is checked with a realistic
//! container-structure-test file using every kind of test, once passing and once failing
//! in every kind; a fake "GPU" image (busybox, empty files named like the CUDA libraries,
//! the NVIDIA variables) passes its static tiers and is "not verified" at run time here,
//! which `require_gpu` turns into a failure. No container may be left behind.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Dockerd;
use imgflow::publish::checks::run::{
    run_checks, size_budgets, CheckKind, CheckOptions, CheckReport, GpuVerdict, Sizes, Status,
};
use imgflow::publish::checks::CheckFile;
use imgflow::publish::docker::{BuildSpec, DockerCli, Engine, NetworkMode};

const APP_DOCKERFILE: &str = r#"ARG BASE
FROM ${BASE}
ENV APP_HOME=/opt/app
LABEL org.example.team="research"
COPY app.conf LICENSE /opt/app/
RUN busybox chown 1000:100 /opt/app/app.conf && busybox chmod 0640 /opt/app/app.conf && mkdir /data
WORKDIR /opt/app
EXPOSE 8888
VOLUME /data
ENTRYPOINT ["/bin/echo", "entrypoint-ran"]
CMD ["serve"]
"#;

const GPU_DOCKERFILE: &str = r#"ARG BASE
FROM ${BASE}
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
RUN mkdir -p /usr/local/cuda/lib64/stubs /etc/ld.so.conf.d \
 && cd /usr/local/cuda/lib64 && touch libcudart.so.12 libcublas.so.12 libcudnn.so.9 stubs/libcuda.so.1 \
 && echo /usr/local/cuda/lib64 > /etc/ld.so.conf.d/cuda.conf
"#;

const PASSING: &str = r#"schemaVersion: "2.0.0"
globalEnvVars:
  - key: GREETING
    value: hello
commandTests:
  - name: env and no entrypoint
    command: sh
    args: ["-c", "echo \"$GREETING from $APP_HOME\""]
    expectedOutput: ["hello from /opt/app"]
    excludedOutput: ["entrypoint-ran"]
  - name: setup, command and teardown in one container
    setup: [["sh", "-c", "echo prepared > /tmp/state"]]
    command: cat
    args: ["/tmp/state"]
    teardown: [["rm", "/tmp/state"]]
    expectedOutput: ["prepared"]
  - name: no network in checks
    command: ls
    args: ["/sys/class/net"]
    expectedOutput: ["lo"]
    excludedOutput: ["eth"]
  - name: exit code and stderr
    envVars:
      - key: CODE
        value: "3"
    command: sh
    args: ["-c", "echo oops >&2; exit $CODE"]
    exitCode: 3
    expectedError: ["oops"]
fileExistenceTests:
  - name: config owner and mode
    path: /opt/app/app.conf
    permissions: "-rw-r-----"
    uid: 1000
    gid: 100
  - name: shell
    path: /bin/busybox
    isExecutableBy: any
  - name: no shadow file
    path: /etc/shadow
    shouldExist: false
fileContentTests:
  - name: config contents
    path: /opt/app/app.conf
    expectedContents: ["port = 8888"]
    excludedContents: ["password"]
metadataTest:
  envVars:
    - key: APP_HOME
      value: /opt/app
  labels:
    - key: org.example.team
      value: "^res"
      isRegex: true
  entrypoint: ["/bin/echo", "entrypoint-ran"]
  cmd: ["serve"]
  exposedPorts: ["8888"]
  volumes: ["/data"]
  workdir: /opt/app
licenseTests:
  - files: ["/opt/app/LICENSE"]
"#;

const FAILING: &str = r#"schemaVersion: "2.0.0"
commandTests:
  - name: wrong output
    command: echo
    args: ["hello"]
    expectedOutput: ["goodbye"]
  - name: wrong exit code
    command: "false"
  - name: failing setup
    setup: [["sh", "-c", "exit 7"]]
    command: "true"
  - name: runs too long
    command: sleep
    args: ["60"]
  - name: no such program
    command: /no/such/program
fileExistenceTests:
  - name: wrong mode
    path: /opt/app/app.conf
    permissions: "-rwxrwxrwx"
  - name: missing
    path: /opt/app/missing
fileContentTests:
  - name: excluded content
    path: /opt/app/app.conf
    excludedContents: ["port"]
metadataTest:
  cmd: ["other"]
  user: "1000"
licenseTests:
  - files: ["/usr/share/doc/none/copyright"]
"#;

const GPU_CHECKS: &str = r#"schemaVersion: "2.0.0"
commandTests:
  - name: "gpu: device query"
    command: nvidia-smi
  - name: cpu side
    command: "true"
"#;

async fn build(cli: &DockerCli, ctx: &Path, dockerfile: &str, tag: &str, base: &str) -> String {
    std::fs::create_dir_all(ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(ctx.join("app.conf"), "name = app\nport = 8888\n").unwrap();
    std::fs::write(ctx.join("LICENSE"), "Apache-2.0\n").unwrap();
    let mut spec = BuildSpec::new(ctx, tag);
    spec.build_args.insert("BASE".into(), base.into());
    spec.network = NetworkMode::None;
    cli.build(&spec, &mut |_: &str| {})
        .await
        .unwrap_or_else(|e| panic!("building {tag}: {e}"))
}

fn check_file(dir: &Path, name: &str, yaml: &str) -> CheckFile {
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    CheckFile::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn assert_clean(docker: &Dockerd, after: &str) {
    let containers = docker.docker(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    let volumes = docker.docker(&["volume", "ls", "-q"]);
    let left = format!("{}{}", containers.trim(), volumes.trim());
    assert!(left.is_empty(), "left behind after {after}: {left}");
}

fn summary(report: &CheckReport) -> String {
    report
        .results
        .iter()
        .map(|r| format!("{:?} {:?} {}: {}", r.status, r.kind, r.name, r.message))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn checks_run_against_real_images_and_gpu_images_are_not_verified_without_a_runtime() {
    let docker = Dockerd::start();
    let base = "imgflow-test/busybox:base";
    docker.import_busybox(base);
    let work = docker.work_dir();
    let cli = docker.publish_engine();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    rt.block_on(async {
        let app = build(
            &cli,
            &work.join("app"),
            APP_DOCKERFILE,
            "imgflow-checks/app:1",
            base,
        )
        .await;
        let gpu = build(
            &cli,
            &work.join("gpu"),
            GPU_DOCKERFILE,
            "imgflow-checks/gpu:1",
            base,
        )
        .await;
        assert_clean(&docker, "the builds");
        let options = CheckOptions {
            memory_bytes: 128 << 20,
            timeout: Duration::from_secs(5),
            ..CheckOptions::default()
        };

        // Every kind passes.
        let passing = check_file(&work, "passing.yaml", PASSING);
        let mut report = run_checks(&cli, &app, &[passing], &options)
            .await
            .expect("checks run");
        assert_clean(&docker, "the passing checks");
        let size = cli.inspect_image(&app).await.unwrap().size;
        report.extend(size_budgets(
            Some(100),
            None,
            Sizes {
                compressed: size,
                parent_compressed: None,
            },
        ));
        assert_eq!(report.totals.failed, 0, "{}", summary(&report));
        assert_eq!(report.totals.skipped, 0, "{}", summary(&report));
        assert_eq!(
            report.totals.passed,
            4 + 3 + 1 + 7 + 1 + 1,
            "{}",
            summary(&report)
        );
        assert_eq!(report.gpu, GpuVerdict::NotApplicable);

        // Every kind fails, each saying why.
        let failing = check_file(&work, "failing.yaml", FAILING);
        let timer = Instant::now();
        let mut report = run_checks(&cli, &app, &[failing], &options)
            .await
            .expect("checks run");
        assert!(
            timer.elapsed() < Duration::from_secs(60),
            "the timeout held"
        );
        assert_clean(&docker, "the failing checks");
        report.extend(size_budgets(
            Some(1),
            None,
            Sizes {
                compressed: 2_000_000,
                parent_compressed: None,
            },
        ));
        let text = summary(&report);
        assert_eq!(report.totals.passed, 0, "{text}");
        assert_eq!(report.totals.failed, 5 + 2 + 1 + 2 + 1 + 1, "{text}");
        for (name, needle) in [
            (
                "wrong output",
                "expected stdout to match \"goodbye\", got \"hello\\n\"",
            ),
            ("wrong exit code", "expected exit code 0, got 1"),
            ("failing setup", "setup command 1 (sh -c exit 7) exited 7"),
            ("runs too long", "timed out"),
            ("no such program", "could not start"),
            (
                "wrong mode",
                "expected permissions -rwxrwxrwx, got -rw-r-----",
            ),
            ("missing", "/opt/app/missing does not exist"),
            ("excluded content", "not to match \"port\""),
            (
                "metadataTest cmd",
                "expected cmd [\"other\"], got [\"serve\"]",
            ),
            ("metadataTest user", "expected user \"1000\", got \"\""),
            (
                "licenseTests[0] files",
                "license file /usr/share/doc/none/copyright is missing",
            ),
            ("max_size_mb", "over the budget of 1 MB"),
        ] {
            let r = report
                .results
                .iter()
                .find(|r| r.name == name)
                .unwrap_or_else(|| panic!("{name}: {text}"));
            assert_eq!(r.status, Status::Failed, "{name}: {text}");
            assert!(
                r.message.contains(needle),
                "{name}: {:?} lacks {needle:?}",
                r.message
            );
        }
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["totals"]["failed"], 12);

        // The fake GPU image: static and linkage tiers pass, the runtime tier cannot run.
        let gpu_checks = check_file(&work, "gpu.yaml", GPU_CHECKS);
        let gpu_options = CheckOptions {
            gpu: true,
            ..options.clone()
        };
        let report = run_checks(&cli, &gpu, std::slice::from_ref(&gpu_checks), &gpu_options)
            .await
            .expect("gpu checks run");
        assert_clean(&docker, "the gpu checks");
        let text = summary(&report);
        assert_eq!(report.gpu, GpuVerdict::NotVerified, "{text}");
        assert_eq!(report.totals.failed, 0, "{text}");
        for kind in [CheckKind::GpuStatic, CheckKind::GpuLinkage] {
            assert!(
                report
                    .results
                    .iter()
                    .filter(|r| r.kind == kind)
                    .all(|r| r.status == Status::Passed),
                "{kind:?}: {text}"
            );
        }
        let runtime = report
            .results
            .iter()
            .find(|r| r.kind == CheckKind::GpuRuntime)
            .unwrap();
        assert_eq!(runtime.status, Status::Skipped);
        assert!(
            runtime.message.contains("gpu: not verified"),
            "{}",
            runtime.message
        );
        let device = report
            .results
            .iter()
            .find(|r| r.name == "gpu: device query")
            .unwrap();
        assert_eq!(device.status, Status::Skipped, "{text}");
        assert_eq!(serde_json::to_value(report.gpu).unwrap(), "not verified");

        let required = CheckOptions {
            require_gpu: true,
            ..gpu_options
        };
        let report = run_checks(&cli, &gpu, &[gpu_checks], &required)
            .await
            .expect("gpu checks run");
        assert_eq!(report.gpu, GpuVerdict::NotVerified);
        assert_eq!(report.totals.failed, 1, "{}", summary(&report));
        assert!(!report.ok());
        assert_clean(&docker, "the required-gpu checks");
    });
    eprintln!("checks took {:?}", started.elapsed());
}
