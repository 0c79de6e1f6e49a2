//! Tests of the whole pin: a commented stack file in, bytes and report out.

use super::*;
use futures::executor::block_on;
use std::sync::atomic::{AtomicUsize, Ordering};

const STACK: &str = include_str!("testdata/spark_stack.yml");

fn digest(seed: &str) -> Digest {
    Digest::sha256(seed.as_bytes())
}

/// The registry's tags, counting lookups.
struct Tags {
    known: BTreeMap<(RepoName, Tag), Digest>,
    calls: AtomicUsize,
}

impl Tags {
    fn new(entries: &[(&str, &str, &str)]) -> Tags {
        let known = entries
            .iter()
            .map(|(repo, tag, seed)| ((repo.parse().unwrap(), tag.parse().unwrap()), digest(seed)))
            .collect();
        Tags {
            known,
            calls: AtomicUsize::new(0),
        }
    }

    fn team() -> Tags {
        Tags::new(&[
            ("team/spark", "3.5.1", "spark"),
            ("team/spark-notebook", "3.5.1", "notebook"),
            ("team/anaconda-gpu", "latest", "gpu"),
            ("team/socks5", "1.2", "socks5"),
            ("team/hdfs", "3.3.6", "hdfs"),
            ("team/unused", "1", "unused"),
        ])
    }
}

impl Resolve for Tags {
    fn digest(
        &self,
        repo: &RepoName,
        tag: &Tag,
    ) -> impl Future<Output = Result<Option<Digest>, ResolveError>> + Send {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.known.digest(repo, tag)
    }
}

fn options() -> PinOptions {
    PinOptions::new("registry.example:5000".parse().unwrap())
}

fn run(input: &str, options: &PinOptions, tags: &Tags) -> Result<Pinned, PinError> {
    block_on(pin(Path::new("stack.yml"), input.as_bytes(), options, tags))
}

fn text(p: &Pinned) -> &str {
    std::str::from_utf8(&p.bytes).unwrap()
}

/// Asserts `output` equals `input` line by line (line ends included) except the lines in
/// `changed`, which must be exactly the given text.
fn assert_only_lines(input: &str, output: &str, changed: &[(usize, String)]) {
    let before: Vec<&str> = input.split_inclusive('\n').collect();
    let after: Vec<&str> = output.split_inclusive('\n').collect();
    assert_eq!(before.len(), after.len(), "line count changed");
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        let line = i + 1;
        match changed.iter().find(|(l, _)| *l == line) {
            Some((_, expected)) => assert_eq!(*a, expected, "line {line}"),
            None => assert_eq!(a, b, "line {line} must not change"),
        }
    }
}

/// The lines pinning the fixture must produce, with `eol` as line end.
fn expected_lines(eol: &str) -> Vec<(usize, String)> {
    let d = |s| digest(s).to_string();
    vec![
        (
            7,
            format!(
                "  image: registry.example:5000/team/spark:3.5.1@{}    # shared by master and workers{eol}",
                d("spark")
            ),
        ),
        (
            35,
            format!(
                "    image: \"registry.example:5000/team/spark-notebook:3.5.1@{}\"  # team notebooks{eol}",
                d("notebook")
            ),
        ),
        (
            46,
            format!(
                "    image: 'REGISTRY.EXAMPLE:5000/team/anaconda-gpu@{}'   # no tag: latest{eol}",
                d("gpu")
            ),
        ),
        (
            57,
            format!(
                "  proxy: {{ image: registry.example:5000/team/socks5:1.2@{}, ports: [\"1080:1080\"] }}{eol}",
                d("socks5")
            ),
        ),
        (
            60,
            format!(
                "    image: registry.example:5000/team/hdfs:3.3.6@{}{eol}",
                d("hdfs")
            ),
        ),
    ]
}

#[test]
fn pins_only_the_service_image_values_of_this_registry() {
    let tags = Tags::team();
    let pinned = run(STACK, &options(), &tags).unwrap();
    assert_only_lines(STACK, text(&pinned), &expected_lines("\n"));
    // team/spark is used by two services through one anchored value: one lookup.
    assert_eq!(tags.calls.load(Ordering::SeqCst), 5);
    assert!(pinned.changed());
}

#[test]
fn crlf_line_ends_are_kept() {
    let crlf = STACK.replace('\n', "\r\n");
    let pinned = run(&crlf, &options(), &Tags::team()).unwrap();
    assert_only_lines(&crlf, text(&pinned), &expected_lines("\r\n"));
}

#[test]
fn report_says_what_happened_to_each_service_image() {
    let pinned = run(STACK, &options(), &Tags::team()).unwrap();
    let summary: Vec<(usize, String, Option<SkipReason>)> = pinned
        .refs
        .iter()
        .map(|r| {
            let skip = match &r.outcome {
                Outcome::Skipped(reason) => Some(reason.clone()),
                Outcome::Pinned { .. } => None,
            };
            (r.line, r.services.join(","), skip)
        })
        .collect();
    let expected = vec![
        (7, "spark-master,spark-worker".into(), None),
        (35, "notebook".into(), None),
        (46, "notebook-gpu".into(), None),
        (53, "interns".into(), Some(SkipReason::NoVariables)),
        (57, "proxy".into(), None),
        (60, "hdfs-namenode".into(), None),
        (64, "hive-db".into(), Some(SkipReason::OtherRegistry)),
        (67, "history".into(), Some(SkipReason::OtherRegistry)),
        (70, "local-test".into(), Some(SkipReason::OtherRegistry)),
    ];
    assert_eq!(summary, expected);
    let gpu = &pinned.refs[2];
    assert_eq!(gpu.old, "REGISTRY.EXAMPLE:5000/team/anaconda-gpu");
    assert_eq!(
        gpu.to_string(),
        format!(
            "line 46 (notebook-gpu): REGISTRY.EXAMPLE:5000/team/anaconda-gpu -> \
             REGISTRY.EXAMPLE:5000/team/anaconda-gpu@{}",
            digest("gpu")
        )
    );
    assert!(pinned.refs[3]
        .to_string()
        .ends_with("skipped: uses variables and no values were given for them"));
}

