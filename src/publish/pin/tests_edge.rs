//! Tests of YAML shapes around the image values, and of pinning a file in place.

use super::*;
use futures::executor::block_on;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

fn options() -> PinOptions {
    PinOptions::new("reg:5000".parse().unwrap())
}

/// Every repository's tag `1` and `latest` resolve to the digest of the repository name.
struct AnyTag;

impl Resolve for AnyTag {
    fn digest(
        &self,
        repo: &RepoName,
        tag: &Tag,
    ) -> impl Future<Output = Result<Option<Digest>, ResolveError>> + Send {
        let known = matches!(tag.as_str(), "1" | "latest");
        std::future::ready(Ok(known.then(|| Digest::sha256(repo.as_str().as_bytes()))))
    }
}

/// `template` with each `@<repo>` replaced by `@` and the digest [`AnyTag`] gives `repo`.
fn pinned_as(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(at) = rest.find("@<") {
        let close = at + rest[at..].find('>').expect("closing >");
        let repo = &rest[at + 2..close];
        out.push_str(&rest[..at]);
        out.push('@');
        out.push_str(Digest::sha256(repo.as_bytes()).as_str());
        rest = &rest[close + 1..];
    }
    out + rest
}

fn pin_str(input: &str) -> Pinned {
    block_on(pin(
        Path::new("s.yml"),
        input.as_bytes(),
        &options(),
        &AnyTag,
    ))
    .unwrap()
}

fn out(input: &str) -> String {
    String::from_utf8(pin_str(input).bytes).unwrap()
}

#[test]
fn an_aliased_scalar_is_pinned_once_where_it_is_anchored() {
    let input = "services:\n  a:\n    image: &img reg:5000/x:1 # c\n  b:\n    image: *img\n";
    let expected =
        pinned_as("services:\n  a:\n    image: &img reg:5000/x:1@<x> # c\n  b:\n    image: *img\n");
    let pinned = pin_str(input);
    assert_eq!(String::from_utf8(pinned.bytes).unwrap(), expected);
    assert_eq!(pinned.refs.len(), 1);
    assert_eq!(pinned.refs[0].services, ["a", "b"]);
}

#[test]
fn tags_and_anchors_before_a_value_are_kept() {
    assert_eq!(
        out("services:\n  a:\n    image: !!str &i \"reg:5000/x:1\"\n"),
        pinned_as("services:\n  a:\n    image: !!str &i \"reg:5000/x:1@<x>\"\n")
    );
}

#[test]
fn flow_style_services_and_documents() {
    let input = "---\nservices: {a: {image: reg:5000/x:1}, b: {image: 'reg:5000/y'}}\n...\n";
    let expected = pinned_as(
        "---\nservices: {a: {image: reg:5000/x:1@<x>}, b: {image: 'reg:5000/y@<y>'}}\n...\n",
    );
    assert_eq!(out(input), expected);
    // The pinned flow text reads back (verify() would have failed otherwise) and is stable.
    assert_eq!(out(&expected), expected);
}

#[test]
fn service_image_with_a_merge_key_of_its_own_wins() {
    let input =
        "x: &c\n  image: reg:5000/base:1\nservices:\n  a:\n    <<: *c\n    image: reg:5000/own:1\n";
    let expected = pinned_as(
        "x: &c\n  image: reg:5000/base:1\nservices:\n  a:\n    <<: *c\n    image: reg:5000/own:1@<own>\n",
    );
    assert_eq!(out(input), expected);
    // Merge lists: the first mapping that has an image gives it.
    let input =
        "x: &c\n  cpus: 1\ny: &d\n  image: reg:5000/d:1\nservices:\n  a:\n    <<: [*c, *d]\n";
    assert!(out(input).contains(&pinned_as("image: reg:5000/d:1@<d>\n")));
}

#[test]
fn image_text_outside_service_images_is_not_touched() {
    let input = "\
version: '3.8'
x-note: 'image: reg:5000/x:1'
services:
  a:
    build: .
    labels:
      image: reg:5000/x:1
    environment:
      - image=reg:5000/x:1
    healthcheck:
      test: [\"CMD\", \"image: reg:5000/x:1\"]
    configs:
      - source: image
volumes:
  image: {}
configs:
  image:
    file: ./image.yml
";
    let pinned = pin_str(input);
    assert_eq!(String::from_utf8(pinned.bytes).unwrap(), input);
    assert!(pinned.refs.is_empty());
}

#[test]
fn values_that_cannot_be_rewritten_in_place_are_skipped_with_a_reason() {
    let cases = [
        ("image: |\n      reg:5000/x:1\n", Unreadable::BlockScalar),
        ("image: >-\n      reg:5000/x:1\n", Unreadable::BlockScalar),
        ("image: reg:5000/x:1\n      more\n", Unreadable::MultiLine),
        ("image: \"reg:5000/\\x78:1\"\n", Unreadable::Escapes),
        ("image: [reg:5000/x:1]\n", Unreadable::NotAString),
        ("image:\n", Unreadable::Empty),
    ];
    for (value, reason) in cases {
        let input = format!("services:\n  a:\n    {value}");
        let pinned = pin_str(&input);
        assert_eq!(pinned.bytes, input.as_bytes(), "{value:?}");
        assert_eq!(
            pinned.refs[0].outcome,
            Outcome::Skipped(SkipReason::Unreadable(reason)),
            "{value:?}"
        );
        assert_eq!(pinned.refs[0].line, 3, "{value:?}");
    }
}

#[test]
fn unicode_and_a_byte_order_mark_before_the_value_keep_offsets_right() {
    let input = "\u{feff}# Überblick — Stack\nservices:\n  ä: {image: reg:5000/x:1}  # ü\n";
    let expected =
        pinned_as("\u{feff}# Überblick — Stack\nservices:\n  ä: {image: reg:5000/x:1@<x>}  # ü\n");
    assert_eq!(out(input), expected);
}

#[test]
fn pin_file_replaces_the_file_only_when_something_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stack.yml");
    let input = "# c\nservices:\n  a:\n    image: reg:5000/x:1\n";
    std::fs::write(&path, input).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();

    let pinned = block_on(pin_file(&path, &options(), &AnyTag)).unwrap();
    assert!(pinned.changed());
    assert_eq!(std::fs::read(&path).unwrap(), pinned.bytes);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o644);

    let again = block_on(pin_file(&path, &options(), &AnyTag)).unwrap();
    assert!(!again.changed());
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!(after.ino(), meta.ino(), "an unchanged file was replaced");

    let err = block_on(pin_file(&dir.path().join("nope.yml"), &options(), &AnyTag));
    assert!(matches!(err, Err(PinError::Read { .. })));
}
