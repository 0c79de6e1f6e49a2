//! Child-process plumbing shared by the server guards: log files, signals, bounded waits.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Proxy variables removed from every child: test traffic must stay on loopback.
pub const PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

/// Removes proxy settings from `cmd` and marks loopback as direct.
pub fn no_proxy_env(cmd: &mut Command) -> &mut Command {
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    cmd.env("NO_PROXY", "127.0.0.0/8,localhost,::1")
        .env("no_proxy", "127.0.0.0/8,localhost,::1")
}

/// Opens (appending) a log file that a child process can write to.
pub fn log_file(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening log file {}: {e}", path.display()))
}

/// Points both stdout and stderr of `cmd` at `log`.
pub fn log_to(cmd: &mut Command, log: &Path) {
    let out = log_file(log);
    let err = out.try_clone().expect("cloning log file handle");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
}

/// Sends `signal` (a name such as `TERM` or `KILL`) to one process id.
///
/// Uses the shell's `kill` builtin because the tests have no libc binding.
pub fn send_signal(pid: u32, signal: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("kill -s {signal} {pid}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// True when a process with this id exists (it may be a zombie).
pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits up to `timeout` for `child` to exit; `None` when it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("waiting for child process: {e}"),
        }
    }
}

/// SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit status and whether the
/// process had to be killed.
pub fn terminate(child: &mut Child, grace: Duration) -> (ExitStatus, bool) {
    if let Ok(Some(status)) = child.try_wait() {
        return (status, false);
    }
    send_signal(child.id(), "TERM");
    if let Some(status) = wait_timeout(child, grace) {
        return (status, false);
    }
    let _ = child.kill();
    let status = child.wait().expect("waiting for killed child");
    (status, true)
}

/// Polls `check` every 100 ms until it returns `Some`, or until `timeout`.
pub fn poll<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Prints the tail of a log to stderr when the current thread is panicking, so a failed
/// test shows what the server said.
pub fn dump_log_on_panic(what: &str, log: &Path) {
    if thread::panicking() {
        eprintln!(
            "----- last lines of {what} log ({}) -----\n{}\n----- end of {what} log -----",
            log.display(),
            super::tail_file(log, 80)
        );
    }
}

/// Runs `cmd` to completion, capturing stdout and stderr, and kills it (then panics with
/// what it printed so far) when it runs longer than `timeout`: a hung client must fail
/// the test, not stall CI.
pub fn output_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let description = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {description}: {e}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = wait_timeout(&mut child, timeout);
    let timed_out = status.is_none();
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        child.wait().expect("waiting for killed command")
    });
    let output = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    if timed_out {
        panic!(
            "{description} did not finish within {timeout:?}; killed.\n--- stdout ---\n{}\n\
             --- stderr ---\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output
}
