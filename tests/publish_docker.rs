//! Integration: the Docker side of `imgflow publish` ([`imgflow::publish::docker`]) against
//! a private dockerd. One image is built (two stages, build args, `.dockerignore`, RUN
//! steps without network), inspected, checked in containers (passing, failing, timed out,
//! dropped), read from outside through `docker export`, and saved; no container or
//! volume may be left behind at any point.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use common::Dockerd;
use imgflow::publish::docker::{
    BuildSpec, DockerCli, DockerError, Engine, FileKind, ImageFs, NetworkMode, RunSpec,
};
use sha2::{Digest, Sha256};

/// The image under test: a builder stage writes files (and what network it saw), the
/// final stage copies them with an owner and sets every metadata instruction.
const DOCKERFILE: &str = r#"ARG BASE
FROM ${BASE} AS builder
ARG GREETING=unset
RUN mkdir -p /out && echo "$GREETING from builder" > /out/greeting.txt \
 && busybox chmod 0640 /out/greeting.txt && ls /sys/class/net > /out/net.txt
FROM ${BASE}
ARG GREETING
ENV APP_HOME=/opt/app GREETING=${GREETING}
LABEL org.example.team="research"
COPY --from=builder --chown=1000:100 /out/ /opt/app/
COPY . /ctx/
COPY run.sh /opt/app/run.sh
RUN busybox ln -s /opt/app/greeting.txt /opt/app/latest && mkdir /data && busybox chown 1000:100 /data
USER 1000:100
WORKDIR /opt/app
EXPOSE 8888/tcp
VOLUME /data
ENTRYPOINT ["/bin/sh", "/opt/app/run.sh"]
CMD ["default-arg"]
"#;

const RUN_SH: &str = "echo \"run.sh got: $*\"\n";

fn write_context(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(dir.join("run.sh"), RUN_SH).unwrap();
    std::fs::set_permissions(dir.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("secret.txt"), "must not reach the daemon").unwrap();
    std::fs::write(dir.join(".dockerignore"), "secret.txt\n").unwrap();
}

