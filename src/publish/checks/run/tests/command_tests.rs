//! commandTests: containers, scripts, environment, judging.

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::command::{expand, shell_quote, wrapper_script};
use super::super::{run_checks, CheckKind, CheckOptions, CheckResult, Status};
use super::check_file;
use super::fake::{captured, Behaviour, FakeEngine, Tar};
use crate::publish::docker::{ImageConfig, NetworkMode, RunOutput};

fn engine() -> FakeEngine {
    let config = ImageConfig {
        env: vec!["PATH=/usr/bin:/bin".into(), "HOME=/root".into()],
        entrypoint: Some(vec!["/docker-entrypoint.sh".into()]),
        ..ImageConfig::default()
    };
    FakeEngine::new(config, Tar::new().dir("./", 0o755).finish())
}

fn run(engine: &FakeEngine, yaml: &str, options: &CheckOptions) -> Vec<CheckResult> {
    let file = check_file(yaml);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run_checks(engine, "img", &[file], options))
        .unwrap()
        .results
}

fn by_name<'a>(results: &'a [CheckResult], name: &str) -> &'a CheckResult {
    results
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no result {name} in {results:#?}"))
}

#[test]
fn command_tests_pass_and_fail_on_exit_code_and_output_regexes() {
    let yaml = r#"
schemaVersion: "2.0.0"
commandTests:
  - name: ok
    command: sh
    args: ["-c", "echo 'version 1.2.3'; echo warn >&2"]
    expectedOutput: ["version \\d+\\.\\d+", "^version"]
    excludedOutput: ["error"]
    expectedError: ["warn"]
    excludedError: ["fatal"]
  - name: exit code given
    command: sh
    args: ["-c", "exit 3"]
    exitCode: 3
  - name: wrong exit
    command: sh
    args: ["-c", "echo out; exit 2"]
  - name: missing output
    command: echo
    args: ["hello"]
    expectedOutput: ["bye"]
  - name: excluded output present
    command: echo
    args: ["an error happened"]
    excludedOutput: ["error"]
  - name: stderr regexes
    command: sh
    args: ["-c", "echo fatal >&2"]
    expectedError: ["ok"]
    excludedError: ["fatal"]
"#;
    let engine = engine();
    let options = CheckOptions {
        memory_bytes: 256 << 20,
        cpus: 0.5,
        pids_limit: 64,
        timeout: Duration::from_secs(7),
        ..CheckOptions::default()
    };
    let results = run(&engine, yaml, &options);
    assert_eq!(
        by_name(&results, "ok").status,
        Status::Passed,
        "{results:#?}"
    );
    assert_eq!(by_name(&results, "exit code given").status, Status::Passed);
    let wrong = by_name(&results, "wrong exit");
    assert_eq!(wrong.status, Status::Failed);
    assert!(
        wrong.message.contains("expected exit code 0, got 2"),
        "{}",
        wrong.message
    );
    let missing = by_name(&results, "missing output");
    assert!(
        missing
            .message
            .contains(r#"expected stdout to match "bye", got "hello\n""#),
        "{}",
        missing.message
    );
    let excluded = by_name(&results, "excluded output present");
    assert!(
        excluded.message.contains("not to match \"error\""),
        "{}",
        excluded.message
    );
    let stderr = by_name(&results, "stderr regexes");
    assert!(
        stderr.message.contains("expected stderr to match \"ok\""),
        "{}",
        stderr.message
    );
    assert!(
        stderr
            .message
            .contains("expected stderr not to match \"fatal\""),
        "{}",
        stderr.message
    );
    assert!(results.iter().all(|r| r.kind == CheckKind::Command));
    assert!(results
        .iter()
        .all(|r| r.file.as_deref() == Some("checks/test.yaml")));
    // Every container: no network, the limits given, the entrypoint cleared.
    let runs = engine.runs();
    assert_eq!(runs.len(), 6);
    for spec in &runs {
        assert_eq!(spec.network, NetworkMode::None);
        assert_eq!(spec.memory_bytes, 256 << 20);
        assert_eq!(spec.cpus, 0.5);
        assert_eq!(spec.pids_limit, 64);
        assert_eq!(spec.timeout, Duration::from_secs(7));
        assert_eq!(spec.entrypoint, Some(vec![]));
        assert_eq!(spec.gpus, None);
    }
    assert_eq!(runs[3].cmd, ["echo", "hello"]);
    assert_eq!(
        *engine.exports.lock().unwrap(),
        0,
        "no file test, no export"
    );
}

#[test]
fn setup_command_and_teardown_share_one_container_with_exact_words() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let yaml = format!(
        r#"
schemaVersion: "2.0.0"
commandTests:
  - name: chained
    setup: [["sh", "-c", "printf '%s\\n' \"$0\" > {state}", "it's $HOME; `x`"], ["echo", "setup output is not the test's"]]
    command: cat
    args: ["{state}"]
    teardown: [["rm", "{state}"], ["false"]]
    expectedOutput: ["^it's \\$HOME; `x`\n$"]
    excludedOutput: ["setup output"]
    exitCode: 0
  - name: failing setup
    setup: [["true"], ["sh", "-c", "exit 4"]]
    command: echo
    args: ["never"]
  - name: teardown keeps the exit code
    command: sh
    args: ["-c", "exit 5"]
    teardown: [["true"]]
    exitCode: 5
"#
    );
    let engine = engine();
    let results = run(&engine, &yaml, &CheckOptions::default());
    assert_eq!(
        by_name(&results, "chained").status,
        Status::Passed,
        "{results:#?}"
    );
    assert!(!std::path::Path::new(state).exists(), "teardown ran");
    let failing = by_name(&results, "failing setup");
    assert_eq!(failing.status, Status::Failed);
    assert_eq!(failing.message, "setup command 2 (sh -c exit 4) exited 4");
    assert_eq!(
        by_name(&results, "teardown keeps the exit code").status,
        Status::Passed
    );
    let runs = engine.runs();
    assert_eq!(runs[0].cmd[..2], ["/bin/sh", "-c"]);
}

