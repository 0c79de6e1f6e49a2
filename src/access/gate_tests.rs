use super::*;
use crate::access::audit::AuditSink;
use crate::access::htpasswd::add_user_with_cost;
use crate::access::rules::AccessConfig;

const TEAM: &str = r#"
htpasswd = "unused"
trusted_proxies = ["127.0.0.1/32"]
max_failed_logins = 3
[networks]
vlan = ["10.10.0.0/16"]
cluster = ["10.0.0.0/16"]
[groups]
interns = ["alice"]
[[rule]]
from = ["vlan"]
who = ["*"]
allow = ["pull", "push"]
repos = ["team/**"]
[[rule]]
from = ["vlan"]
who = ["@interns"]
allow = ["pull", "push"]
repos = ["interns/**"]
[[rule]]
from = ["cluster"]
who = ["anonymous"]
allow = ["pull"]
"#;

struct Fixture {
    gate: Arc<Gate>,
    audit: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn fixture(tokens: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("htpasswd");
    add_user_with_cost(&users, "alice", "alice-pw", 4).unwrap();
    add_user_with_cost(&users, "carol", "carol-pw", 4).unwrap();
    let cfg: AccessConfig = toml::from_str(TEAM).unwrap();
    let audit = dir.path().join("audit.log");
    let keys = tokens.then(|| {
        TokenKeys::load_or_generate(&dir.path().join("token.key"), Duration::from_secs(300))
            .unwrap()
    });
    let gate = Gate::new(GateOptions {
        policy: Policy::new(Some(&cfg)).unwrap(),
        htpasswd: Some(Htpasswd::load(&users).unwrap()),
        tokens: keys,
        max_failed_logins: cfg.max_failed_logins,
        trusted_proxies: cfg.trusted_proxy_set(),
        audit: AuditLog::open(&AuditSink::File(audit.clone())).unwrap(),
        service: "reg.test".into(),
    });
    Fixture {
        gate: Arc::new(gate),
        audit,
        _dir: dir,
    }
}

impl Fixture {
    /// The audit lines written so far.
    fn lines(&self) -> Vec<serde_json::Value> {
        let gate = self.gate.clone();
        gate.audit.flush();
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn basic(user: &str, password: &str) -> Credentials {
    Credentials::Basic {
        user: user.into(),
        password: password.into(),
    }
}

#[tokio::test]
async fn passwords_sign_in_and_failures_are_limited_and_audited() {
    let f = fixture(true);
    let vlan = ip("10.10.1.2");
    let c = f
        .gate
        .sign_in(vlan, basic("carol", "carol-pw"), None, "GET")
        .await
        .unwrap();
    assert_eq!(c.identity, Identity::user("carol"));
    assert!(c.authenticated);
    // A second request with the same password is remembered: no new audit line.
    f.gate
        .sign_in(vlan, basic("carol", "carol-pw"), None, "GET")
        .await
        .unwrap();
    for _ in 0..3 {
        let e = f
            .gate
            .sign_in(vlan, basic("carol", "wrong"), None, "GET")
            .await
            .unwrap_err();
        assert!(matches!(e, SignInError::WrongPassword), "{e}");
    }
    // The fourth try within the minute is refused without checking, even when right.
    let e = f
        .gate
        .sign_in(vlan, basic("carol", "carol-pw"), None, "GET")
        .await
        .unwrap_err();
    assert!(matches!(e, SignInError::TooManyFailures(_)), "{e}");
    // Another address is not affected.
    f.gate
        .sign_in(ip("10.10.9.9"), basic("alice", "alice-pw"), None, "GET")
        .await
        .unwrap();
    let lines = f.lines();
    let outcomes: Vec<&str> = lines
        .iter()
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["ok", "failed", "failed", "failed", "denied", "ok"],
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| l["action"] == "login"));
    let text = std::fs::read_to_string(&f.audit).unwrap();
    assert!(
        !text.contains("carol-pw") && !text.contains("wrong"),
        "{text}"
    );
}

#[tokio::test]
async fn rules_decide_and_say_whether_signing_in_helps() {
    let f = fixture(true);
    let anon = f
        .gate
        .sign_in(ip("10.10.1.2"), Credentials::None, None, "GET")
        .await
        .unwrap();
    assert!(!anon.authenticated);
    assert!(!f.gate.allows(&anon, Action::Pull, "team/app"));
    assert!(f.gate.sign_in_could_help(&anon, Action::Pull, "team/app"));
    let alice = f
        .gate
        .sign_in(ip("10.10.1.2"), basic("alice", "alice-pw"), None, "GET")
        .await
        .unwrap();
    assert!(f.gate.allows(&alice, Action::Push, "interns/nb"));
    assert!(f.gate.allows(&alice, Action::Push, "team/app"));
    assert!(!f.gate.allows(&alice, Action::Delete, "team/app"));
    assert!(!f
        .gate
        .sign_in_could_help(&alice, Action::Delete, "team/app"));
    let carol = f
        .gate
        .sign_in(ip("10.10.1.2"), basic("carol", "carol-pw"), None, "GET")
        .await
        .unwrap();
    assert!(!f.gate.allows(&carol, Action::Push, "interns/nb"));
    // The cluster pulls anonymously; signing in could not give it push.
    let node = f
        .gate
        .sign_in(ip("10.0.3.4"), Credentials::None, None, "GET")
        .await
        .unwrap();
    assert!(f.gate.allows(&node, Action::Pull, "team/app"));
    assert!(!f.gate.allows(&node, Action::Push, "team/app"));
    assert!(!f.gate.sign_in_could_help(&node, Action::Push, "team/app"));
}

#[tokio::test]
async fn tokens_carry_only_granted_scopes() {
    let f = fixture(true);
    let alice = f
        .gate
        .sign_in(ip("10.10.1.2"), basic("alice", "alice-pw"), None, "GET")
        .await
        .unwrap();
    let scopes = Scope::parse_all(["repository:interns/nb:pull,push repository:team/x:delete"]);
    let t = f.gate.issue_token(&alice, &scopes, "GET").unwrap().unwrap();
    let with_token = f
        .gate
        .sign_in(
            ip("10.10.1.2"),
            Credentials::Bearer(t.token.clone()),
            None,
            "GET",
        )
        .await
        .unwrap();
    assert_eq!(with_token.identity, Identity::user("alice"));
    assert!(f.gate.allows(&with_token, Action::Push, "interns/nb"));
    // Not asked for, or not granted: refused even though alice may push to team/.
    assert!(!f.gate.allows(&with_token, Action::Push, "team/app"));
    assert!(!f.gate.allows(&with_token, Action::Delete, "team/x"));
    // The same token from the cluster, where no rule lets alice push: only what
    // anonymous has there (pull).
    let replayed = f
        .gate
        .sign_in(
            ip("10.0.3.4"),
            Credentials::Bearer(t.token.clone()),
            None,
            "GET",
        )
        .await
        .unwrap();
    assert_eq!(replayed.identity, Identity::user("alice"));
    assert!(!f.gate.allows(&replayed, Action::Push, "interns/nb"));
    assert!(f.gate.allows(&replayed, Action::Pull, "interns/nb"));
    // And from an address no rule names, nothing.
    let elsewhere = Caller {
        ip: ip("203.0.113.9"),
        ..with_token.clone()
    };
    assert!(!f.gate.allows(&elsewhere, Action::Push, "interns/nb"));
    assert!(!f.gate.allows(&elsewhere, Action::Pull, "interns/nb"));
    // Tampered: another payload with the same signature.
    let mut parts: Vec<String> = t.token.split('.').map(str::to_string).collect();
    parts[1] = parts[1].chars().rev().collect();
    let tampered = parts.join(".");
    let e = f
        .gate
        .sign_in(ip("10.10.1.2"), Credentials::Bearer(tampered), None, "GET")
        .await
        .unwrap_err();
    assert!(matches!(e, SignInError::BadToken(_)), "{e}");
    // A token of another registry (another key) is refused.
    let other = fixture(true);
    let foreign = other
        .gate
        .issue_token(&alice, &scopes, "GET")
        .unwrap()
        .unwrap();
    assert!(f
        .gate
        .sign_in(
            ip("10.10.1.2"),
            Credentials::Bearer(foreign.token),
            None,
            "GET"
        )
        .await
        .is_err());
    let lines = f.lines();
    assert!(
        lines
            .iter()
            .any(|l| l["action"] == "token" && l["identity"] == "alice"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["action"] == "deny" && l["detail"].as_str().unwrap().contains("token")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn basic_mode_refuses_bearer_and_certificates_name_the_caller() {
    let f = fixture(false);
    assert_eq!(f.gate.mode(), AuthMode::Basic);
    let e = f
        .gate
        .sign_in(
            ip("10.10.1.2"),
            Credentials::Bearer("x".into()),
            None,
            "GET",
        )
        .await
        .unwrap_err();
    assert!(matches!(e, SignInError::TokensOff));
    let node = f
        .gate
        .sign_in(ip("10.10.1.2"), Credentials::None, Some("carol"), "GET")
        .await
        .unwrap();
    assert_eq!(node.identity, Identity::user("carol"));
    assert!(node.authenticated);
    let anon = f
        .gate
        .sign_in(ip("10.10.1.2"), Credentials::None, Some("anonymous"), "GET")
        .await
        .unwrap();
    assert_eq!(anon.identity, Identity::Anonymous);
}

#[tokio::test]
async fn open_registry_ignores_passwords() {
    let gate = Arc::new(Gate::open_default());
    assert_eq!(gate.mode(), AuthMode::Open);
    let c = gate
        .sign_in(ip("127.0.0.1"), basic("x", "y"), None, "GET")
        .await
        .unwrap();
    assert_eq!(c.identity, Identity::Anonymous);
    assert!(gate.allows(&c, Action::Delete, "any/repo"));
    assert!(!gate.sign_in_could_help(&c, Action::Delete, "any/repo"));
    let outside = gate
        .sign_in(ip("203.0.113.9"), Credentials::None, None, "GET")
        .await
        .unwrap();
    assert!(!gate.allows(&outside, Action::Pull, "any/repo"));
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let f = fixture(true);
    let g = &f.gate;
    // From the trusted proxy: the last untrusted hop.
    assert_eq!(
        g.client_ip(ip("127.0.0.1"), Some("203.0.113.7, 10.10.1.2")),
        ip("10.10.1.2")
    );
    assert_eq!(
        g.client_ip(ip("127.0.0.1"), Some("10.10.1.2, 127.0.0.1")),
        ip("10.10.1.2")
    );
    // From anyone else: ignored.
    assert_eq!(
        g.client_ip(ip("203.0.113.9"), Some("10.10.1.2")),
        ip("203.0.113.9")
    );
    // Garbage stops the walk at the last good hop.
    assert_eq!(g.client_ip(ip("127.0.0.1"), Some("junk")), ip("127.0.0.1"));
    // IPv4-mapped peers are normalised.
    assert_eq!(
        g.client_ip(ip("::ffff:203.0.113.9"), None),
        ip("203.0.113.9")
    );
}
