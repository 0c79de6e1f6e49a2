use super::*;
use crate::config::Config;

fn s(text: &str) -> Scope {
    Scope::parse(text).unwrap()
}

#[test]
fn parses_scopes() {
    let x = s("repository:team/app:pull,push");
    assert_eq!(x.resource_type, "repository");
    assert_eq!(x.name, "team/app");
    assert_eq!(x.actions, ["pull", "push"]);
    assert_eq!(s("repository:a:*").actions, ["*"]);
    assert_eq!(s("registry:catalog:*").name, "catalog");
    let plugin = s("repository(plugin):vendor/p:pull");
    assert_eq!(
        (plugin.resource_type.as_str(), plugin.name.as_str()),
        ("repository", "vendor/p")
    );
    // The name may hold ':' (a registry host with a port).
    assert_eq!(s("repository:host:5000/a:pull").name, "host:5000/a");
    assert!(s("repository:a:").actions.is_empty());
    for bad in [
        "",
        "repository",
        "repository:a",
        ":a:pull",
        "repository::pull",
    ] {
        assert!(Scope::parse(bad).is_none(), "{bad}");
    }
    let all = Scope::parse_all([
        "repository:a:pull repository:b:push",
        "bad",
        "registry:catalog:*",
    ]);
    assert_eq!(
        all.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(),
        ["a", "b", "catalog"]
    );
}

fn team() -> Policy {
    let cfg = Config::from_toml(
        r#"
[access.groups]
admins = ["carol"]
[[access.rule]]
who = ["*"]
allow = ["pull", "push"]
repos = ["team/**"]
[[access.rule]]
who = ["@admins"]
allow = ["delete", "catalog"]
"#,
        None,
    )
    .unwrap();
    Policy::new(cfg.access.as_ref()).unwrap()
}

fn actions(entries: &[AccessEntry], name: &str) -> Vec<String> {
    entries
        .iter()
        .find(|e| e.name == name)
        .map(|e| e.actions.clone())
        .unwrap_or_default()
}

#[test]
fn grants_the_intersection_of_asked_and_allowed() {
    let p = team();
    let a: IpAddr = "198.51.100.1".parse().unwrap();
    let dave = Identity::user("dave");
    let carol = Identity::user("carol");
    let got = grant(
        &p,
        a,
        &dave,
        &Scope::parse_all(["repository:team/app:pull,push,delete"]),
    );
    assert_eq!(actions(&got, "team/app"), ["pull", "push"]);
    let got = grant(
        &p,
        a,
        &dave,
        &Scope::parse_all(["repository:other:pull,push"]),
    );
    assert!(got.is_empty());
    let got = grant(&p, a, &carol, &Scope::parse_all(["repository:team/app:*"]));
    assert_eq!(actions(&got, "team/app"), ["pull", "push", "delete"]);
    let got = grant(&p, a, &carol, &Scope::parse_all(["repository:other:*"]));
    assert_eq!(actions(&got, "other"), ["delete"]);
    let got = grant(
        &p,
        a,
        &Identity::Anonymous,
        &Scope::parse_all(["repository:team/app:pull"]),
    );
    assert!(got.is_empty());
    // Unknown actions and types are ignored; the same repository twice is merged.
    let got = grant(
        &p,
        a,
        &dave,
        &Scope::parse_all([
            "repository:team/a:pull,fly",
            "repository:team/a:push",
            "blob:x:pull",
        ]),
    );
    assert_eq!(got.len(), 1);
    assert_eq!(actions(&got, "team/a"), ["pull", "push"]);
    // The catalog.
    let cat = Scope::parse_all(["registry:catalog:*"]);
    assert_eq!(actions(&grant(&p, a, &carol, &cat), "catalog"), ["*"]);
    assert!(grant(&p, a, &dave, &cat).is_empty());
}

#[test]
fn access_claims_allow_exactly_what_they_list() {
    let entries = vec![
        AccessEntry {
            resource_type: "repository".into(),
            name: "team/app".into(),
            actions: vec!["pull".into()],
        },
        AccessEntry {
            resource_type: "registry".into(),
            name: "catalog".into(),
            actions: vec!["*".into()],
        },
    ];
    assert!(access_allows(&entries, Action::Pull, "team/app"));
    assert!(!access_allows(&entries, Action::Push, "team/app"));
    assert!(!access_allows(&entries, Action::Pull, "team/app2"));
    assert!(!access_allows(&entries, Action::Pull, "catalog"));
    assert!(access_allows(&entries, Action::Catalog, ""));
    assert!(!access_allows(&entries[..1], Action::Catalog, ""));
}
