//! The references Dockerfiles name, in the forms teams write them.

use super::*;

fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// (line, resolved) of every reference.
fn refs(text: &str, build_args: &[(&str, &str)]) -> Vec<(usize, Option<String>)> {
    image_refs(text, &args(build_args))
        .into_iter()
        .map(|r| (r.line, r.resolved))
        .collect()
}

fn some(line: usize, s: &str) -> (usize, Option<String>) {
    (line, Some(s.to_string()))
}

const REG: (&str, &str) = ("REGISTRY", "registry.example:5000");

#[test]
fn from_lines_in_every_form() {
    let text = "\
# syntax=docker/dockerfile:1
ARG REGISTRY
ARG BASE_TAG=1.0
ARG QUOTED=\"3.5\"
FROM ${REGISTRY}/team/base:${BASE_TAG} AS build
from $REGISTRY/team/spark:$QUOTED as Notebook
FROM --platform=linux/amd64 registry.example:5000/team/base@sha256:0123
FROM build
FROM notebook
FROM team/base
";
    assert_eq!(
        refs(text, &[REG]),
        [
            some(5, "registry.example:5000/team/base:1.0"),
            some(6, "registry.example:5000/team/spark:3.5"),
            some(7, "registry.example:5000/team/base@sha256:0123"),
            some(10, "team/base"),
        ],
        "stages (any case) are no images"
    );
    // Build arguments override ARG defaults.
    assert_eq!(
        refs(text, &[REG, ("BASE_TAG", "2.0")])[0],
        some(5, "registry.example:5000/team/base:2.0")
    );
}

#[test]
fn continuations_comments_and_the_escape_directive() {
    let text = "\
ARG REGISTRY

FROM \\
  # a comment inside the instruction
  ${REGISTRY}/team/base:1.0 \\
  AS base
RUN echo \\
  FROM not/an-image
";
    assert_eq!(
        refs(text, &[REG]),
        [some(3, "registry.example:5000/team/base:1.0")]
    );
    let text = "# escape=`\nARG REGISTRY\nFROM `\n  ${REGISTRY}/team/base\n";
    assert_eq!(
        refs(text, &[REG]),
        [some(3, "registry.example:5000/team/base")]
    );
}

#[test]
fn copy_from_names_images_but_not_stages() {
    let text = "\
ARG REGISTRY
FROM busybox AS tools
FROM busybox
COPY --from=tools /a /a
COPY --from=0 /b /b
COPY --chown=1:1 --from=${REGISTRY}/team/spark:3.5.1 /opt/spark /opt/spark
COPY /from=x /y
";
    let found = image_refs(text, &args(&[REG]));
    let got: Vec<_> = found
        .iter()
        .map(|r| (r.instruction, r.line, r.resolved.clone().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("FROM", 2, "busybox".to_string()),
            ("FROM", 3, "busybox".to_string()),
            (
                "COPY --from",
                6,
                "registry.example:5000/team/spark:3.5.1".to_string()
            ),
        ]
    );
}

#[test]
fn variables_follow_the_builder() {
    let vars = args(&[("A", "x"), ("E", "")]);
    let sub = |s: &str| substitute(s, &vars, &mut Vec::new());
    assert_eq!(sub("$A/${A}/${A:-d}/${E:-d}/${U:-d}").unwrap(), "x/x/x/d/d");
    assert_eq!(sub("${A:+set}/${E:+set}/${U}").unwrap(), "set//");
    assert_eq!(sub("a$/b").unwrap(), "a$/b");
    assert_eq!(sub("${A:-${E:-deep}}").unwrap(), "x");
    assert_eq!(sub("${A#x}"), None);
    assert_eq!(sub("${A"), None);
}

#[test]
fn undeclared_and_unresolvable_references_are_reported() {
    // REGISTRY is a build argument, but without an ARG before FROM the builder
    // substitutes "".
    let found = image_refs("FROM ${REGISTRY}/team/base\n", &args(&[REG]));
    assert_eq!(found[0].resolved.as_deref(), Some("/team/base"));
    assert_eq!(found[0].undeclared, ["REGISTRY"]);
    // An ARG after the first FROM does not count for FROM lines.
    let found = image_refs("FROM a\nARG T=1\nFROM b:$T\n", &BTreeMap::new());
    assert_eq!(found[1].resolved.as_deref(), Some("b:"));
    let found = image_refs("ARG R\nFROM ${R%%/*}/x\n", &BTreeMap::new());
    assert_eq!(found[0].resolved, None);
    assert_eq!(found[0].written, "${R%%/*}/x");
}

#[test]
fn references_split_into_host_and_repository() {
    let cases = [
        ("team/base", None, "team/base"),
        ("team/base:1.0", None, "team/base"),
        ("busybox", None, "busybox"),
        (
            "registry.example:5000/team/base:1.0",
            Some("registry.example:5000"),
            "team/base",
        ),
        (
            "registry.example/team/base@sha256:00",
            Some("registry.example"),
            "team/base",
        ),
        (
            "localhost/team/base:1@sha256:00",
            Some("localhost"),
            "team/base",
        ),
        ("127.0.0.1:5000/base", Some("127.0.0.1:5000"), "base"),
        ("/team/base:1.0", None, "team/base"),
        ("team/base:1.0-rc", None, "team/base"),
    ];
    for (reference, host, repository) in cases {
        assert_eq!(
            split_reference(reference),
            RefParts { host, repository },
            "{reference}"
        );
    }
}
