//! Dependency resolution: inference, explicit edges, errors, order, levels, selection.

use super::*;
use crate::publish::testutil::Tree;

/// A file of images `(name, Dockerfile, extra TOML lines)`, loaded.
fn setup(images: &[(&str, &str, &str)]) -> (Tree, PublishConfig) {
    let t = Tree::new(&[]);
    let mut toml = String::from("registry = \"registry.example:5000\"\n");
    for (name, dockerfile, extra) in images {
        let dir = name.replace('/', "_");
        t.write(&format!("{dir}/Dockerfile"), dockerfile);
        toml.push_str(&format!(
            "\n[[image]]\nname = \"{name}\"\ncontext = \"{dir}\"\n{extra}"
        ));
    }
    t.write("imgflow.toml", &toml);
    let cfg = PublishConfig::load(&t.toml()).unwrap();
    (t, cfg)
}

fn names(cfg: &PublishConfig, idx: &[usize]) -> Vec<String> {
    idx.iter()
        .map(|&i| cfg.images[i].name.to_string())
        .collect()
}

/// The team's shape: base -> spark -> notebook -> interns, gpu; base -> proxy.
fn team() -> (Tree, PublishConfig) {
    setup(&[
        (
            "team/proxy",
            "ARG REGISTRY\nFROM ${REGISTRY}/team/base:1.0\n",
            "",
        ),
        (
            "team/interns",
            "ARG REGISTRY\nFROM $REGISTRY/team/notebook\n",
            "",
        ),
        ("team/base", "FROM busybox\n", ""),
        (
            "team/spark",
            "FROM registry.example:5000/team/base:1.0 AS b\nFROM b\n",
            "",
        ),
        ("team/notebook", "FROM team/spark@sha256:00\n", ""),
        (
            "team/gpu",
            "FROM busybox\n",
            "depends_on = [\"team/notebook\"]\n",
        ),
    ])
}

#[test]
fn order_and_levels_follow_the_dependencies() {
    let (_t, cfg) = team();
    let g = Graph::build(&cfg, Some("registry.example:5000")).unwrap();
    assert_eq!(
        names(&cfg, g.order()),
        [
            "team/base",
            "team/proxy",
            "team/spark",
            "team/notebook",
            "team/interns",
            "team/gpu"
        ]
    );
    let levels: Vec<Vec<String>> = g.levels().iter().map(|l| names(&cfg, l)).collect();
    assert_eq!(
        levels,
        [
            vec!["team/base"],
            vec!["team/proxy", "team/spark"],
            vec!["team/notebook"],
            vec!["team/interns", "team/gpu"],
        ]
    );
    let spark = cfg
        .images
        .iter()
        .position(|i| i.name.as_str() == "team/spark")
        .unwrap();
    let deps = g.dependencies(spark);
    assert_eq!(deps.len(), 1);
    assert_eq!(cfg.images[deps[0].image].name.as_str(), "team/base");
    assert_eq!(
        deps[0].sources,
        [DepSource::Dockerfile {
            instruction: "FROM",
            line: 1,
            reference: "registry.example:5000/team/base:1.0".into()
        }]
    );
    let gpu = cfg
        .images
        .iter()
        .position(|i| i.name.as_str() == "team/gpu")
        .unwrap();
    assert!(matches!(
        g.dependencies(gpu)[0].sources[0],
        DepSource::DependsOn { .. }
    ));
    assert!(g.warnings(spark).is_empty());
}

#[test]
fn only_references_to_this_registry_or_without_host_count() {
    let (_t, cfg) = setup(&[
        ("team/base", "FROM busybox\n", ""),
        ("team/a", "FROM other.example/team/base\n", ""),
        ("team/b", "FROM localhost:5000/team/base:1\n", ""),
    ]);
    let g = Graph::build(&cfg, Some("registry.example:5000")).unwrap();
    assert!(g.dependencies(1).is_empty() && g.dependencies(2).is_empty());
    let g = Graph::build(&cfg, Some("localhost:5000")).unwrap();
    assert!(g.dependencies(1).is_empty());
    assert_eq!(g.dependencies(2)[0].image, 0);
}