#[test]
fn variables_are_resolved_with_given_values_and_kept_in_the_file() {
    let mut opts = options();
    let vars = [("REGISTRY".to_string(), "registry.example:5000".to_string())];
    opts.variables = Some(vars.into_iter().collect());
    let pinned = run(STACK, &opts, &Tags::team()).unwrap();
    let mut lines = expected_lines("\n");
    lines.push((
        53,
        format!(
            "    image: ${{REGISTRY}}/team/spark-notebook:3.5.1@{}\n",
            digest("notebook")
        ),
    ));
    assert_only_lines(STACK, text(&pinned), &lines);

    opts.variables = Some(HashMap::new());
    let pinned = run(STACK, &opts, &Tags::team()).unwrap();
    assert_eq!(
        pinned.refs[3].outcome,
        Outcome::Skipped(SkipReason::Variable(VarProblem::Unset("REGISTRY".into())))
    );
}

#[test]
fn pinning_again_changes_nothing_or_only_moved_digests() {
    let first = run(STACK, &options(), &Tags::team()).unwrap();
    let again = run(text(&first), &options(), &Tags::team()).unwrap();
    assert_eq!(again.bytes, first.bytes);
    assert!(!again.changed());
    assert!(again.refs[0].to_string().ends_with("(already pinned)"));

    let mut moved = Tags::team();
    let spark = ("team/spark".parse().unwrap(), "3.5.1".parse().unwrap());
    moved.known.insert(spark, digest("spark rebuilt"));
    let updated = run(text(&first), &options(), &moved).unwrap();
    let line7 = format!(
        "  image: registry.example:5000/team/spark:3.5.1@{}    # shared by master and workers\n",
        digest("spark rebuilt")
    );
    assert_only_lines(text(&first), text(&updated), &[(7, line7)]);
}

#[test]
fn repositories_restrict_what_is_pinned() {
    let mut opts = options();
    opts.repositories = Some(["team/spark".parse().unwrap()].into_iter().collect());
    let pinned = run(STACK, &opts, &Tags::team()).unwrap();
    let lines: Vec<_> = expected_lines("\n").into_iter().take(1).collect();
    assert_only_lines(STACK, text(&pinned), &lines);
    assert_eq!(
        pinned.refs[1].outcome,
        Outcome::Skipped(SkipReason::NotListed)
    );
}

#[test]
fn an_unknown_tag_names_file_line_and_reference() {
    let tags = Tags::new(&[("team/spark", "3.5.1", "spark")]);
    let err = run(STACK, &options(), &tags).unwrap_err();
    assert!(
        matches!(err, PinError::UnknownTag { line: 35, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "stack.yml:35: registry.example:5000/team/spark-notebook:3.5.1: \
         the registry has no tag 3.5.1 of team/spark-notebook"
    );

    let err = run(
        "services:\n  a:\n    image: registry.example:5000/x\n",
        &options(),
        &tags,
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("stack.yml:3: "), "{err}");
    assert!(err.to_string().contains("no tag latest of x"), "{err}");
}

struct Failing;

impl Resolve for Failing {
    fn digest(
        &self,
        _: &RepoName,
        _: &Tag,
    ) -> impl Future<Output = Result<Option<Digest>, ResolveError>> + Send {
        std::future::ready(Err("connection refused".into()))
    }
}

#[test]
fn a_failed_lookup_names_file_line_and_reference() {
    let input = "# c\nservices:\n  a:\n    image: registry.example:5000/x:1\n";
    let err = block_on(pin(
        Path::new("s.yml"),
        input.as_bytes(),
        &options(),
        &Failing,
    ));
    assert_eq!(
        err.unwrap_err().to_string(),
        "s.yml:4: registry.example:5000/x:1: cannot resolve the digest: connection refused"
    );
}

#[test]
fn unreadable_files_are_errors_with_positions() {
    let tags = Tags::team();
    let err = run("services:\n  a:\n    image: [x\n", &options(), &tags).unwrap_err();
    assert!(matches!(err, PinError::Yaml { line: 4, .. }), "{err:?}");
    let dup = "services:\n  a:\n    image: a/b\n    image: c/d\n";
    let err = run(dup, &options(), &tags).unwrap_err();
    assert!(
        matches!(err, PinError::DuplicateImage { line: 4, .. }),
        "{err:?}"
    );
    let err = block_on(pin(Path::new("s.yml"), b"\xff", &options(), &tags)).unwrap_err();
    assert!(matches!(err, PinError::NotUtf8 { .. }));
}
