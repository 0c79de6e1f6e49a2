use super::*;
use crate::config::Config;
use std::path::Path;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn user(n: &str) -> Identity {
    Identity::user(n)
}

fn policy(toml_text: &str) -> Policy {
    let cfg = Config::from_toml(toml_text, None).unwrap();
    Policy::new(cfg.access.as_ref()).unwrap()
}

fn team() -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/team.toml");
    let cfg = Config::load(Some(&path)).unwrap();
    assert_eq!(
        cfg.htpasswd_path().unwrap(),
        path.parent().unwrap().join("htpasswd")
    );
    assert!(cfg.access.as_ref().unwrap().token_enabled());
    Policy::new(cfg.access.as_ref()).unwrap()
}

#[test]
fn team_config_answers_as_documented() {
    use Action::*;
    let p = team();
    let vlan = ip("10.10.3.4");
    let node = ip("10.0.7.8");
    let outsider = ip("203.0.113.9");
    let anon = Identity::Anonymous;
    // (address, identity, action, repository, allowed)
    let cases: &[(IpAddr, Identity, Action, &str, bool)] = &[
        (vlan, user("dave"), Pull, "team/app", true),
        (vlan, user("dave"), Push, "team/app", true),
        (vlan, user("dave"), Delete, "team/app", false),
        (vlan, user("dave"), Catalog, "", true),
        (vlan, user("carol"), Delete, "team/app", true),
        (vlan, user("alice"), Pull, "team/app", true),
        (vlan, user("alice"), Push, "team/app", false),
        (vlan, user("alice"), Push, "interns/nb", true),
        (vlan, user("bob"), Push, "interns/a/b", true),
        (vlan, user("bob"), Delete, "interns/nb", false),
        (vlan, user("stranger"), Pull, "team/app", true),
        (vlan, user("stranger"), Push, "team/app", false),
        (vlan, anon.clone(), Pull, "team/app", false),
        (vlan, anon.clone(), Catalog, "", false),
        (node, anon.clone(), Pull, "team/app", true),
        (node, anon.clone(), Push, "team/app", false),
        (node, anon.clone(), Delete, "team/app", false),
        (node, anon.clone(), Catalog, "", false),
        // Signed in from the cluster: still what anonymous has there, no more.
        (node, user("carol"), Pull, "team/app", true),
        (node, user("carol"), Push, "team/app", false),
        (node, user("carol"), Delete, "team/app", false),
        (outsider, user("carol"), Pull, "team/app", false),
        (outsider, anon.clone(), Pull, "team/app", false),
        (ip("::ffff:10.0.7.8"), anon.clone(), Pull, "x", true),
        (ip("127.0.0.1"), anon.clone(), Pull, "x", false),
    ];
    for (addr, id, action, repo, want) in cases {
        assert_eq!(
            p.allows(*addr, id, *action, repo),
            *want,
            "{addr} {id} {action} {repo}"
        );
    }
    assert!(p.admits_address(vlan) && p.admits_address(node));
    assert!(!p.admits_address(outsider));
    assert!(!p.admits_address(ip("10.11.0.1")));
    assert!(!p.admits_address(ip("::1")));
    assert_eq!(
        p.granted(vlan, &user("alice"), "interns/nb")
            .iter()
            .collect::<Vec<_>>(),
        [Pull, Push]
    );
    assert_eq!(
        p.granted(vlan, &user("carol"), "x")
            .iter()
            .collect::<Vec<_>>(),
        [Pull, Push, Delete]
    );
    assert!(p.granted(outsider, &user("carol"), "x").is_empty());
    assert!(p.may_catalog(vlan, &user("erin")));
    assert!(!p.may_catalog(node, &anon));
}