#[test]
fn undeclared_registry_variables_are_warned_about() {
    let (_t, cfg) = setup(&[
        ("team/base", "FROM busybox\n", ""),
        ("team/a", "FROM ${REGISTRY}/team/base\n", ""),
    ]);
    let g = Graph::build(&cfg, Some("registry.example:5000")).unwrap();
    // The builder would use "/team/base": still this file's image, and said so.
    assert_eq!(g.dependencies(1)[0].image, 0);
    assert!(
        g.warnings(1)[0].contains("$REGISTRY"),
        "{:?}",
        g.warnings(1)
    );
}

#[test]
fn cycles_are_named() {
    let (_t, cfg) = setup(&[
        ("team/a", "FROM team/c\n", ""),
        ("team/b", "FROM team/a\n", ""),
        ("team/c", "FROM busybox\n", "depends_on = [\"team/b\"]\n"),
    ]);
    let e = Graph::build(&cfg, None).unwrap_err().to_string();
    assert!(
        e.contains(
            "dependency cycle: team/a -> team/c (FROM team/c, Dockerfile line 1) \
             -> team/b (depends_on, line 14) -> team/a (FROM team/a, Dockerfile line 1)"
        ),
        "{e}"
    );
    let (_t, cfg) = setup(&[("team/a", "FROM team/a:previous\n", "")]);
    let e = Graph::build(&cfg, None).unwrap_err().to_string();
    assert!(e.contains("cycle: team/a -> team/a (FROM"), "{e}");
}

#[test]
fn unknown_and_duplicate_names_are_errors_with_lines() {
    let (_t, cfg) = setup(&[
        ("team/a", "FROM busybox\n", ""),
        (
            "team/b",
            "FROM busybox\n",
            "depends_on = [\"team/a\", \"team/x\"]\n",
        ),
    ]);
    let e = Graph::build(&cfg, None).unwrap_err().to_string();
    assert!(
        e.ends_with("line 10: image team/b depends on team/x, which is no image of this file"),
        "{e}"
    );
    let (_t, cfg) = setup(&[
        ("team/a", "FROM busybox\n", ""),
        ("team/b", "FROM busybox\n", ""),
        ("team/a", "FROM busybox\n", ""),
    ]);
    let e = Graph::build(&cfg, None).unwrap_err().to_string();
    assert!(
        e.ends_with("line 12: image team/a is already defined at line 4"),
        "{e}"
    );
}

#[test]
fn selection_takes_dependencies_and_marks_dependents() {
    let (t, cfg) = team();
    let g = Graph::build(&cfg, Some("registry.example:5000")).unwrap();
    let sel = g.select(&["team/notebook".to_string()], &t.toml()).unwrap();
    let got: Vec<(String, Role)> = sel
        .images
        .iter()
        .map(|&(i, r)| (cfg.images[i].name.to_string(), r))
        .collect();
    let want = [
        ("team/base", Role::Dependency),
        ("team/spark", Role::Dependency),
        ("team/notebook", Role::Selected),
        ("team/interns", Role::RebuildIfParentChanges),
        ("team/gpu", Role::RebuildIfParentChanges),
    ];
    let want: Vec<(String, Role)> = want.iter().map(|(n, r)| (n.to_string(), *r)).collect();
    assert_eq!(got, want, "the proxy is not in it");
    // Naming a parent and its child: both selected.
    let sel = g
        .select(&["team/spark".into(), "team/base".into()], &t.toml())
        .unwrap();
    assert_eq!(sel.images[0].1, Role::Selected);
    assert_eq!(sel.images.len(), 6);
    assert_eq!(g.select(&[], &t.toml()).unwrap().images.len(), 6);
    let e = g.select(&["team/nope".into()], &t.toml()).unwrap_err();
    assert!(
        e.to_string()
            .contains("no image named team/nope (images: team/proxy, "),
        "{e}"
    );
}
