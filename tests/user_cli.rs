//! `imgflow user add|del` run as a program: password from standard input, the htpasswd
//! file next to the config file, exit codes and messages.

use imgflow::access::Htpasswd;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn imgflow(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_imgflow"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command refused before it reads its input exits at once: that write may fail.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn config(dir: &Path) -> String {
    let cfg = dir.join("registry.toml");
    std::fs::write(&cfg, "[access]\nhtpasswd = \"users/htpasswd\"\n").unwrap();
    std::fs::create_dir(dir.join("users")).unwrap();
    cfg.to_str().unwrap().to_string()
}

#[test]
fn add_from_stdin_replace_and_del() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let file = dir.path().join("users/htpasswd");

    let o = imgflow(&["user", "add", "carol", "--config", &cfg], "first pw\n");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("carol"));
    let o = imgflow(&["user", "add", "dave", "-c", &cfg], "d-pass\r\n");
    assert!(o.status.success(), "{}", stderr(&o));
    let users = Htpasswd::load(&file).unwrap();
    assert!(
        users.verify("carol", "first pw"),
        "the trailing newline is not part of it"
    );
    assert!(users.verify("dave", "d-pass"));
    assert!(std::fs::read_to_string(&file).unwrap().contains("carol:$2"));

    let o = imgflow(&["user", "add", "carol", "--config", &cfg], "second\n");
    assert!(o.status.success(), "{}", stderr(&o));
    let users = Htpasswd::load(&file).unwrap();
    assert!(users.verify("carol", "second") && !users.verify("carol", "first pw"));
    assert_eq!(users.len(), 2);

    let o = imgflow(&["user", "del", "carol", "--config", &cfg], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = imgflow(&["user", "del", "carol", "--config", &cfg], "");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no user \"carol\""), "{}", stderr(&o));
    let users = Htpasswd::load(&file).unwrap();
    assert!(!users.contains("carol") && users.contains("dave"));
}

#[test]
fn refuses_without_htpasswd_bad_names_and_empty_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let plain = dir.path().join("plain.toml");
    std::fs::write(&plain, "[server]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let o = imgflow(
        &["user", "add", "carol", "-c", plain.to_str().unwrap()],
        "pw\n",
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("names no htpasswd"), "{}", stderr(&o));
    let o = imgflow(&["user", "add", "bad:name", "-c", &cfg], "pw\n");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("invalid user name"), "{}", stderr(&o));
    let o = imgflow(&["user", "add", "carol", "-c", &cfg], "\n");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no password"), "{}", stderr(&o));
    assert!(!dir.path().join("users/htpasswd").exists());
    let o = imgflow(&["user", "--help"], "");
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("add") && help.contains("del"), "{help}");
}

/// Run `imgflow ARGS` on a pseudo-terminal (util-linux `script`), typing `lines` one at a
/// time after each prompt has had time to appear.
fn imgflow_on_tty(args: &[&str], lines: &[&str]) -> Output {
    let command = std::iter::once(env!("CARGO_BIN_EXE_imgflow"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script");
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        std::thread::sleep(std::time::Duration::from_millis(500));
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn on_a_terminal_the_password_is_asked_twice_without_echo() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let file = dir.path().join("users/htpasswd");
    let o = imgflow_on_tty(
        &["user", "add", "erin", "--config", &cfg],
        &["tty pw", "tty pw"],
    );
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{shown}");
    assert!(
        shown.contains("Password for erin") && shown.contains("Again"),
        "{shown}"
    );
    assert!(
        !shown.contains("tty pw"),
        "the password was echoed: {shown}"
    );
    assert!(Htpasswd::load(&file).unwrap().verify("erin", "tty pw"));
    // Two different entries: refused, nothing written.
    let o = imgflow_on_tty(&["user", "add", "fay", "--config", &cfg], &["one", "two"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("differ"));
    assert!(!Htpasswd::load(&file).unwrap().contains("fay"));
}