#[test]
fn default_policy_admits_local_and_private_ranges_only() {
    let p = Policy::new(None).unwrap();
    for a in [
        "127.0.0.1",
        "127.9.9.9",
        "10.200.0.1",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "::1",
        "fd00::1",
        "::ffff:192.168.0.5",
    ] {
        let a = ip(a);
        assert!(p.admits_address(a), "{a}");
        for action in Action::ALL {
            assert!(p.allows(a, &Identity::Anonymous, action, "any/repo"), "{a}");
            assert!(p.allows(a, &user("x"), action, "any/repo"), "{a}");
        }
    }
    for a in [
        "172.32.0.1",
        "8.8.8.8",
        "2001:db8::1",
        "fe80::1",
        "::ffff:8.8.8.8",
    ] {
        let a = ip(a);
        // TEST-NET and public addresses are refused unless this machine has them.
        if local_addresses().contains(&normalize_ip(a)) {
            continue;
        }
        assert!(!p.admits_address(a), "{a}");
        assert!(!p.allows(a, &Identity::Anonymous, Action::Pull, "x"), "{a}");
    }
    for own in local_addresses() {
        assert!(p.admits_address(own), "{own}");
    }
    assert!(p
        .description()
        .contains("anonymous pull, push, delete and catalog"));
    // [access] without rules keeps the default rule.
    let q = policy("[access]\nmax_failed_logins = 3\n");
    assert!(q.allows(ip("10.1.1.1"), &Identity::Anonymous, Action::Push, "a"));
    assert!(!q.admits_address(ip("8.8.8.8")) || local_addresses().contains(&ip("8.8.8.8")));
}

#[test]
fn who_forms_and_signed_in_inherit_anonymous() {
    let p = policy(
        r#"
[access.groups]
ops = ["olga"]
[[access.rule]]
who = ["anonymous"]
allow = ["pull"]
repos = ["public/*"]
[[access.rule]]
who = ["*"]
allow = ["pull"]
repos = ["internal/**"]
[[access.rule]]
who = ["@ops", "zed"]
allow = ["push"]
[[access.rule]]
allow = ["catalog"]
"#,
    );
    let a = ip("198.51.100.1");
    let anon = Identity::Anonymous;
    assert!(p.allows(a, &anon, Action::Pull, "public/x"));
    assert!(p.allows(a, &user("u"), Action::Pull, "public/x"));
    assert!(!p.allows(a, &anon, Action::Pull, "public/x/y"));
    assert!(!p.allows(a, &anon, Action::Pull, "internal/x"));
    assert!(p.allows(a, &user("u"), Action::Pull, "internal/x/y"));
    assert!(p.allows(a, &user("olga"), Action::Push, "anything"));
    assert!(p.allows(a, &user("zed"), Action::Push, "anything"));
    assert!(!p.allows(a, &user("u"), Action::Push, "anything"));
    assert!(!p.allows(a, &anon, Action::Push, "anything"));
    // No `from` anywhere: every address may connect; no `who`: anyone.
    assert!(p.admits_address(ip("2001:db8::9")));
    assert!(p.may_catalog(a, &anon));
}

#[test]
fn literal_cidrs_addresses_and_empty_lists() {
    let p = policy(
        r#"
[access.networks]
v6lab = ["2001:db8:1::/48"]
[[access.rule]]
from = ["v6lab", "198.51.100.0/30", "203.0.113.7"]
allow = ["pull"]
[[access.rule]]
from = ["198.51.100.0/30"]
allow = ["push"]
repos = []
"#,
    );
    let anon = Identity::Anonymous;
    for (a, want) in [
        ("2001:db8:1:ffff::1", true),
        ("2001:db8:2::1", false),
        ("198.51.100.3", true),
        ("198.51.100.4", false),
        ("203.0.113.7", true),
        ("203.0.113.8", false),
    ] {
        assert_eq!(p.allows(ip(a), &anon, Action::Pull, "r"), want, "{a}");
        assert_eq!(p.admits_address(ip(a)), want, "{a}");
    }
    // `repos = []` grants on no repository.
    assert!(!p.allows(ip("198.51.100.1"), &anon, Action::Push, "r"));
}
