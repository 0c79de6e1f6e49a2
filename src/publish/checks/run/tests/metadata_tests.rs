//! metadataTest, size budgets and the report's JSON.

use super::super::{
    run_checks, size_budgets, CheckKind, CheckOptions, CheckReport, CheckResult, Sizes, Status,
};
use super::check_file;
use super::fake::{FakeEngine, Tar};
use crate::publish::docker::ImageConfig;

fn config() -> ImageConfig {
    ImageConfig {
        env: vec![
            "PATH=/usr/local/bin:/usr/bin:/bin".into(),
            "SPARK_VERSION=3.5.1".into(),
        ],
        cmd: Some(vec!["start-notebook.sh".into()]),
        entrypoint: None,
        working_dir: "/home/nb".into(),
        user: "1000".into(),
        exposed_ports: ["8888/tcp".to_string(), "53/udp".to_string()].into(),
        volumes: ["/data".to_string()].into(),
        labels: [(
            "org.opencontainers.image.version".to_string(),
            "3.5.1-rc1".to_string(),
        )]
        .into(),
    }
}

fn run(yaml: &str) -> Vec<CheckResult> {
    let engine = FakeEngine::new(config(), Tar::new().dir("./", 0o755).finish());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run_checks(
        &engine,
        "img",
        &[check_file(yaml)],
        &CheckOptions::default(),
    ))
    .unwrap()
    .results
}

#[test]
fn metadata_that_holds_passes_field_by_field() {
    let results = run(r#"
schemaVersion: "2.0.0"
metadataTest:
  envVars:
    - key: SPARK_VERSION
      value: 3.5.1
    - key: PATH
      value: "/usr/local/bin"
      isRegex: true
  unboundEnvVars:
    - key: DEBUG
  labels:
    - key: org.opencontainers.image.version
      value: "^3\\.5\\.\\d+"
      isRegex: true
  entrypoint: []
  cmd: ["start-notebook.sh"]
  exposedPorts: ["8888", "53/udp"]
  unexposedPorts: ["22"]
  volumes: ["/data"]
  unmountedVolumes: ["/tmp"]
  workdir: /home/nb
  user: "1000"
"#);
    assert_eq!(results.len(), 11, "{results:#?}");
    for r in &results {
        assert_eq!(
            (r.kind, r.status),
            (CheckKind::Metadata, Status::Passed),
            "{r:#?}"
        );
    }
}

#[test]
fn metadata_that_does_not_hold_fails_with_expected_and_actual() {
    let results = run(r#"
schemaVersion: "2.0.0"
metadataTest:
  env:
    - key: SPARK_VERSION
      value: "3.5"
    - key: JAVA_HOME
      value: /opt/java
    - key: PATH
      value: "^/opt"
      isRegex: true
  unboundEnvVars:
    - key: SPARK_VERSION
  labels:
    - key: org.opencontainers.image.version
      value: "3.5.1"
  entrypoint: ["/bin/sh"]
  cmd: []
  exposedPorts: ["9999"]
  unexposedPorts: ["8888/tcp"]
  volumes: ["/scratch"]
  unmountedVolumes: ["/data"]
  workdir: /
  user: root
"#);
    assert!(
        results.iter().all(|r| r.status == Status::Failed),
        "{results:#?}"
    );
    let msg = |field: &str| {
        results
            .iter()
            .find(|r| r.name == format!("metadataTest {field}"))
            .unwrap()
            .message
            .clone()
    };
    assert_eq!(
        msg("envVars"),
        "expected env var SPARK_VERSION to be \"3.5\", got \"3.5.1\"; env var JAVA_HOME is not set; \
         expected env var PATH to match \"^/opt\", got \"/usr/local/bin:/usr/bin:/bin\""
    );
    assert_eq!(
        msg("unboundEnvVars"),
        "env var SPARK_VERSION should not be set, is \"3.5.1\""
    );
    assert!(msg("labels").contains("to be \"3.5.1\", got \"3.5.1-rc1\""));
    assert_eq!(
        msg("entrypoint"),
        "expected entrypoint [\"/bin/sh\"], got []"
    );
    assert_eq!(msg("cmd"), "expected cmd [], got [\"start-notebook.sh\"]");
    assert!(msg("exposedPorts").starts_with("port 9999 is not declared"));
    assert!(msg("unexposedPorts").starts_with("port 8888/tcp should not be declared"));
    assert!(msg("volumes").starts_with("volume /scratch is not declared"));
    assert!(msg("unmountedVolumes").starts_with("volume /data should not be declared"));
    assert_eq!(msg("workdir"), "expected workdir \"/\", got \"/home/nb\"");
    assert_eq!(msg("user"), "expected user \"root\", got \"1000\"");
}

#[test]
fn size_budgets_pass_fail_and_skip() {
    let sizes = Sizes {
        compressed: 950_000_000,
        parent_compressed: Some(900_000_000),
    };
    let r = size_budgets(Some(900), Some(100), sizes);
    assert_eq!(
        (r[0].name.as_str(), r[0].status),
        ("max_size_mb", Status::Failed)
    );
    assert_eq!(
        r[0].message,
        "compressed size 950.00 MB is over the budget of 900 MB"
    );
    assert_eq!(
        (r[1].name.as_str(), r[1].status),
        ("max_growth_mb", Status::Passed)
    );
    let r = size_budgets(Some(1000), Some(10), sizes);
    assert_eq!(r[0].status, Status::Passed);
    assert_eq!(r[1].status, Status::Failed);
    assert!(
        r[1].message.contains("grew 50.00 MB over its parent"),
        "{}",
        r[1].message
    );
    let r = size_budgets(
        None,
        Some(10),
        Sizes {
            compressed: 1,
            parent_compressed: None,
        },
    );
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, Status::Skipped);
    assert!(size_budgets(None, None, sizes).is_empty());
    // Exactly at the budget passes.
    let at = size_budgets(
        Some(900),
        None,
        Sizes {
            compressed: 900_000_000,
            parent_compressed: None,
        },
    );
    assert_eq!(at[0].status, Status::Passed);
}

#[test]
fn the_report_serialises_with_totals_and_the_gpu_word() {
    let mut report = CheckReport::new("sha256:abc");
    report.extend(size_budgets(
        Some(1),
        Some(1),
        Sizes {
            compressed: 2_000_000,
            parent_compressed: None,
        },
    ));
    report.extend([CheckResult::passed(CheckKind::Command, "ok")]);
    assert_eq!(
        (
            report.totals.passed,
            report.totals.failed,
            report.totals.skipped
        ),
        (1, 1, 1)
    );
    assert!(!report.ok());
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(
        json["totals"],
        serde_json::json!({"passed": 1, "failed": 1, "skipped": 1})
    );
    assert_eq!(json["gpu"], "n/a");
    assert_eq!(json["image"], "sha256:abc");
    let first = &json["results"][0];
    assert_eq!(first["kind"], "size_budget");
    assert_eq!(first["status"], "failed");
    assert!(first["duration_ms"].is_u64());
    assert!(
        json["results"][2].get("message").is_none(),
        "no empty message"
    );
}
