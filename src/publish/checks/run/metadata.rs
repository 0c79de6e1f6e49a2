//! `metadataTest`, judged on the image config from `docker image inspect`: one result per
//! field the test sets, named `metadataTest <field>`.
//!
//! - `envVars` / `labels`: the key must be set; its value must equal `value`, or match it
//!   when `isRegex` is true (a regex matches anywhere unless anchored);
//! - `unboundEnvVars`: the keys must not be set;
//! - `entrypoint` / `cmd`: the exact list (`[]` means none is set);
//! - `exposedPorts` / `unexposedPorts`: `8888` means `8888/tcp`, as in a Dockerfile;
//! - `volumes` / `unmountedVolumes`: exact mount points;
//! - `workdir` / `user`: exact strings.

use std::collections::BTreeMap;

use super::super::{KeyValue, MetadataTest};
use super::report::{CheckKind, CheckResult};
use crate::publish::docker::ImageConfig;

/// Judges `test` against `config`.
pub fn metadata(test: &MetadataTest, config: &ImageConfig) -> Vec<CheckResult> {
    let mut results = Vec::new();
    let mut push = |field: &str, problems: Vec<String>| {
        results.push(CheckResult::from_problems(
            CheckKind::Metadata,
            format!("metadataTest {field}"),
            &problems,
        ));
    };
    let env = config.env_map();
    if !test.env_vars.is_empty() {
        push("envVars", key_values("env var", &test.env_vars, &env));
    }
    if !test.unbound_env_vars.is_empty() {
        let problems = test
            .unbound_env_vars
            .iter()
            .filter_map(|kv| {
                env.get(&kv.key)
                    .map(|v| format!("env var {} should not be set, is {v:?}", kv.key))
            })
            .collect();
        push("unboundEnvVars", problems);
    }
    if !test.labels.is_empty() {
        push("labels", key_values("label", &test.labels, &config.labels));
    }
    if let Some(expected) = &test.entrypoint {
        push(
            "entrypoint",
            exact_list("entrypoint", expected, &config.entrypoint),
        );
    }
    if let Some(expected) = &test.cmd {
        push("cmd", exact_list("cmd", expected, &config.cmd));
    }
    let ports: Vec<String> = config.exposed_ports.iter().map(|p| port(p)).collect();
    if !test.exposed_ports.is_empty() {
        push(
            "exposedPorts",
            membership("port", &test.exposed_ports, &ports, true, port),
        );
    }
    if !test.unexposed_ports.is_empty() {
        push(
            "unexposedPorts",
            membership("port", &test.unexposed_ports, &ports, false, port),
        );
    }
    let volumes: Vec<String> = config.volumes.iter().cloned().collect();
    if !test.volumes.is_empty() {
        push(
            "volumes",
            membership("volume", &test.volumes, &volumes, true, str::to_string),
        );
    }
    if !test.unmounted_volumes.is_empty() {
        let problems = membership(
            "volume",
            &test.unmounted_volumes,
            &volumes,
            false,
            str::to_string,
        );
        push("unmountedVolumes", problems);
    }
    if let Some(expected) = &test.workdir {
        push("workdir", exact("workdir", expected, &config.working_dir));
    }
    if let Some(expected) = &test.user {
        push("user", exact("user", expected, &config.user));
    }
    results
}

/// `8888` and `8888/TCP` as `8888/tcp`.
fn port(p: &str) -> String {
    match p.split_once('/') {
        Some((n, proto)) => format!("{n}/{}", proto.to_ascii_lowercase()),
        None => format!("{p}/tcp"),
    }
}

fn key_values(what: &str, expected: &[KeyValue], actual: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    for kv in expected {
        let Some(value) = actual.get(&kv.key) else {
            problems.push(format!("{what} {} is not set", kv.key));
            continue;
        };
        let ok = match &kv.regex {
            Some(re) => re.is_match(value),
            None => value == &kv.value,
        };
        if !ok {
            let how = if kv.regex.is_some() {
                "to match"
            } else {
                "to be"
            };
            problems.push(format!(
                "expected {what} {} {how} {:?}, got {value:?}",
                kv.key, kv.value
            ));
        }
    }
    problems
}

fn exact_list(what: &str, expected: &[String], actual: &Option<Vec<String>>) -> Vec<String> {
    let actual = actual.as_deref().unwrap_or(&[]);
    if expected == actual {
        Vec::new()
    } else {
        vec![format!("expected {what} {expected:?}, got {actual:?}")]
    }
}

fn exact(what: &str, expected: &str, actual: &str) -> Vec<String> {
    if expected == actual {
        Vec::new()
    } else {
        vec![format!("expected {what} {expected:?}, got {actual:?}")]
    }
}

fn membership(
    what: &str,
    wanted: &[String],
    actual: &[String],
    present: bool,
    norm: fn(&str) -> String,
) -> Vec<String> {
    wanted
        .iter()
        .filter(|w| actual.contains(&norm(w)) != present)
        .map(|w| {
            let verb = if present {
                "is not declared"
            } else {
                "should not be declared"
            };
            format!("{what} {w} {verb} (image has {actual:?})")
        })
        .collect()
}