#[test]
fn scripts_quote_every_word() {
    assert_eq!(shell_quote("a b"), "'a b'");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    let test = check_file(
        r#"
schemaVersion: "2.0.0"
commandTests:
  - name: t
    setup: [["touch", "/tmp/$(reboot)"]]
    command: ls
    args: ["; rm -rf /"]
"#,
    )
    .tests
    .command_tests
    .remove(0);
    let script = wrapper_script(&test);
    assert!(
        script.starts_with("'touch' '/tmp/$(reboot)' >/dev/null 2>&1 || "),
        "{script}"
    );
    assert!(script.ends_with("exec 'ls' '; rm -rf /'\n"), "{script}");
}

#[test]
fn global_then_own_env_vars_with_expansion() {
    let yaml = r#"
schemaVersion: "2.0.0"
globalEnvVars:
  - key: A
    value: global
  - key: PATH
    value: /opt/bin:$PATH
commandTests:
  - name: env
    envVars:
      - key: A
        value: own-${A}
      - key: B
        value: "$HOME/x $NOPE."
    command: sh
    args: ["-c", "echo \"$A|$B|$PATH\""]
    expectedOutput: ["^own-global\\|/root/x \\.\\|/opt/bin:/usr/bin:/bin\n$"]
"#;
    let engine = engine();
    let results = run(&engine, yaml, &CheckOptions::default());
    assert_eq!(results[0].status, Status::Passed, "{results:#?}");
    let env = &engine.runs()[0].env;
    assert_eq!(env.iter().filter(|(k, _)| k == "A").count(), 1);
    let vars = BTreeMap::from([("X".to_string(), "1".to_string())]);
    assert_eq!(expand("$X${X}$ $Y-${X", &vars), "11$ -${X");
}

#[test]
fn timeouts_oom_start_errors_and_engine_failures_fail() {
    let yaml = r#"
schemaVersion: "2.0.0"
commandTests:
  - name: t
    command: sleep
    args: ["100"]
"#;
    let cases = [
        (
            RunOutput {
                timed_out: true,
                ..RunOutput::default()
            },
            "timed out",
        ),
        (
            RunOutput {
                exit_code: Some(137),
                oom_killed: true,
                ..RunOutput::default()
            },
            "memory limit",
        ),
        (
            RunOutput {
                exit_code: Some(127),
                start_error: "exec: \"sleep\": not found".into(),
                ..RunOutput::default()
            },
            "could not start",
        ),
        (
            RunOutput {
                exit_code: Some(0),
                stdout: captured(b"x".to_vec()),
                ..RunOutput::default()
            },
            "",
        ),
    ];
    for (out, expected) in cases {
        let mut engine = engine();
        engine.behaviour = Behaviour::Canned(out);
        let result = run(&engine, yaml, &CheckOptions::default()).remove(0);
        if expected.is_empty() {
            assert_eq!(result.status, Status::Passed);
        } else {
            assert_eq!(result.status, Status::Failed);
            assert!(result.message.contains(expected), "{}", result.message);
        }
    }
    let mut engine = engine();
    engine.behaviour = Behaviour::Broken;
    let result = run(&engine, yaml, &CheckOptions::default()).remove(0);
    assert_eq!(result.status, Status::Failed);
    assert!(
        result.message.contains("the engine failed"),
        "{}",
        result.message
    );
}

#[test]
fn run_options_user_is_used_and_privileges_are_refused() {
    let yaml = r#"
schemaVersion: "2.0.0"
containerRunOptions:
  user: "1000:100"
  privileged: true
  capabilities: ["NET_ADMIN"]
commandTests:
  - name: t
    command: "true"
"#;
    let engine = engine();
    let results = run(&engine, yaml, &CheckOptions::default());
    let refused = by_name(&results, "containerRunOptions");
    assert_eq!(refused.status, Status::Failed);
    assert!(
        refused
            .message
            .contains("privileged, capabilities [\"NET_ADMIN\"]"),
        "{}",
        refused.message
    );
    assert_eq!(by_name(&results, "t").status, Status::Passed);
    assert_eq!(engine.runs()[0].user.as_deref(), Some("1000:100"));
}
