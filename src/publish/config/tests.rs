//! imgflow.toml: values, defaults, and errors naming the file and line.

use super::*;
use crate::publish::testutil::Tree;

const FULL: &str = r#"registry = "registry.example:5000"

[[image]]
name = "team/base"
context = "images/base"

[[image]]
name = "team/spark"
context = "images/spark"
dockerfile = "dockerfiles/spark.Dockerfile"
tags = ["3.5.1", "{git}", "n-{date}"]
build_args = { SPARK_VERSION = "3.5.1" }
depends_on = ["team/base"]
checks = ["checks/spark.yaml"]
max_size_mb = 900
max_growth_mb = 100
gpu = true
network = "host"
"#;

fn tree(toml: &str) -> Tree {
    let t = Tree::new(&[
        ("images/base/Dockerfile", "FROM busybox\n"),
        ("images/spark/Dockerfile", "FROM team/base\n"),
        ("dockerfiles/spark.Dockerfile", "FROM team/base\n"),
        ("checks/spark.yaml", "schemaVersion: \"2.0.0\"\n"),
    ]);
    t.write("imgflow.toml", toml);
    t
}

/// The error of `toml` in a complete tree: (line, message).
fn error(toml: &str) -> (Option<usize>, String) {
    let t = tree(toml);
    let e = PublishConfig::load(&t.toml()).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with(&t.toml().display().to_string()),
        "the error names the file: {text}"
    );
    (e.line(), text)
}

#[test]
fn every_key_is_read_and_paths_resolve_from_the_file() {
    let t = tree(FULL);
    let cfg = PublishConfig::load(&t.toml()).unwrap();
    assert_eq!(cfg.registry.as_deref(), Some("registry.example:5000"));
    assert_eq!(cfg.dir, t.path());
    let base = &cfg.images[0];
    assert_eq!(base.name.as_str(), "team/base");
    assert_eq!(base.line, 4);
    assert_eq!(base.dockerfile, t.path().join("images/base/Dockerfile"));
    assert!(base.tags.is_empty() && base.build_args.is_empty());
    assert_eq!(
        (base.gpu, base.network, base.max_size_mb),
        (false, Network::Default, None)
    );
    let spark = cfg.image("team/spark").unwrap();
    assert_eq!(spark.context, t.path().join("images/spark"));
    assert_eq!(
        spark.dockerfile,
        t.path().join("dockerfiles/spark.Dockerfile")
    );
    let tags: Vec<&str> = spark.tags.iter().map(TagTemplate::as_str).collect();
    assert_eq!(tags, ["3.5.1", "{git}", "n-{date}"]);
    assert_eq!(spark.build_args["SPARK_VERSION"], "3.5.1");
    assert_eq!(
        spark.depends_on,
        [DependsOn {
            name: "team/base".into(),
            line: 13
        }]
    );
    assert_eq!(spark.checks, [t.path().join("checks/spark.yaml")]);
    assert_eq!(
        (spark.max_size_mb, spark.max_growth_mb),
        (Some(900), Some(100))
    );
    assert!(spark.gpu);
    assert_eq!(spark.network, Network::Host);
    let args = spark.build_args_with(Some("r.example:1"));
    assert_eq!(args["REGISTRY"], "r.example:1");
    assert_eq!(args["SPARK_VERSION"], "3.5.1");
}

#[test]
fn unknown_keys_name_their_line() {
    let (line, msg) = error(&FULL.replace("max_growth_mb", "max_grwth_mb"));
    assert_eq!(line, Some(16), "{msg}");
    assert!(msg.contains("unknown field `max_grwth_mb`"), "{msg}");
    let (line, msg) = error(&format!("colour = \"red\"\n{FULL}"));
    assert_eq!(line, Some(1), "{msg}");
    assert!(msg.contains("colour"), "{msg}");
}

#[test]
fn bad_values_name_their_line() {
    let (line, msg) = error(&FULL.replace("\"host\"", "\"bridge\""));
    assert_eq!(line, Some(18), "{msg}");
    assert!(msg.contains("bridge") && msg.contains("none"), "{msg}");
    let (line, msg) = error(&FULL.replace("900", "\"big\""));
    assert_eq!(line, Some(15), "{msg}");
    let (line, msg) = error(&FULL.replace("gpu = true", "gpu = \"yes\""));
    assert_eq!(line, Some(17), "{msg}");
    let (line, msg) = error(&FULL.replace("\"team/spark\"", "\"Team/Spark\""));
    assert_eq!(line, Some(8), "{msg}");
    assert!(msg.contains("invalid repository name"), "{msg}");
    let (line, msg) = error(&FULL.replace("registry.example:5000", "https://r.example"));
    assert_eq!(line, Some(1), "{msg}");
    assert!(msg.contains("no scheme"), "{msg}");
    let (line, msg) = error(&FULL.replace("{date}", "{branch}"));
    assert_eq!(line, Some(11), "{msg}");
    assert!(msg.contains("unknown placeholder \"branch\""), "{msg}");
    let (line, msg) = error(&FULL.replace("\"3.5.1\", \"{git}\"", "\"-x\""));
    assert_eq!(line, Some(11), "{msg}");
    let (line, msg) = error(&FULL.replace("SPARK_VERSION = \"3.5.1\"", "REGISTRY = \"x\""));
    assert_eq!(line, Some(12), "{msg}");
    assert!(msg.contains("must not set REGISTRY"), "{msg}");
}

#[test]
fn toml_syntax_errors_name_their_line() {
    let (line, msg) = error(&FULL.replace("gpu = true", "gpu = "));
    assert_eq!(line, Some(17), "{msg}");
}

#[test]
fn missing_paths_are_errors_before_anything_is_built() {
    let (line, msg) = error(&FULL.replace("images/spark\"", "images/sprak\""));
    assert_eq!(line, Some(9), "{msg}");
    assert!(
        msg.contains("images/sprak") && msg.contains("not a directory"),
        "{msg}"
    );
    let (line, msg) = error(&FULL.replace("spark.Dockerfile", "nope.Dockerfile"));
    assert_eq!(line, Some(10), "{msg}");
    assert!(msg.contains("nope.Dockerfile does not exist"), "{msg}");
    let (line, msg) = error(&FULL.replace("checks/spark.yaml", "checks/sparks.yaml"));
    assert_eq!(line, Some(14), "{msg}");
    assert!(
        msg.contains("check file") && msg.contains("sparks.yaml"),
        "{msg}"
    );
    // Without `dockerfile`, the context must hold one: the error points at `context`.
    let t = tree(FULL);
    std::fs::remove_file(t.path().join("images/base/Dockerfile")).unwrap();
    let e = PublishConfig::load(&t.toml()).unwrap_err();
    assert_eq!(e.line(), Some(5), "{e}");
    // An unreadable file.
    let e = PublishConfig::load(&t.path().join("missing.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e}");
}

#[test]
fn a_file_without_images_is_an_error() {
    let (line, msg) = error("registry = \"r.example\"\n");
    assert_eq!(line, None);
    assert!(msg.contains("no [[image]]"), "{msg}");
}
