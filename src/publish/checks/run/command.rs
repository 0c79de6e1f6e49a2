//! `commandTests`: how one test becomes a check container ([`command_spec`]) and how what
//! the container did is judged ([`judge`]).
//!
//! As container-structure-test does, the image's entrypoint is cleared and the command is
//! run as its own argv. `setup` and `teardown` run in the **same** container as the
//! command (so a file a setup command writes is there for the test): when a test has
//! either, the container runs `/bin/sh -c SCRIPT`, where every argv is single-quoted word
//! by word (a `'` becomes `'\''`), so nothing in a YAML value is ever re-parsed by the
//! shell. The script:
//! - runs each setup command with its output discarded (it is not the test's output);
//!   a failing one prints [`SETUP_FAILED`] with its index and exit status to stderr and
//!   exits, so the test fails saying which setup command failed;
//! - runs the command (with `exec` when there is no teardown, keeping its exit code and
//!   signals exact);
//! - otherwise keeps the command's exit status, runs the teardown commands (output
//!   discarded, failures ignored, as they only clean up) and exits with that status.
//!
//! A test with setup or teardown therefore needs `/bin/sh` in the image; one without
//! does not (a distroless image is fine).
//!
//! Environment: `globalEnvVars`, then the test's `envVars`, each value expanded for
//! `$NAME` and `${NAME}` against the image's environment and the variables set before it
//! (so `PATH: /opt/bin:$PATH` works); unknown names expand to nothing.

use std::collections::BTreeMap;

use super::super::{CommandTest, KeyValue, Pattern};
use super::report::{CheckKind, CheckResult};
use super::CheckOptions;
use crate::publish::docker::{RunOutput, RunSpec};

/// Printed to stderr by the wrapper script when a setup command fails.
pub const SETUP_FAILED: &str = "imgflow: setup command failed:";

/// Quotes `word` for a POSIX shell.
pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

fn quoted_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `sh -c` script for a test with setup or teardown commands.
pub fn wrapper_script(test: &CommandTest) -> String {
    let mut script = String::new();
    for (i, setup) in test.setup.iter().enumerate() {
        let n = i + 1;
        script.push_str(&format!(
            "{} >/dev/null 2>&1 || {{ rc=$?; echo \"{SETUP_FAILED} {n} $rc\" >&2; exit 125; }}\n",
            quoted_argv(setup),
        ));
    }
    let mut command = vec![test.command.clone()];
    command.extend(test.args.iter().cloned());
    if test.teardown.is_empty() {
        script.push_str(&format!("exec {}\n", quoted_argv(&command)));
    } else {
        script.push_str(&format!("{}\nrc=$?\n", quoted_argv(&command)));
        for teardown in &test.teardown {
            script.push_str(&format!("{} >/dev/null 2>&1\n", quoted_argv(teardown)));
        }
        script.push_str("exit $rc\n");
    }
    script
}

/// Expands `$NAME` and `${NAME}` in `value` from `vars`.
pub fn expand(value: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
        } else {
            out.push_str(vars.get(name).map(String::as_str).unwrap_or(""));
            rest = &after[consumed..];
        }
    }
    out.push_str(rest);
    out
}

/// The environment a test runs with: `global` then `own`, each expanded against the
/// image's environment and what came before.
pub fn test_env(
    image_env: &BTreeMap<String, String>,
    global: &[KeyValue],
    own: &[KeyValue],
) -> Vec<(String, String)> {
    let mut vars = image_env.clone();
    let mut env: Vec<(String, String)> = Vec::new();
    for kv in global.iter().chain(own) {
        let value = expand(&kv.value, &vars);
        vars.insert(kv.key.clone(), value.clone());
        env.retain(|(k, _)| k != &kv.key);
        env.push((kv.key.clone(), value));
    }
    env
}

/// The check container for `test` in `image`.
pub fn command_spec(
    image: &str,
    test: &CommandTest,
    env: Vec<(String, String)>,
    user: Option<String>,
    options: &CheckOptions,
) -> RunSpec {
    let cmd: Vec<String> = if test.setup.is_empty() && test.teardown.is_empty() {
        std::iter::once(test.command.clone())
            .chain(test.args.iter().cloned())
            .collect()
    } else {
        vec!["/bin/sh".into(), "-c".into(), wrapper_script(test)]
    };
    let mut spec = RunSpec::new(image, cmd);
    spec.entrypoint = Some(Vec::new());
    spec.env = env;
    spec.user = user;
    options.limit(&mut spec);
    spec
}

/// Problems of `text` (named `stream`) against the expected and excluded regexes.
fn regex_problems(
    stream: &str,
    text: &str,
    expected: &[Pattern],
    excluded: &[Pattern],
) -> Vec<String> {
    let mut problems = Vec::new();
    for p in expected {
        if !p.is_match(text) {
            problems.push(format!(
                "expected {stream} to match {:?}, got {:?}",
                p.as_str(),
                excerpt(text)
            ));
        }
    }
    for p in excluded {
        if p.is_match(text) {
            problems.push(format!(
                "expected {stream} not to match {:?}, got {:?}",
                p.as_str(),
                excerpt(text)
            ));
        }
    }
    problems
}

/// At most 400 characters of `text`, for messages.
pub fn excerpt(text: &str) -> String {
    const MAX: usize = 400;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}...")
    }
}

/// Judges what the container of `test` did.
pub fn judge(test: &CommandTest, out: &RunOutput) -> CheckResult {
    let result = |problems: &[String]| {
        CheckResult::from_problems(CheckKind::Command, &test.name, problems)
            .with_duration(out.duration)
    };
    if out.timed_out {
        return result(&["timed out (the container was killed)".to_string()]);
    }
    let stderr = out.stderr.text();
    if let Some(line) = stderr.lines().find_map(|l| l.strip_prefix(SETUP_FAILED)) {
        let mut words = line.split_whitespace();
        let n: usize = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
        let rc = words.next().unwrap_or("?");
        let argv = test.setup.get(n.wrapping_sub(1)).map(|a| a.join(" "));
        return result(&[format!(
            "setup command {n} ({}) exited {rc}",
            argv.unwrap_or_default()
        )]);
    }
    let mut problems = Vec::new();
    if !out.start_error.is_empty() {
        problems.push(format!("the command could not start: {}", out.start_error));
    }
    if out.oom_killed {
        problems.push("killed for exceeding its memory limit".to_string());
    }
    let code = out.exit_code.unwrap_or(-1);
    if code != i64::from(test.exit_code) {
        problems.push(format!("expected exit code {}, got {code}", test.exit_code));
    }
    let stdout = out.stdout.text();
    problems.extend(regex_problems(
        "stdout",
        &stdout,
        &test.expected_output,
        &test.excluded_output,
    ));
    problems.extend(regex_problems(
        "stderr",
        &stderr,
        &test.expected_error,
        &test.excluded_error,
    ));
    if !problems.is_empty() && (out.stdout.truncated || out.stderr.truncated) {
        problems.push("output was truncated at the capture limit".to_string());
    }
    result(&problems)
}
