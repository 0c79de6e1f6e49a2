//! A private Docker daemon (vfs storage, no bridge, no iptables) on its own socket, data
//! root and exec root, plus the docker CLI wired to it and `/etc/docker/certs.d` guards.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::oci_layout::{tar, TarEntry};
use super::process::{
    dump_log_on_panic, log_to, no_proxy_env, output_with_timeout, pid_alive, poll, send_signal,
    terminate,
};
use super::{require_root, require_tool, tail_file};

/// Longest any single docker CLI command may run.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(300);

static INSTANCE: AtomicUsize = AtomicUsize::new(0);

/// Applets linked to `/bin/busybox` in the base image made by [`Dockerd::import_busybox`].
const BUSYBOX_APPLETS: &[&str] = &[
    "sh",
    "ls",
    "cat",
    "echo",
    "mkdir",
    "rm",
    "cp",
    "mv",
    "true",
    "false",
    "sleep",
    "env",
    "grep",
    "wc",
    "head",
    "tail",
    "sha256sum",
    "id",
    "uname",
    "test",
    "touch",
    "find",
];

/// A running private dockerd. Dropping it stops the daemon (and its containerd) and
/// removes its data.
pub struct Dockerd {
    tmp: tempfile::TempDir,
    child: Option<Child>,
    docker_bin: PathBuf,
    log_path: PathBuf,
}

impl Dockerd {
    /// Starts dockerd and waits (up to 60 s) until `docker info` succeeds on its socket.
    pub fn start() -> Dockerd {
        require_root("a private dockerd");
        let dockerd_bin = require_tool("dockerd");
        let docker_bin = require_tool("docker");
        require_tool("containerd");
        require_tool("runc");
        // Short path under /tmp: unix socket paths are limited to 108 bytes.
        let tmp = tempfile::Builder::new()
            .prefix("imgflow-dockerd-")
            .tempdir_in("/tmp")
            .expect("creating dockerd temp dir");
        let root = tmp.path();
        for dir in ["data", "exec", "client", "work"] {
            std::fs::create_dir_all(root.join(dir)).expect("creating dockerd dirs");
        }
        // An empty daemon.json keeps a host /etc/docker/daemon.json out of the picture.
        std::fs::write(root.join("daemon.json"), "{}\n").expect("writing daemon.json");
        let log_path = root.join("dockerd.log");
        let namespace = format!(
            "imgflow-e2e-{}-{}",
            std::process::id(),
            INSTANCE.fetch_add(1, Ordering::SeqCst)
        );

        let mut cmd = Command::new(&dockerd_bin);
        cmd.arg(format!(
            "--host=unix://{}",
            root.join("docker.sock").display()
        ))
        .arg(format!("--data-root={}", root.join("data").display()))
        .arg(format!("--exec-root={}", root.join("exec").display()))
        .arg(format!("--pidfile={}", root.join("docker.pid").display()))
        .arg(format!(
            "--config-file={}",
            root.join("daemon.json").display()
        ))
        .arg(format!("--containerd-namespace={namespace}"))
        .arg(format!(
            "--containerd-plugins-namespace={namespace}-plugins"
        ))
        .args([
            "--storage-driver=vfs",
            "--bridge=none",
            "--iptables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--userland-proxy=false",
            "--log-level=info",
        ]);
        no_proxy_env(&mut cmd);
        log_to(&mut cmd, &log_path);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", dockerd_bin.display()));
        let mut daemon = Dockerd {
            tmp,
            child: Some(child),
            docker_bin,
            log_path,
        };
        daemon.wait_ready();
        daemon
    }

