//! Access-control configuration: defaults, path resolution and errors that name the file
//! and line.

use super::*;
use crate::access::AuditSink;

#[test]
fn defaults_of_the_new_keys() {
    let c = Config::default_config();
    assert!(c.access.is_none());
    assert_eq!(c.audit.path, "-");
    assert_eq!(c.audit_sink(), AuditSink::Stdout);
    assert_eq!(c.tls.client_ca, PathBuf::new());
    assert_eq!(c.client_ca_path(), None);
    assert_eq!(c.htpasswd_path(), None);
    assert_eq!(c.token_key_path(), PathBuf::from("certs/token.key"));
    let c = Config::from_toml("[access]\n", None).unwrap();
    let a = c.access.unwrap();
    assert_eq!(a.max_failed_logins, 10);
    assert!(a.trusted_proxies.is_empty() && a.rule.is_none());
    assert_eq!(a.token.ttl_secs, 300);
    assert_eq!(a.token.key, PathBuf::from("certs/token.key"));
    assert!(!a.token_enabled(), "no users: no tokens unless asked");
    let c = Config::from_toml("[access]\nhtpasswd = \"h\"\n", None).unwrap();
    assert!(c.access.unwrap().token_enabled());
    let c = Config::from_toml("[audit]\npath = \"\"\n", None).unwrap();
    assert_eq!(c.audit_sink(), AuditSink::Off);
}

#[test]
fn relative_access_paths_resolve_from_the_config_file() {
    let text = "[access]\nhtpasswd = \"users\"\n[access.token]\nkey = \"/abs/token.key\"\n\
                [tls]\nclient_ca = \"ca/clients.pem\"\n[audit]\npath = \"logs/audit.log\"\n";
    let c = Config::from_toml(text, Some(Path::new("/etc/imgflow/registry.toml"))).unwrap();
    assert_eq!(
        c.htpasswd_path().unwrap(),
        PathBuf::from("/etc/imgflow/users")
    );
    assert_eq!(c.token_key_path(), PathBuf::from("/abs/token.key"));
    assert_eq!(
        c.client_ca_path().unwrap(),
        PathBuf::from("/etc/imgflow/ca/clients.pem")
    );
    assert_eq!(
        c.audit_sink(),
        AuditSink::File(PathBuf::from("/etc/imgflow/logs/audit.log"))
    );
    // The default token key, too.
    let c = Config::from_toml("[access]\n", Some(Path::new("/etc/imgflow/r.toml"))).unwrap();
    assert_eq!(
        c.token_key_path(),
        PathBuf::from("/etc/imgflow/certs/token.key")
    );
    // Without a file: the working directory.
    let c = Config::from_toml(text, None).unwrap();
    assert_eq!(c.htpasswd_path().unwrap(), PathBuf::from("users"));
}

/// The error for `text` as file `f.toml`: (line, message).
fn error(text: &str) -> (Option<usize>, String) {
    match Config::from_toml(text, Some(Path::new("/cfg/f.toml"))).unwrap_err() {
        e @ ConfigError::Invalid { .. } => {
            let ConfigError::Invalid { line, .. } = &e else {
                unreachable!()
            };
            let shown = e.to_string();
            assert!(shown.contains("/cfg/f.toml"), "{shown}");
            if let Some(l) = line {
                assert!(shown.contains(&format!("line {l}")), "{shown}");
            }
            (*line, shown)
        }
        e => panic!("{e}"),
    }
}

const RULES_HEAD: &str = "\
[access.networks]
lab = [\"10.0.0.0/8\"]

[access.groups]
ops = [\"olga\"]

";

#[test]
fn errors_name_the_line_of_the_offending_key() {
    let cases: &[(&str, usize, &str)] = &[
        ("[server]\n\nlisen = \"x\"\n", 3, "lisen"),
        ("[tls]\ncertz_dir = \"x\"\n", 2, "certz_dir"),
        ("\n[acces]\nhtpasswd = \"x\"\n", 2, "acces"),
        (
            "[access]\nhtpasswd = \"h\"\nmax_failed_login = 3\n",
            3,
            "max_failed_login",
        ),
        (
            "[access.networks]\na = [\"10.0.0.0/8\",\n  \"10.0.0.0/33\"]\n",
            3,
            "10.0.0.0/33",
        ),
        ("[access]\ntrusted_proxies = [\"nope\"]\n", 2, "nope"),
        ("[server]\nlisten = 5\n", 2, "listen"),
        ("[access.token]\nttl_secs = 0\n", 2, "ttl_secs"),
        ("[audit]\npath = \"-\"\nformat = \"x\"\n", 3, "format"),
    ];
    assert_errors("", cases);
}

/// Each case: the text after `head`, the line its error must name, a word it must show.
fn assert_errors(head: &str, cases: &[(&str, usize, &str)]) {
    for (body, line, what) in cases {
        let text = format!("{head}{body}");
        let (got, msg) = error(&text);
        assert_eq!(got, Some(*line), "{msg}\n{text}");
        assert!(msg.contains(what), "{msg} should mention {what}");
    }
}

#[test]
fn rule_errors_name_the_line_in_the_rule() {
    let cases: &[(&str, usize, &str)] = &[
        ("[[access.rule]]\nfrom = [\"lab\", \"team_vlan\"]\nallow = [\"pull\"]\n", 8, "team_vlan"),
        ("[[access.rule]]\nallow = [\"pull\"]\n\n[[access.rule]]\nwho = [\"@admins\"]\nallow = [\"pull\"]\n", 11, "admins"),
        ("[[access.rule]]\nallow = [\"pull\", \"purge\"]\n", 8, "purge"),
        ("[[access.rule]]\nallow = [\"pull\"]\nrepos = [\"a**\"]\n", 9, "a**"),
        ("[[access.rule]]\nallow = [\"pull\"]\nrepo = [\"a\"]\n", 9, "repo"),
        ("[[access.rule]]\nwho = [\"*\"]\n", 7, "allow"),
    ];
    assert_errors(RULES_HEAD, cases);
}

#[test]
fn syntax_errors_carry_their_position_in_the_message() {
    let (line, msg) = error("[server]\nlisten = \n");
    assert_eq!(line, None);
    assert!(msg.contains("line 2"), "{msg}");
}
