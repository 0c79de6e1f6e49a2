//! The `conformance` command line: help, usage errors, connection errors, the exit
//! status of a failing run and the report formats.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::thread;

fn conformance(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args(args)
        .env_remove("CONFORMANCE_BASIC_AUTH")
        .output()
        .expect("running the conformance binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_exits_zero_and_documents_the_options() {
    let out = conformance(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for option in [
        "--url",
        "--cacert",
        "--namespace",
        "--only",
        "--json",
        "--cross-mount-from",
        "--strict",
        "--keep",
    ] {
        assert!(
            help.contains(option),
            "--help does not mention {option}:\n{help}"
        );
    }
}

#[test]
fn usage_errors_exit_two() {
    for args in [
        &[][..],
        &["--url", "https://127.0.0.1:1", "--only", "pull,bogus"][..],
        &["--url", "https://127.0.0.1:1", "--namespace", "Upper"][..],
        &[
            "--url",
            "https://127.0.0.1:1",
            "--cacert",
            "/nonexistent/ca.pem",
        ][..],
        &["--url", "not a url"][..],
    ] {
        let out = conformance(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?} printed a report");
    }
}

#[test]
fn an_unreachable_registry_exits_two() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a free port")
        .port();
    let url = format!("https://127.0.0.1:{port}");
    let out = conformance(&["--url", &url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot reach the registry"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn known_differences_are_listed_with_reasons() {
    let out = conformance(&["--list-known-differences"]);
    assert_eq!(out.status.code(), Some(0));
    let listing = text(&out.stdout);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(
        lines.len(),
        conformance::known::KNOWN_DISTRIBUTION_DIFFERENCES.len()
    );
    for line in lines {
        let fields: Vec<&str> = line.split('\t').collect();
        let [id, result, reason] = fields[..] else {
            panic!("expected id<TAB>result<TAB>reason: {line}");
        };
        assert!(id.contains('/') && !reason.is_empty(), "{line}");
        assert!(result == "fail" || result == "skip", "{line}");
    }
}

/// Answer every request with `404` and no body, closing each connection.
fn serve_404(stream: TcpStream) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    let _ = reader.read_exact(&mut body);
    let mut stream = stream;
    let _ = stream
        .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

#[test]
fn a_registry_failing_every_case_exits_one_with_both_report_formats() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve_404(stream));
        }
    });

    let out = conformance(&["--url", &url, "--only", "pull"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let human = text(&out.stdout);
    let last = human.lines().last().unwrap_or_default();
    let cases = human.lines().count() - 1;
    let prefix = format!("0 passed, {cases} failed (");
    assert!(
        last.starts_with(&prefix) && last.ends_with(" MAY), 0 skipped"),
        "{human}"
    );
    assert!(
        human.contains(" (SHOULD): "),
        "SHOULD cases are marked: {human}"
    );
    assert!(
        human
            .lines()
            .all(|l| l.starts_with("FAIL pull/") || l == last),
        "{human}"
    );

    let out = conformance(&["--url", &url, "--only", "pull", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let cases = report.as_array().expect("an array of cases");
    assert!(!cases.is_empty());
    for case in cases {
        assert_eq!(case["category"], "pull");
        assert_eq!(case["result"], "fail");
        assert!(
            ["MUST", "SHOULD", "MAY"].contains(&case["level"].as_str().unwrap_or_default()),
            "{case}"
        );
        assert!(
            case["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{case}"
        );
    }
}