/// Containers (any state) and volumes the daemon still has.
fn leftovers(docker: &Dockerd) -> String {
    let containers = docker.docker(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    let volumes = docker.docker(&["volume", "ls", "-q"]);
    format!("{}{}", containers.trim(), volumes.trim())
}

fn assert_clean(docker: &Dockerd, after: &str) {
    let left = leftovers(docker);
    assert!(left.is_empty(), "left behind after {after}: {left}");
}

#[test]
fn the_docker_engine_builds_inspects_checks_exports_and_saves_an_image() {
    let docker = Dockerd::start();
    let base = "imgflow-test/busybox:base";
    docker.import_busybox(base);
    let ctx = docker.work_dir().join("ctx");
    write_context(&ctx);
    let cli = docker.publish_engine();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    rt.block_on(async {
        let id = build(&cli, &ctx, base).await;
        inspect(&cli, &id).await;
        checks(&cli, &docker, &id).await;
        let fs = cli.export_filesystem(&id).await.expect("export");
        assert_clean(&docker, "export");
        files(&fs).await;
        save(&cli, &docker, &id).await;
        failures(&cli, &ctx, base).await;
        assert_clean(&docker, "a failed build");
        let version = cli.version().await.expect("version");
        assert!(
            !version.server.is_empty() && !version.client.is_empty(),
            "{version:?}"
        );
        let runtimes = cli.runtimes().await.expect("runtimes");
        assert!(runtimes.contains_key("runc"), "{runtimes:?}");
        assert!(
            !cli.has_nvidia_runtime().await.unwrap(),
            "no NVIDIA runtime here"
        );
        cli.remove_image("imgflow-build/app:run-1")
            .await
            .expect("rmi");
    });
    assert_clean(&docker, "the whole test");
    eprintln!("engine operations took {:?}", started.elapsed());
}

async fn build(cli: &DockerCli, ctx: &Path, base: &str) -> String {
    let mut spec = BuildSpec::new(ctx, "imgflow-build/app:run-1");
    spec.build_args.insert("BASE".into(), base.into());
    spec.build_args
        .insert("GREETING".into(), "hi-from-args".into());
    spec.labels
        .insert("org.opencontainers.image.revision".into(), "abc123".into());
    spec.network = NetworkMode::None;
    let mut lines = Vec::new();
    let id = cli
        .build(&spec, &mut |line: &str| lines.push(line.to_string()))
        .await
        .unwrap_or_else(|e| panic!("build failed: {e}"));
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert!(
        lines.iter().any(|l| l.contains("greeting.txt")),
        "the log streams the RUN steps:\n{}",
        lines.join("\n")
    );
    id
}

async fn inspect(cli: &DockerCli, id: &str) {
    let image = cli.inspect_image(id).await.expect("inspect");
    assert_eq!(image.id, id);
    assert_eq!(
        (image.os.as_str(), image.architecture.is_empty()),
        ("linux", false)
    );
    assert!(image.size > 0);
    assert!(
        image.root_fs.layers.len() >= 4,
        "base + 3 COPY + RUN: {:?}",
        image.root_fs
    );
    assert_eq!(image.repo_tags, ["imgflow-build/app:run-1"]);
    let c = &image.config;
    let env = c.env_map();
    assert_eq!(
        (env["APP_HOME"].as_str(), env["GREETING"].as_str()),
        ("/opt/app", "hi-from-args")
    );
    assert_eq!(c.labels["org.example.team"], "research");
    assert_eq!(c.labels["org.opencontainers.image.revision"], "abc123");
    assert_eq!(
        (c.user.as_str(), c.working_dir.as_str()),
        ("1000:100", "/opt/app")
    );
    assert_eq!(c.exposed_ports, BTreeSet::from(["8888/tcp".to_string()]));
    assert_eq!(c.volumes, BTreeSet::from(["/data".to_string()]));
    assert_eq!(
        c.entrypoint.as_deref(),
        Some(&["/bin/sh".to_string(), "/opt/app/run.sh".into()][..])
    );
    assert_eq!(c.cmd.as_deref(), Some(&["default-arg".to_string()][..]));
    let missing = cli
        .inspect_image("imgflow-test/none:missing")
        .await
        .unwrap_err();
    assert!(
        matches!(missing, DockerError::NoSuchImage(_)),
        "{missing:?}"
    );
}

fn shell(id: &str, script: &str) -> RunSpec {
    let mut spec = RunSpec::new(id, [script]);
    spec.entrypoint = Some(vec!["/bin/sh".into(), "-c".into()]);
    spec.timeout = Duration::from_secs(60);
    spec
}

async fn checks(cli: &DockerCli, docker: &Dockerd, id: &str) {
    // The image's own entrypoint and CMD.
    let out = cli
        .run_check(&RunSpec::new(id, Vec::<String>::new()))
        .await
        .expect("default run");
    assert_eq!(
        (out.exit_code, out.stdout.text().as_str()),
        (Some(0), "run.sh got: default-arg\n")
    );

    let mut spec = shell(
        id,
        "cat greeting.txt; echo to-stderr >&2; id -u; pwd; echo $EXTRA; ls /sys/class/net",
    );
    spec.env.push(("EXTRA".into(), "extra value".into()));
    let out = cli.run_check(&spec).await.expect("passing check");
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout.text(),
        "hi-from-args from builder\n1000\n/opt/app\nextra value\nlo\n",
        "only loopback: --network none"
    );
    assert_eq!(out.stderr.text(), "to-stderr\n");
    assert!(!out.timed_out && !out.stdout.truncated);

    let mut spec = shell(id, "echo out; echo bad thing >&2; exit 3");
    spec.user = Some("0".into());
    let out = cli.run_check(&spec).await.expect("failing check");
    assert_eq!(
        (
            out.exit_code,
            out.stdout.text().as_str(),
            out.stderr.text().as_str()
        ),
        (Some(3), "out\n", "bad thing\n")
    );

    let mut noisy = shell(
        id,
        "i=0; while test $i -lt 3000; do echo 0123456789abcdef0123456789abcdef; i=$((i+1)); done",
    );
    noisy.output_limit = 1000;
    let out = cli.run_check(&noisy).await.expect("noisy check");
    assert_eq!(
        (
            out.stdout.bytes.len(),
            out.stdout.truncated,
            out.stdout.total
        ),
        (1000, true, 99_000)
    );

    let mut slow = shell(id, "echo started; sleep 30");
    slow.timeout = Duration::from_secs(2);
    let t = Instant::now();
    let out = cli.run_check(&slow).await.expect("timed-out check");
    assert!(out.timed_out && out.exit_code.is_none(), "{out:?}");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "the timeout took {:?}",
        t.elapsed()
    );
    assert_clean(docker, "a timed-out check");

    let mut missing = RunSpec::new(id, Vec::<String>::new());
    missing.entrypoint = Some(vec!["/no/such/binary".into()]);
    let missing = cli.run_check(&missing).await;
    match missing {
        Ok(out) => assert!(
            out.exit_code != Some(0) && !out.start_error.is_empty(),
            "{out:?}"
        ),
        Err(e) => assert!(e.to_string().contains("no such file"), "{e}"),
    }
    assert_clean(docker, "a check whose command does not exist");

    // A check whose future is dropped mid-run: the guard removes the container.
    let dropped = tokio::time::timeout(
        Duration::from_secs(3),
        cli.run_check(&shell(id, "sleep 30")),
    )
    .await;
    assert!(dropped.is_err(), "the check should still have been running");
    let gone = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        leftovers(docker).is_empty()
    });
    assert!(gone, "a dropped check left {}", leftovers(docker));
}