    fn wait_ready(&mut self) {
        let mut last = String::new();
        let ok = poll(Duration::from_secs(60), || {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "dockerd exited during start-up with {status}; log:\n{}",
                    tail_file(&self.log_path, 60)
                );
            }
            let out = self.docker_output(&["info", "--format", "{{.ServerVersion}}"]);
            if out.status.success() {
                Some(())
            } else {
                last = String::from_utf8_lossy(&out.stderr).into_owned();
                None
            }
        });
        if ok.is_none() {
            panic!(
                "dockerd did not answer `docker info` within 60 s (last error: {last}); log:\n{}",
                tail_file(&self.log_path, 60)
            );
        }
    }

    /// The daemon address for `docker -H`, e.g. `unix:///tmp/imgflow-dockerd-x/docker.sock`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.tmp.path().join("docker.sock").display())
    }

    /// A scratch directory (inside the daemon's temp dir) for build contexts and tarballs.
    pub fn work_dir(&self) -> PathBuf {
        self.tmp.path().join("work")
    }

    /// The daemon's log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// `imgflow publish`'s Docker engine bound to this daemon through `DOCKER_HOST` (as a
    /// user would set it), with its own client config and the legacy builder, as
    /// [`Dockerd::command`] uses (a machine with the buildx plugin would otherwise build
    /// with BuildKit), and none of the caller's context, TLS or proxy settings.
    pub fn publish_engine(&self) -> imgflow::publish::docker::DockerCli {
        let config = self.work_dir().join("docker-config");
        std::fs::create_dir_all(&config).unwrap();
        let mut cli = imgflow::publish::docker::DockerCli::new()
            .with_program(require_tool("docker"))
            .with_host(self.host())
            .with_env("DOCKER_CONFIG", &config)
            .with_env("DOCKER_BUILDKIT", "0");
        for var in [
            "DOCKER_CONTEXT",
            "DOCKER_TLS_VERIFY",
            "DOCKER_CERT_PATH",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "http_proxy",
            "https_proxy",
        ] {
            cli = cli.without_env(var);
        }
        cli
    }

    /// A `docker` command bound to this daemon, with an isolated client config, the classic
    /// builder (`DOCKER_BUILDKIT=0`) and no proxy.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.docker_bin);
        cmd.arg("-H").arg(self.host());
        for var in [
            "DOCKER_HOST",
            "DOCKER_CONTEXT",
            "DOCKER_TLS_VERIFY",
            "DOCKER_CERT_PATH",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("DOCKER_CONFIG", self.tmp.path().join("client"))
            .env("DOCKER_BUILDKIT", "0")
            .env("DOCKER_CLI_HINTS", "false");
        no_proxy_env(&mut cmd);
        cmd
    }

    /// Runs `docker ARGS` and returns its raw output (success or not).
    /// Panics if the command runs longer than 5 minutes.
    pub fn docker_output(&self, args: &[&str]) -> Output {
        output_with_timeout(self.command().args(args), DOCKER_TIMEOUT)
    }

    /// Runs `docker ARGS`, panics with stdout, stderr and the daemon log unless it
    /// succeeds, and returns stdout.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = self.docker_output(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            panic!(
                "`docker {}` failed with {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}\n\
                 --- dockerd log (tail) ---\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                tail_file(&self.log_path, 40)
            );
        }
        stdout
    }

    /// Runs `docker ARGS`, panics if it succeeds, and returns stdout + stderr.
    pub fn docker_fails(&self, args: &[&str]) -> String {
        let out = self.docker_output(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "`docker {}` unexpectedly succeeded:\n{text}",
            args.join(" ")
        );
        text
    }

    /// Imports a minimal base image named `tag`: a rootfs with the host's static
    /// `/bin/busybox` and symlinks for common applets. Returns the image id.
    pub fn import_busybox(&self, tag: &str) -> String {
        let busybox = static_busybox();
        let mut entries = vec![
            TarEntry::dir("bin"),
            TarEntry::dir("etc"),
            TarEntry::dir("root"),
            TarEntry::dir("tmp"),
            TarEntry::dir("proc"),
            TarEntry::dir("sys"),
            TarEntry::dir("dev"),
            TarEntry::file("bin/busybox", busybox, 0o755),
            TarEntry::file(
                "etc/passwd",
                b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
                0o644,
            ),
            TarEntry::file("etc/group", b"root:x:0:\n".to_vec(), 0o644),
        ];
        for applet in BUSYBOX_APPLETS {
            entries.push(TarEntry::symlink(&format!("bin/{applet}"), "busybox"));
        }
        let tarball = self
            .work_dir()
            .join(format!("rootfs-{}.tar", tag.replace([':', '/'], "_")));
        std::fs::write(&tarball, tar(&entries)).expect("writing busybox rootfs tarball");
        let tarball = tarball.to_string_lossy().into_owned();
        let id = self.docker(&["import", "--change", "CMD [\"/bin/sh\"]", &tarball, tag]);
        let id = id.trim().to_string();
        assert!(
            id.starts_with("sha256:"),
            "unexpected docker import output {id:?}"
        );
        id
    }
}

