//! Plans: the shipped example, overrides, selection and errors.

use super::*;
use crate::publish::tags::TagContext;
use crate::publish::testutil::{example_toml, Tree};

fn options(images: &[&str], registry: Option<&str>) -> PlanOptions {
    PlanOptions {
        run: RunSettings {
            jobs: 2,
            ..RunSettings::default()
        },
        registry: registry.map(str::to_string),
        images: images.iter().map(|s| s.to_string()).collect(),
        tags: TagContext {
            git: Some(GitState {
                commit: "abc1234".into(),
                dirty: false,
            }),
            date: "20261202".into(),
        },
    }
}

fn example(images: &[&str], registry: Option<&str>) -> Plan {
    let cfg = PublishConfig::load(&example_toml()).unwrap();
    Plan::build(&cfg, &options(images, registry)).unwrap()
}

fn image<'a>(plan: &'a Plan, name: &str) -> &'a PlannedImage {
    plan.images.iter().find(|i| i.name == name).unwrap()
}

#[test]
fn the_shipped_example_plans_in_dependency_order() {
    let plan = example(&[], None);
    let order: Vec<&str> = plan.images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        order,
        [
            "team/base",
            "team/spark",
            "team/socks-proxy",
            "team/spark-notebook",
            "team/interns-notebook",
            "team/gpu-notebook"
        ]
    );
    assert_eq!(plan.levels.len(), 4);
    assert_eq!(plan.levels[&1], ["team/spark", "team/socks-proxy"]);
    assert_eq!(
        plan.levels[&3],
        ["team/interns-notebook", "team/gpu-notebook"]
    );
    assert!(plan.images.iter().all(|i| i.role == Role::Selected));
    assert!(
        plan.images.iter().all(|i| i.warnings.is_empty()),
        "{plan:#?}"
    );

    let base = image(&plan, "team/base");
    assert_eq!(base.level, 0);
    assert!(base.depends_on.is_empty());
    assert_eq!(base.tags, ["1.0", "abc1234"]);
    assert_eq!(base.build_args["BASE_IMAGE"], "imgflow-test/busybox:latest");
    assert_eq!(base.build_args["REGISTRY"], "registry.example:5000");
    assert!(base.context.ends_with("config/images/base"));
    assert!(base.dockerfile.ends_with("config/images/base/Dockerfile"));
    let c = base.checks[0].counts;
    assert!(c.command > 0 && c.file_existence > 0 && c.file_content > 0);
    assert_eq!((c.metadata, c.license), (1, 1));

    let nb = image(&plan, "team/spark-notebook");
    assert_eq!(
        nb.references,
        [
            "registry.example:5000/team/spark-notebook:3.5.1",
            "registry.example:5000/team/spark-notebook:abc1234",
            "registry.example:5000/team/spark-notebook:nightly-20261202"
        ]
    );
    assert_eq!(nb.depends_on.len(), 1);
    assert_eq!(nb.depends_on[0].name, "team/spark");
    assert!(nb.depends_on[0].inferred && !nb.depends_on[0].explicit);

    let proxy = image(&plan, "team/socks-proxy");
    assert!(proxy.depends_on[0].inferred && proxy.depends_on[0].explicit);
    assert_eq!(proxy.network, Network::Host);
    let interns = image(&plan, "team/interns-notebook");
    assert_eq!(interns.checks.len(), 2);
    assert_eq!(interns.depends_on[0].name, "team/spark-notebook");
    let gpu = image(&plan, "team/gpu-notebook");
    assert!(gpu.gpu && !base.gpu);
    assert_eq!((gpu.max_size_mb, gpu.max_growth_mb), (None, Some(4000)));
}

