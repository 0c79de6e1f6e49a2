use super::*;
use std::os::unix::fs::PermissionsExt;

/// A Docker configuration directory holding `config` as `config.json`, and a directory
/// for fake helpers (never the process's PATH: tests run in parallel).
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(config: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        Setup { dir }
    }

    /// Install `docker-credential-NAME` running `script` (sh).
    fn helper(&self, name: &str, script: &str) {
        let path = self.bin().join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    fn lookup(&self) -> CredentialLookup {
        CredentialLookup::new(self.dir.path()).helper_path(self.bin())
    }

    fn find(&self, host: &str) -> Result<Option<Credentials>, CredentialsError> {
        self.lookup().find(host)
    }
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn basic(u: &str, p: &str) -> Option<Credentials> {
    Some(Credentials::basic(u, p))
}

#[test]
fn auths_match_exact_and_url_forms_like_docker() {
    let config = format!(
        r#"{{"auths": {{
            "exact.example:5000": {{"auth": "{a}"}},
            "https://scheme.example:5000": {{"auth": "{b}"}},
            "https://path.example:5000/v2/": {{"auth": "{c}"}},
            "http://plain.example": {{"username": "d", "password": "pd"}},
            "other.example:5000": {{"auth": "{e}"}}
        }}}}"#,
        a = b64("alice:pa:with:colons"),
        b = b64("bob:pb"),
        c = b64("carol:pc"),
        e = b64("eve:pe"),
    );
    let s = Setup::new(&config);
    assert_eq!(
        s.find("exact.example:5000").unwrap(),
        basic("alice", "pa:with:colons")
    );
    assert_eq!(s.find("scheme.example:5000").unwrap(), basic("bob", "pb"));
    assert_eq!(s.find("path.example:5000").unwrap(), basic("carol", "pc"));
    assert_eq!(s.find("plain.example").unwrap(), basic("d", "pd"));
    // The port is part of the host: no match without it, nor with another one.
    assert_eq!(s.find("exact.example").unwrap(), None);
    assert_eq!(s.find("other.example:5001").unwrap(), None);
    assert_eq!(s.find("unknown:1").unwrap(), None);
}

#[test]
fn the_exact_key_wins_over_url_forms() {
    let config = format!(
        r#"{{"auths": {{"https://r:1/v2/": {{"auth": "{a}"}}, "r:1": {{"auth": "{b}"}}}}}}"#,
        a = b64("url:x"),
        b = b64("exact:y"),
    );
    assert_eq!(
        Setup::new(&config).find("r:1").unwrap(),
        basic("exact", "y")
    );
}

#[test]
fn empty_and_token_entries() {
    let config = format!(
        r#"{{"auths": {{
            "empty:1": {{}},
            "tok:1": {{"auth": "{a}", "identitytoken": "refresh-xyz"}},
            "bad:1": {{"auth": "not base64!"}},
            "nocolon:1": {{"auth": "{n}"}}
        }}}}"#,
        a = b64("dan:"),
        n = b64("justauser"),
    );
    let s = Setup::new(&config);
    assert_eq!(s.find("empty:1").unwrap(), None);
    assert_eq!(
        s.find("tok:1").unwrap(),
        Some(Credentials::IdentityToken {
            username: "dan".into(),
            token: "refresh-xyz".into()
        })
    );
    for host in ["bad:1", "nocolon:1"] {
        let err = s.find(host).unwrap_err().to_string();
        assert!(err.contains(host) && err.contains("base64"), "{err}");
    }
}

#[test]
fn missing_and_invalid_files() {
    let dir = tempfile::tempdir().unwrap();
    let lookup = CredentialLookup::new(dir.path().join("absent"));
    assert_eq!(lookup.find("r:1").unwrap(), None);
    let s = Setup::new("{ not json");
    let err = s.find("r:1").unwrap_err();
    assert!(matches!(err, CredentialsError::Parse { .. }), "{err}");
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn cred_helpers_then_creds_store_then_auths() {
    let config = format!(
        r#"{{"credHelpers": {{"helped:5000": "test"}},
            "auths": {{"helped:5000": {{"auth": "{a}"}}, "filed:1": {{"auth": "{a}"}}}}}}"#,
        a = b64("fromfile:x"),
    );
    let s = Setup::new(&config);
    // The helper echoes the host it was asked about in the user name.
    s.helper(
        "test",
        r#"[ "$1" = get ] || exit 3
read host
printf '{"ServerURL":"%s","Username":"u-%s","Secret":"s3cret"}' "$host" "$host""#,
    );
    assert_eq!(
        s.find("helped:5000").unwrap(),
        basic("u-helped:5000", "s3cret")
    );
    assert_eq!(s.find("filed:1").unwrap(), basic("fromfile", "x"));

    // A credsStore serves every registry without a credHelpers entry.
    let store = Setup::new(r#"{"credsStore": "test", "auths": {"r:1": {}}}"#);
    store.helper(
        "test",
        r#"read host; printf '{"Username":"<token>","Secret":"id-%s"}' "$host""#,
    );
    assert_eq!(
        store.find("r:1").unwrap(),
        Some(Credentials::IdentityToken {
            username: String::new(),
            token: "id-r:1".into()
        })
    );
}

#[test]
fn helper_failures_name_the_helper() {
    let s = Setup::new(
        r#"{"credHelpers": {"a:1": "missing", "b:1": "broken", "c:1": "none", "d:1": "garbage"}}"#,
    );
    s.helper("broken", "echo 'keychain locked' >&2; exit 2");
    s.helper(
        "none",
        "echo 'credentials not found in native keychain'; exit 1",
    );
    s.helper("garbage", "echo hello");
    let err = s.find("a:1").unwrap_err();
    assert!(
        matches!(err, CredentialsError::HelperNotInstalled { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("docker-credential-missing") && err.to_string().contains("a:1"),
        "{err}"
    );
    let err = s.find("b:1").unwrap_err().to_string();
    assert!(
        err.contains("docker-credential-broken") && err.contains("keychain locked"),
        "{err}"
    );
    assert_eq!(s.find("c:1").unwrap(), None, "not found means anonymous");
    let err = s.find("d:1").unwrap_err().to_string();
    assert!(
        err.contains("docker-credential-garbage") && err.contains("JSON"),
        "{err}"
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let c = Credentials::basic("carol", "hunter2");
    let text = format!("{c:?}");
    assert!(
        text.contains("carol") && !text.contains("hunter2"),
        "{text}"
    );
}

#[test]
fn key_hosts() {
    assert_eq!(key_host("https://r.example:5000/v2/"), "r.example:5000");
    assert_eq!(key_host("http://r"), "r");
    assert_eq!(key_host("r:1"), "r:1");
    assert_eq!(decode_auth(&b64("a:b:c")), Some(("a".into(), "b:c".into())));
}