async fn files(fs: &ImageFs) {
    let greeting = fs.lstat("/opt/app/greeting.txt").expect("greeting.txt");
    assert_eq!(
        (greeting.uid, greeting.gid, greeting.permissions().as_str()),
        (1000, 100, "-rw-r-----")
    );
    assert_eq!(
        fs.read("/opt/app/greeting.txt", 1024).await.unwrap(),
        b"hi-from-args from builder\n"
    );
    assert_eq!(
        fs.read("/opt/app/net.txt", 1024).await.unwrap(),
        b"lo\n",
        "RUN had no network"
    );
    assert_eq!(
        fs.lstat("/opt/app/run.sh").unwrap().permissions(),
        "-rwxr-xr-x"
    );
    let latest = fs.lstat("/opt/app/latest").unwrap();
    assert_eq!(
        (latest.kind, latest.link_target.as_deref()),
        (FileKind::Symlink, Some("/opt/app/greeting.txt"))
    );
    assert_eq!(
        fs.stat("/opt/app/latest").unwrap().path,
        "/opt/app/greeting.txt"
    );
    assert_eq!(fs.resolve("/bin/sh").unwrap(), "/bin/busybox");
    let data = fs.lstat("/data").unwrap();
    assert_eq!((data.kind, data.uid, data.gid), (FileKind::Dir, 1000, 100));
    assert!(fs.exists("/ctx/run.sh") && fs.exists("/ctx/Dockerfile"));
    assert!(!fs.exists("/ctx/secret.txt"), ".dockerignore is honoured");
    let names: Vec<&str> = fs
        .read_dir("/opt/app")
        .unwrap()
        .iter()
        .map(|m| m.name())
        .collect();
    assert_eq!(names, ["greeting.txt", "latest", "net.txt", "run.sh"]);
    let too_big = fs.read("/bin/busybox", 1024).await.unwrap_err();
    assert!(
        matches!(too_big, DockerError::FileTooLarge { .. }),
        "{too_big:?}"
    );
}

async fn save(cli: &DockerCli, docker: &Dockerd, id: &str) {
    let dest = docker.work_dir().join("app.tar");
    cli.save_image(id, &dest).await.expect("save");
    let layers = cli.inspect_image(id).await.unwrap().root_fs.layers;
    let mut archive = tar::Archive::new(std::fs::File::open(&dest).unwrap());
    let mut manifest = None;
    let mut digests = std::collections::BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if path == "manifest.json" {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            manifest = Some(serde_json::from_str::<serde_json::Value>(&text).unwrap());
        } else if entry.header().entry_type().is_file() {
            let mut hasher = Sha256::new();
            std::io::copy(&mut entry, &mut hasher).unwrap();
            digests.insert(path, format!("sha256:{}", hex::encode(hasher.finalize())));
        }
    }
    let manifest = manifest.expect("manifest.json in the saved archive");
    let listed: Vec<&str> = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), layers.len(), "{manifest}");
    for (path, diff_id) in listed.iter().zip(&layers) {
        assert_eq!(
            digests.get(*path),
            Some(diff_id),
            "layer {path} is the uncompressed tar of {diff_id}"
        );
    }
}

async fn failures(cli: &DockerCli, ctx: &Path, base: &str) {
    std::fs::write(
        ctx.join("Dockerfile.bad"),
        format!("FROM {base}\nRUN echo about-to-fail && false\n"),
    )
    .unwrap();
    let mut spec = BuildSpec::new(ctx, "imgflow-build/bad:run-1");
    spec.dockerfile = Some(ctx.join("Dockerfile.bad"));
    spec.network = NetworkMode::None;
    let err = cli.build(&spec, &mut |_: &str| {}).await.unwrap_err();
    match &err {
        DockerError::BuildFailed { log_tail, .. } => {
            assert!(
                log_tail.iter().any(|l| l.contains("about-to-fail")),
                "{err}"
            )
        }
        other => panic!("expected BuildFailed, got {other:?}"),
    }
}

#[test]
fn an_unreachable_daemon_is_reported_with_the_address_tried() {
    let host = format!("unix:///tmp/imgflow-no-daemon-{}.sock", std::process::id());
    let cli = DockerCli::new()
        .with_program(common::require_tool("docker"))
        .with_host(&host)
        .with_env(
            "DOCKER_CONFIG",
            std::env::temp_dir().join("imgflow-no-docker-config"),
        );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt.block_on(cli.version()).unwrap_err();
    match err {
        DockerError::DaemonUnreachable { host: tried, .. } => {
            assert!(tried.contains(&host[7..]), "{tried}")
        }
        other => panic!("expected DaemonUnreachable, got {other:?}"),
    }
}
