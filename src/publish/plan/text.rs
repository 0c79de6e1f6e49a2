//! The plan as text for a terminal.

use super::{Plan, PlannedImage};
use crate::publish::checks::Counts;
use crate::publish::graph::Role;
use std::fmt::Write;

impl Plan {
    /// The plan as the text `imgflow publish --dry-run` prints.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let source = match &self.git {
            Some(g) => format!("git {}", g.describe()),
            None => "not in a git work tree".to_string(),
        };
        let _ = writeln!(
            out,
            "imgflow publish plan (dry run) of {}",
            self.file.display()
        );
        let _ = writeln!(out, "registry: {}", self.registry);
        let _ = writeln!(out, "source:   {source}, date {}", self.date);
        let _ = writeln!(
            out,
            "order:    {} image(s) in {} level(s); the images of a level build in parallel (--jobs)",
            self.images.len(),
            self.levels.len()
        );
        for (level, names) in &self.levels {
            let _ = writeln!(out, "  level {level}: {}", names.join(", "));
        }
        let run = &self.run;
        let pin = run
            .pin
            .as_ref()
            .map_or("no".to_string(), |p| p.display().to_string());
        let gpu = if run.require_gpu {
            "GPU runtime checks required"
        } else {
            "GPU runtime checks where the daemon can run them"
        };
        let _ = writeln!(out, "run:      --jobs {}, {gpu}, pin {pin}", run.jobs);
        for (n, img) in self.images.iter().enumerate() {
            out.push('\n');
            image_text(&mut out, n + 1, img);
        }
        out
    }
}

fn image_text(out: &mut String, n: usize, img: &PlannedImage) {
    let role = match img.role {
        Role::Selected => "build",
        Role::Dependency => "build: a selected image depends on it",
        Role::RebuildIfParentChanges => "rebuild if a parent's digest changes",
    };
    let _ = writeln!(out, "{n}. {} [level {}; {role}]", img.name, img.level);
    let mut field = |name: &str, value: String| {
        let _ = writeln!(out, "   {:<12} {value}", format!("{name}:"));
    };
    field("context", img.context.display().to_string());
    field("dockerfile", img.dockerfile.display().to_string());
    field(
        "tags",
        or_none(&img.references, "none (pushed by digest only)"),
    );
    let args: Vec<String> = img
        .build_args
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    field("build args", or_none(&args, "none"));
    let deps: Vec<String> = img
        .depends_on
        .iter()
        .map(|d| {
            let how: Vec<String> = d.sources.iter().map(ToString::to_string).collect();
            let kind = match (d.explicit, d.inferred) {
                (true, true) => "explicit and inferred",
                (true, false) => "explicit",
                _ => "inferred",
            };
            format!("{} [{kind}: {}]", d.name, how.join("; "))
        })
        .collect();
    field("depends on", or_none(&deps, "nothing"));
    let checks: Vec<String> = img
        .checks
        .iter()
        .map(|c| format!("{} ({})", c.file.display(), counts_text(&c.counts)))
        .collect();
    field("checks", or_none(&checks, "none"));
    let mb = |v: Option<u64>| v.map_or("none".to_string(), |v| format!("{v} MB"));
    field(
        "budgets",
        format!(
            "size {}, growth over parent {}",
            mb(img.max_size_mb),
            mb(img.max_growth_mb)
        ),
    );
    field("gpu", if img.gpu { "yes" } else { "no" }.to_string());
    field("network", img.network.as_str().to_string());
    for w in &img.warnings {
        field("warning", w.clone());
    }
}

/// `items` joined by ", " (one per line when more than one), or `none`.
fn or_none(items: &[String], none: &str) -> String {
    match items {
        [] => none.to_string(),
        [one] => one.clone(),
        many => many.join(&format!("\n   {:<12} ", "")),
    }
}

fn counts_text(c: &Counts) -> String {
    let kinds = [
        (c.command, "command"),
        (c.file_existence, "file existence"),
        (c.file_content, "file content"),
        (c.metadata, "metadata"),
        (c.license, "license"),
    ];
    let parts: Vec<String> = kinds
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, k)| format!("{n} {k}"))
        .collect();
    if parts.is_empty() {
        "no tests".to_string()
    } else {
        parts.join(", ")
    }
}
