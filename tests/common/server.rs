//! `imgflow serve` as a child process: start, wait for readiness, stop, kill, restart.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::netns::NetNs;
use super::process::{dump_log_on_panic, log_file, no_proxy_env, terminate, wait_timeout};
use super::{tail_file, Registry};

/// The line `imgflow serve` prints to stdout once it accepts connections.
pub const READY_PREFIX: &str = "imgflow: listening on https://";

/// How long `start` waits for the ready line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Options for starting `imgflow serve`; obtain one with [`Server::builder`].
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    ip: Ipv4Addr,
    port: u16,
    data_dir: Option<PathBuf>,
    certs_dir: Option<PathBuf>,
    extra_args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    default_args: bool,
    netns: Option<String>,
}

impl ServerBuilder {
    /// Listen on this loopback address (default `127.0.0.1`). For any other address the
    /// server also gets `--tls-name ADDRESS`, so its generated certificate covers it.
    pub fn ip(mut self, ip: Ipv4Addr) -> Self {
        assert!(ip.is_loopback(), "tests only listen on 127.0.0.0/8");
        self.ip = ip;
        self
    }

    /// Run the server inside network namespace `ns` (under `ip netns exec`), listening on
    /// the namespace's end of its veth link, a non-loopback TEST-NET address. No
    /// `--tls-name` is passed: the server itself must cover its listen address.
    pub fn netns(mut self, ns: &NetNs) -> Self {
        self.netns = Some(ns.name().to_string());
        self.ip = ns.ns_ip();
        self
    }