/// Reads the host's busybox and checks it is statically linked (a dynamic busybox cannot
/// run in an image without libc).
fn static_busybox() -> Vec<u8> {
    let candidates = ["/bin/busybox", "/usr/bin/busybox"];
    let path = candidates
        .iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| panic!("busybox not found at {candidates:?}; install busybox-static"));
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    assert!(
        !elf_has_interpreter(&bytes),
        "{path} is dynamically linked; install Debian's busybox-static package"
    );
    bytes
}

/// True when an ELF64 little-endian file has a PT_INTERP program header.
fn elf_has_interpreter(elf: &[u8]) -> bool {
    assert!(
        elf.len() > 64 && &elf[..4] == b"\x7fELF" && elf[4] == 2 && elf[5] == 1,
        "busybox is not a 64-bit little-endian ELF file"
    );
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        o + 4 <= elf.len() && u32::from_le_bytes(elf[o..o + 4].try_into().expect("4")) == 3
    })
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let root = self.tmp.path().to_path_buf();
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(30));
        }
        // dockerd normally stops the containerd it started; make sure after a hard kill.
        let containerd_pid = root.join("exec/containerd/containerd.pid");
        if let Ok(pid) = std::fs::read_to_string(&containerd_pid) {
            if let Ok(pid) = pid.trim().parse::<u32>() {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&*root.to_string_lossy()) {
                    send_signal(pid, "TERM");
                    if poll(Duration::from_secs(10), || (!pid_alive(pid)).then_some(())).is_none() {
                        send_signal(pid, "KILL");
                    }
                }
            }
        }
        unmount_below(&root);
        dump_log_on_panic("dockerd", &self.log_path);
    }
}

/// Lazily unmounts anything still mounted below `root` (deepest first).
fn unmount_below(root: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = root.to_string_lossy().into_owned();
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = Command::new("umount").arg("-l").arg(point).status();
    }
}

/// Installs `/etc/docker/certs.d/HOST:PORT/ca.crt` for the lifetime of the guard, so the
/// Docker daemon trusts a test registry's CA. Dropping it removes what it created.
pub struct DockerCertsGuard {
    dir: PathBuf,
    created_dir: bool,
}

impl DockerCertsGuard {
    /// Copies `ca_pem` to `/etc/docker/certs.d/{host_port}/ca.crt`.
    pub fn install(host_port: &str, ca_pem: &Path) -> DockerCertsGuard {
        require_root("writing /etc/docker/certs.d");
        let dir = Path::new("/etc/docker/certs.d").join(host_port);
        let created_dir = !dir.exists();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        std::fs::copy(ca_pem, dir.join("ca.crt"))
            .unwrap_or_else(|e| panic!("copying CA into {}: {e}", dir.display()));
        DockerCertsGuard { dir, created_dir }
    }

    /// The directory holding `ca.crt`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for DockerCertsGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.dir.join("ca.crt"));
        if self.created_dir {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}
