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
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
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
