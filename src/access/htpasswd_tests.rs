use super::*;
use std::os::unix::fs::PermissionsExt;

/// The lowest bcrypt cost keeps the tests fast.
const COST: u32 = 4;

fn file_with(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn loads_and_verifies_bcrypt_entries_of_every_prefix() {
    let h = bcrypt::hash("s3cret", COST).unwrap();
    assert!(h.starts_with("$2b$"));
    let y = h.replacen("$2b$", "$2y$", 1);
    let a = h.replacen("$2b$", "$2a$", 1);
    let text = format!("# users\n\ncarol:{y}\ndave:{h}\nerin:{a}\n");
    let (_dir, path) = file_with(&text);
    let users = Htpasswd::load(&path).unwrap();
    assert_eq!(users.len(), 3);
    assert!(users.contains("carol") && !users.contains("anonymous"));
    for name in ["carol", "dave", "erin"] {
        assert!(users.verify(name, "s3cret"), "{name}");
        assert!(!users.verify(name, "s3cret "), "{name}");
        assert!(!users.verify(name, ""), "{name}");
    }
    assert!(!users.verify("mallory", "s3cret"));
}

#[test]
fn non_bcrypt_and_malformed_lines_name_file_and_line() {
    let good = bcrypt::hash("x", COST).unwrap();
    let cases = [
        (
            format!("carol:{good}\n\ndave:{{SHA}}abc=\n"),
            3,
            "not bcrypt",
        ),
        (
            format!("carol:{good}\ndave:$apr1$abc$def\n"),
            2,
            "not bcrypt",
        ),
        ("erin:plaintext\n".to_string(), 1, "not bcrypt"),
        ("erin:$2y$05$tooshort\n".to_string(), 1, "not bcrypt"),
        (format!("carol:{good}\nno-colon-here\n"), 2, "name:hash"),
        (format!("carol:{good}\ncarol:{good}\n"), 2, "second time"),
        (format!("bad user:{good}\n"), 1, "whitespace"),
        (format!("anonymous:{good}\n"), 1, "reserved"),
    ];
    for (text, line, what) in cases {
        let (_dir, path) = file_with(&text);
        let e = Htpasswd::load(&path).unwrap_err().to_string();
        let at = format!("{}:{line}:", path.display());
        assert!(
            e.contains(&at) && e.contains(what),
            "{e} (want {at} {what})"
        );
    }
    let e = Htpasswd::load(Path::new("/nonexistent/htpasswd")).unwrap_err();
    assert!(matches!(e, HtpasswdError::Read { .. }));
}

#[test]
fn user_names_are_validated() {
    for ok in ["carol", "ci-bot", "svc.account@corp"] {
        assert!(validate_user_name(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "a:b",
        "a b",
        "tab\t",
        "anonymous",
        "@admins",
        "*",
        "#x",
        "nl\n",
    ] {
        assert!(validate_user_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn add_creates_replaces_and_keeps_other_lines_then_del() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub-htpasswd");
    add_user_with_cost(&path, "carol", "one", COST).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.insert_str(0, "# team users\n");
    std::fs::write(&path, &text).unwrap();
    add_user_with_cost(&path, "dave", "two", COST).unwrap();
    add_user_with_cost(&path, "carol", "three", COST).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "# team users");
    assert!(lines[1].starts_with("carol:$2") && lines[2].starts_with("dave:$2"));
    let users = Htpasswd::load(&path).unwrap();
    assert!(users.verify("carol", "three") && !users.verify("carol", "one"));
    assert!(users.verify("dave", "two"));

    del_user(&path, "carol").unwrap();
    let e = del_user(&path, "carol").unwrap_err();
    assert!(matches!(e, HtpasswdError::NoSuchUser { .. }), "{e}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(!text.contains("carol"));
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert!(add_user_with_cost(&path, "bad:name", "x", COST).is_err());
    assert!(add_user_with_cost(&path, "erin", "", COST).is_err());
    assert!(add_user_with_cost(&path, "erin", &"x".repeat(73), COST).is_err());
    assert!(del_user(&dir.path().join("missing"), "x").is_err());
}

#[test]
fn successes_are_cached_until_reload_and_reload_sees_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    add_user_with_cost(&path, "carol", "old", COST).unwrap();
    let users = Htpasswd::load(&path).unwrap();
    assert!(!users.reload_if_changed().unwrap());
    assert!(users.verify("carol", "old"));
    assert_eq!(users.cache.len(), 1);
    assert!(users.verify("carol", "old"));
    assert!(!users.verify("carol", "wrong"));
    assert_eq!(users.cache.len(), 1, "failures are not cached");

    add_user_with_cost(&path, "carol", "new", COST).unwrap();
    add_user_with_cost(&path, "dave", "d", COST).unwrap();
    assert!(users.reload_if_changed().unwrap());
    assert_eq!(users.cache.len(), 0);
    assert!(
        !users.verify("carol", "old"),
        "the old password is forgotten"
    );
    assert!(users.verify("carol", "new"));
    assert!(users.verify("dave", "d"));
    // A broken file keeps the users loaded before.
    std::fs::write(&path, "carol:md5stuff\n").unwrap();
    assert!(users.reload_if_changed().is_err());
    assert!(users.verify("dave", "d"));
}

#[test]
fn a_missing_user_costs_a_bcrypt_check_too() {
    // Cost 8 makes one check measurable (a few ms) against a hash-map miss (ns).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    add_user_with_cost(&path, "carol", "pw", 8).unwrap();
    let users = Htpasswd::load(&path).unwrap();
    let t = std::time::Instant::now();
    assert!(!users.verify("carol", "wrong"));
    let present = t.elapsed();
    let t = std::time::Instant::now();
    assert!(!users.verify("nobody", "wrong"));
    let missing = t.elapsed();
    assert!(
        missing * 4 > present,
        "missing {missing:?} vs present {present:?}"
    );
}