    /// Listen on this port (default 0: the server picks a free one).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Use this data directory instead of a fresh temporary one. The default directory
    /// lives in the `Server`'s temp dir and is deleted when the `Server` is dropped, so to
    /// run several `Server` values on the same data, pass a directory the test owns.
    /// ([`Server::restart`] keeps the data either way.)
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Use this certificate directory instead of a fresh temporary one.
    pub fn certs_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.certs_dir = Some(dir.into());
        self
    }

    /// Appends one argument after the defaults.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Appends arguments after the defaults.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the server process.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Do not pass `--listen`, `--data-dir` and `--certs-dir`; only the extra arguments
    /// (for tests of `--config` files). The address is taken from the ready line, and the
    /// directory accessors then report the builder's values or the temporary defaults.
    pub fn without_default_args(mut self) -> Self {
        self.default_args = false;
        self
    }

    /// Starts the server and waits for its ready line; panics (with the log) on failure.
    pub fn start(self) -> Server {
        match self.try_start() {
            Ok(server) => server,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts the server; `Err` carries the reason and the server log when it exits or
    /// does not become ready within 30 s.
    pub fn try_start(self) -> Result<Server, String> {
        let tmp = tempfile::Builder::new()
            .prefix("imgflow-serve-")
            .tempdir()
            .expect("creating temp dir for imgflow serve");
        let data_dir = self.data_dir.clone().unwrap_or(tmp.path().join("data"));
        let certs_dir = self.certs_dir.clone().unwrap_or(tmp.path().join("certs"));
        let log_path = tmp.path().join("imgflow.log");
        let mut server = Server {
            builder: self,
            _tmp: tmp,
            data_dir,
            certs_dir,
            log_path,
            child: None,
            addr: None,
        };
        server.spawn()?;
        Ok(server)
    }
}

/// A running `imgflow serve` child process. Dropping it kills the process.
pub struct Server {
    builder: ServerBuilder,
    _tmp: tempfile::TempDir,
    data_dir: PathBuf,
    certs_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    addr: Option<SocketAddr>,
}

impl Server {
    /// Path of the binary under test.
    pub fn binary() -> PathBuf {
        PathBuf::from(env!("CARGO_BIN_EXE_imgflow"))
    }

    /// Builder with defaults: `127.0.0.1:0`, fresh temporary data and certs directories.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            ip: Ipv4Addr::LOCALHOST,
            port: 0,
            data_dir: None,
            certs_dir: None,
            extra_args: Vec::new(),
            envs: Vec::new(),
            default_args: true,
            netns: None,
        }
    }

    /// Starts a server with the defaults; panics (with the log) if it does not come up.
    pub fn start() -> Server {
        Server::builder().start()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let b = &self.builder;
        let mut cmd = match &b.netns {
            // `ip netns exec` execs the binary: the child is the server itself.
            Some(name) => {
                let mut cmd = Command::new(super::require_tool("ip"));
                cmd.args(["netns", "exec", name]).arg(Server::binary());
                cmd
            }
            None => Command::new(Server::binary()),
        };
        cmd.arg("serve");
        if b.default_args {
            let port = self.addr.map(|a| a.port()).unwrap_or(b.port);
            cmd.arg("--listen")
                .arg(SocketAddr::new(IpAddr::V4(b.ip), port).to_string())
                .arg("--data-dir")
                .arg(&self.data_dir)
                .arg("--certs-dir")
                .arg(&self.certs_dir);
            // The generated certificate covers 127.0.0.1; other loopback addresses must
            // be named explicitly.
            if b.ip != Ipv4Addr::LOCALHOST && b.netns.is_none() {
                cmd.arg("--tls-name").arg(b.ip.to_string());
            }
        }
        cmd.args(&b.extra_args);
        // Plain logs in the log file (the builder's env may override it).
        cmd.env("NO_COLOR", "1");
        cmd.envs(b.envs.iter().map(|(k, v)| (k, v)));
        no_proxy_env(&mut cmd);
        let stderr = log_file(&self.log_path);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", Server::binary().display()))?;

        // A reader thread forwards stdout into the log and reports the ready line.
        let stdout = child.stdout.take().expect("piped stdout");
        let mut log = log_file(&self.log_path);
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(log, "[stdout] {line}");
                if !sent && line.starts_with(READY_PREFIX) {
                    let _ = tx.send(line);
                    sent = true;
                }
            }
        });

        match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => {
                let rest = &line[READY_PREFIX.len()..];
                let addr: SocketAddr = rest
                    .trim()
                    .trim_end_matches('/')
                    .parse()
                    .map_err(|e| format!("cannot parse address in ready line {line:?}: {e}"))?;
                self.addr = Some(addr);
                self.child = Some(child);
                Ok(())
            }
            Err(_) => {
                let status = match wait_timeout(&mut child, Duration::from_millis(500)) {
                    Some(status) => format!("exited with {status}"),
                    None => {
                        let _ = child.kill();
                        let _ = child.wait();
                        format!("no ready line within {START_TIMEOUT:?}; killed")
                    }
                };
                Err(format!(
                    "imgflow serve did not start ({status}); log {}:\n{}",
                    self.log_path.display(),
                    tail_file(&self.log_path, 80)
                ))
            }
        }
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("server has not started")
    }

    /// `https://HOST:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr())
    }

    /// `HOST:PORT` (as used in image references).
    pub fn host_port(&self) -> String {
        self.addr().to_string()
    }

    /// The generated (or given) CA certificate: `CERTS/ca.crt`.
    pub fn ca_path(&self) -> PathBuf {
        self.certs_dir.join("ca.crt")
    }

    /// The certificate directory passed as `--certs-dir`.
    pub fn certs_dir(&self) -> &Path {
        &self.certs_dir
    }

    /// The data directory passed as `--data-dir` (deleted on drop unless it was given to
    /// [`ServerBuilder::data_dir`]).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The combined stdout/stderr log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The full log so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// Process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is not running").id()
    }

    /// True while the child process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// A reqwest client trusting only this server's CA.
    pub fn client(&self) -> reqwest::Client {
        super::https_client(&self.ca_path())
    }

    /// Kills the server with SIGKILL (a crash) and waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Graceful stop: SIGTERM, wait up to 20 s (then SIGKILL and panic). Returns the exit
    /// status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server is not running");
        let (status, killed) = terminate(&mut child, Duration::from_secs(20));
        assert!(
            !killed,
            "imgflow serve did not exit within 20 s of SIGTERM; log:\n{}",
            tail_file(&self.log_path, 80)
        );
        status
    }

    /// Stops the server gracefully if it runs, then starts it again with the same options,
    /// address (same port), data and certificate directories.
    pub fn restart(&mut self) {
        if self.is_running() {
            self.stop();
        }
        self.child = None;
        if let Err(e) = self.spawn() {
            panic!("restart failed: {e}");
        }
    }
}

/// Adds `user` with `password` to the htpasswd file of `config` with the real CLI
/// (`imgflow user add`, the password on stdin); panics with its stderr on failure.
pub fn add_user(config: &Path, user: &str, password: &str) {
    let mut child = Command::new(Server::binary())
        .args(["user", "add", user, "--config"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning imgflow user add");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .expect("writing the password");
    drop(stdin);
    let out = child.wait_with_output().expect("imgflow user add");
    assert!(
        out.status.success(),
        "imgflow user add {user}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Registry for Server {
    fn kind(&self) -> &'static str {
        "imgflow"
    }
    fn host_port(&self) -> String {
        Server::host_port(self)
    }
    fn ca_path(&self) -> PathBuf {
        Server::ca_path(self)
    }
    fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log_path, lines)
    }
    fn kill9_restart(&mut self) {
        self.kill9();
        self.restart();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        dump_log_on_panic("imgflow serve", &self.log_path);
    }
}