#[test]
fn the_text_shows_every_field() {
    let text = example(&[], None).to_text();
    for want in [
        "registry: registry.example:5000",
        "source:   git abc1234, date 20261202",
        "order:    6 image(s) in 4 level(s)",
        "  level 1: team/spark, team/socks-proxy",
        "run:      --jobs 2,",
        "1. team/base [level 0; build]",
        "registry.example:5000/team/spark-notebook:nightly-20261202",
        "REGISTRY=registry.example:5000",
        "team/base [explicit and inferred: depends_on, line ",
        "team/spark-notebook [inferred: FROM $REGISTRY/team/spark-notebook:3.5.1, Dockerfile line 4]",
        "base.yaml (3 command, 3 file existence, 1 file content, 1 metadata, 1 license)",
        "budgets:     size 20 MB, growth over parent none",
        "gpu:         yes",
        "network:     host",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let text = example(&["team/spark-notebook"], None).to_text();
    assert!(text.contains("1. team/base [level 0; build: a selected image depends on it]"));
    assert!(text.contains("3. team/spark-notebook [level 2; build]"));
    assert!(
        text.contains("4. team/interns-notebook [level 3; rebuild if a parent's digest changes]")
    );
    assert!(!text.contains("socks-proxy"), "{text}");
}

#[test]
fn the_json_is_one_document_with_the_same_fields() {
    let plan = example(&["team/spark-notebook"], Some("127.0.0.1:5000"));
    let v = serde_json::to_value(&plan).unwrap();
    assert_eq!(v["registry"], "127.0.0.1:5000");
    assert_eq!(v["git"]["commit"], "abc1234");
    let images = v["images"].as_array().unwrap();
    let names: Vec<&str> = images.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "team/base",
            "team/spark",
            "team/spark-notebook",
            "team/interns-notebook",
            "team/gpu-notebook"
        ],
        "the proxy is not in a run of the notebook"
    );
    assert_eq!(images[0]["role"], "dependency");
    assert_eq!(images[2]["role"], "selected");
    assert_eq!(images[3]["role"], "rebuild-if-parent-changes");
    assert_eq!(images[2]["build_args"]["REGISTRY"], "127.0.0.1:5000");
    assert_eq!(
        images[2]["references"][0],
        "127.0.0.1:5000/team/spark-notebook:3.5.1"
    );
    assert_eq!(
        images[1]["depends_on"][0]["sources"][0]["kind"],
        "dockerfile"
    );
    assert_eq!(
        images[1]["depends_on"][0]["sources"][0]["instruction"],
        "FROM"
    );
    assert_eq!(images[4]["network"], "none");
    assert_eq!(images[4]["gpu"], true);
    assert_eq!(images[0]["checks"][0]["counts"]["license"], 1);
    assert_eq!(v["levels"]["2"][0], "team/spark-notebook");
    assert_eq!(v["run"]["jobs"], 2);
}

/// A one-image file whose tags are `tags` and registry line is `registry`.
fn small(registry: &str, tags: &str) -> (Tree, PublishConfig) {
    let t = Tree::new(&[("img/Dockerfile", "FROM busybox\n")]);
    t.write(
        "imgflow.toml",
        &format!("{registry}\n[[image]]\nname = \"a\"\ncontext = \"img\"\ntags = {tags}\n"),
    );
    let cfg = PublishConfig::load(&t.toml()).unwrap();
    (t, cfg)
}

#[test]
fn errors_before_anything_is_built() {
    let (_t, cfg) = small("", "[\"1\"]");
    let e = Plan::build(&cfg, &options(&[], None)).unwrap_err();
    assert!(matches!(e, PlanError::NoRegistry { .. }), "{e}");
    assert!(Plan::build(&cfg, &options(&[], Some("r.example"))).is_ok());
    let e = Plan::build(&cfg, &options(&[], Some("https://r.example"))).unwrap_err();
    assert!(e.to_string().starts_with("--registry: "), "{e}");

    let (_t, cfg) = small("registry = \"r.example\"", "[\"{git}\"]");
    let mut opts = options(&[], None);
    opts.tags.git = None;
    let e = Plan::build(&cfg, &opts).unwrap_err().to_string();
    assert!(
        e.contains("line 3: image a: tag \"{git}\" uses {git}"),
        "{e}"
    );

    opts.tags = options(&[], None).tags;
    opts.run.pin = Some("/nonexistent/stack.yml".into());
    let e = Plan::build(&cfg, &opts).unwrap_err().to_string();
    assert_eq!(e, "--pin /nonexistent/stack.yml: no such file");

    let (t, cfg) = small("registry = \"r.example\"", "[]");
    let plan = Plan::build(&cfg, &options(&[], None)).unwrap();
    assert!(plan.images[0].references.is_empty());
    assert!(plan.to_text().contains("none (pushed by digest only)"));

    // A bad check file stops the plan, with its line.
    t.write("c.yaml", "schemaVersion: \"2.0.0\"\ncommandTest: []\n");
    t.write(
        "imgflow.toml",
        "registry = \"r.example\"\n[[image]]\nname = \"a\"\ncontext = \"img\"\nchecks = [\"c.yaml\"]\n",
    );
    let cfg = PublishConfig::load(&t.toml()).unwrap();
    let e = Plan::build(&cfg, &options(&[], None)).unwrap_err();
    assert!(
        e.to_string()
            .contains("c.yaml, line 2: unknown field `commandTest`"),
        "{e}"
    );
}
