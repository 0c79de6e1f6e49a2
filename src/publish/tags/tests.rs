//! Tag templates, the UTC date and the git state of a real (temporary) repository.

use super::*;
use std::path::PathBuf;
use time::macros::datetime;

fn ctx(git: Option<(&str, bool)>) -> TagContext {
    TagContext {
        git: git.map(|(c, dirty)| GitState {
            commit: c.to_string(),
            dirty,
        }),
        date: "20261202".to_string(),
    }
}

fn expand(template: &str, ctx: &TagContext) -> Result<String, TagError> {
    Ok(TagTemplate::parse(template)?
        .expand(ctx, Path::new("/src"))?
        .to_string())
}

#[test]
fn placeholders_expand() {
    let clean = ctx(Some(("abc1234", false)));
    let dirty = ctx(Some(("abc1234", true)));
    assert_eq!(expand("3.5.1", &clean).unwrap(), "3.5.1");
    assert_eq!(expand("{git}", &clean).unwrap(), "abc1234");
    assert_eq!(expand("{git}", &dirty).unwrap(), "abc1234-dirty");
    assert_eq!(expand("{date}", &clean).unwrap(), "20261202");
    assert_eq!(
        expand("v1-{git}-{date}", &dirty).unwrap(),
        "v1-abc1234-dirty-20261202"
    );
    assert!(TagTemplate::parse("{git}").unwrap().uses_git());
    assert!(!TagTemplate::parse("{date}").unwrap().uses_git());
}

#[test]
fn bad_templates_are_refused() {
    for (t, placeholder) in [("{branch}", "branch"), ("x-{git", "git"), ("{}", "")] {
        match TagTemplate::parse(t) {
            Err(TagError::UnknownPlaceholder { placeholder: p, .. }) => assert_eq!(p, placeholder),
            other => panic!("{t}: {other:?}"),
        }
    }
    for t in [
        "-x",
        ".x",
        "a b",
        "",
        "a:b",
        &"x".repeat(129),
        &format!("{}{{git}}", "x".repeat(90)),
    ] {
        assert!(
            matches!(TagTemplate::parse(t), Err(TagError::Invalid { .. })),
            "{t}"
        );
    }
}

#[test]
fn git_without_a_work_tree_is_an_error_naming_the_directory() {
    let e = expand("{git}", &ctx(None)).unwrap_err();
    assert!(matches!(e, TagError::NoGit { .. }), "{e}");
    assert!(e.to_string().contains("/src"), "{e}");
    assert_eq!(expand("{date}", &ctx(None)).unwrap(), "20261202");
}

#[test]
fn the_date_is_utc() {
    assert_eq!(utc_date(datetime!(2026-12-02 10:00 UTC)), "20261202");
    assert_eq!(utc_date(datetime!(2026-12-31 23:30 -02:00)), "20270101");
    assert_eq!(utc_date(datetime!(2027-01-01 00:30 +01:00)), "20261231");
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn the_git_state_of_a_work_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().to_path_buf();
    assert_eq!(GitState::discover(&dir), None, "not a repository");
    git(&dir, &["init", "-q"]);
    assert_eq!(GitState::discover(&dir), None, "no commit yet");
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/imgflow.toml"), "x").unwrap();
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-q", "-m", "one"]);
    let head = git(&dir, &["rev-parse", "--short", "HEAD"]);
    let clean = GitState::discover(&dir.join("sub")).unwrap();
    assert_eq!(
        clean,
        GitState {
            commit: head.clone(),
            dirty: false
        }
    );
    let now = datetime!(2026-12-02 10:00 UTC);
    let tags = TagContext::new(&dir.join("sub"), now);
    assert_eq!(
        expand("{git}-{date}", &tags).unwrap(),
        format!("{head}-20261202")
    );
    // A changed tracked file, then only an untracked one: both are dirty.
    std::fs::write(dir.join("sub/imgflow.toml"), "y").unwrap();
    let dirty = GitState::discover(&dir).unwrap();
    assert!(dirty.dirty);
    assert_eq!(dirty.describe(), format!("{head}-dirty"));
    git(&dir, &["checkout", "-q", "--", "."]);
    assert!(!GitState::discover(&dir).unwrap().dirty);
    std::fs::write(dir.join("new-file"), "z").unwrap();
    assert!(GitState::discover(&dir).unwrap().dirty);
    // An ignored file is not.
    std::fs::write(dir.join(".git/info/exclude"), "new-file\n").unwrap();
    assert!(!GitState::discover(&dir).unwrap().dirty);
}
