//! The dependency graph of the images of an `imgflow.toml`: declared `depends_on` plus
//! what each Dockerfile's `FROM` and `COPY --from=` name, its build order, its levels
//! (images of one level do not depend on each other, so they may build in parallel),
//! and the selection of `imgflow publish IMAGE...`.

use super::config::{ImageSpec, PublishConfig};
use super::dockerfile::{image_refs, split_reference};
use super::file_error::{read, FileError};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Errors resolving the graph.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Two images have the same name.
    #[error("{}, line {line}: image {name} is already defined at line {first_line}", .file.display())]
    Duplicate {
        /// The imgflow.toml.
        file: PathBuf,
        /// The name.
        name: String,
        /// Line of the first definition.
        first_line: usize,
        /// Line of the second.
        line: usize,
    },
    /// `depends_on` names no image of the file.
    #[error("{}, line {line}: image {image} depends on {name}, which is no image of this file", .file.display())]
    UnknownDependency {
        /// The imgflow.toml.
        file: PathBuf,
        /// The image declaring it.
        image: String,
        /// The unknown name.
        name: String,
        /// Line of the `depends_on` entry.
        line: usize,
    },
    /// The images depend on each other in a circle.
    #[error("{}: dependency cycle: {}", .file.display(), .cycle.join(" -> "))]
    Cycle {
        /// The imgflow.toml.
        file: PathBuf,
        /// The images of the cycle, the first repeated at the end, each step with where
        /// it is declared.
        cycle: Vec<String>,
    },
    /// A Dockerfile could not be read.
    #[error(transparent)]
    Dockerfile(#[from] FileError),
    /// `IMAGE...` names no image of the file.
    #[error("{}: no image named {name} (images: {known})", .file.display())]
    UnknownImage {
        /// The imgflow.toml.
        file: PathBuf,
        /// The name given.
        name: String,
        /// The names the file has, comma separated.
        known: String,
    },
}

/// Why one image depends on another.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DepSource {
    /// Declared in `depends_on`, at this line of imgflow.toml.
    DependsOn {
        /// The line.
        line: usize,
    },
    /// Named by the Dockerfile.
    Dockerfile {
        /// `FROM` or `COPY --from`.
        instruction: &'static str,
        /// Line in the Dockerfile.
        line: usize,
        /// The reference as written.
        reference: String,
    },
}

impl fmt::Display for DepSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DepSource::DependsOn { line } => write!(f, "depends_on, line {line}"),
            DepSource::Dockerfile {
                instruction,
                line,
                reference,
            } => write!(f, "{instruction} {reference}, Dockerfile line {line}"),
        }
    }
}

/// One dependency of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// Index of the image depended on in [`PublishConfig::images`].
    pub image: usize,
    /// Every place that says so.
    pub sources: Vec<DepSource>,
}

/// The resolved graph.
#[derive(Debug, Clone)]
pub struct Graph {
    names: Vec<String>,
    deps: Vec<Vec<Dependency>>,
    warnings: Vec<Vec<String>>,
    order: Vec<usize>,
    levels: Vec<usize>,
}

/// What a run does with an image of the selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Named on the command line (or every image when none is named): built.
    Selected,
    /// Something selected depends on it: built (or found unchanged) first.
    Dependency,
    /// It depends on something selected: rebuilt only when a parent's digest changes.
    RebuildIfParentChanges,
}

/// The images one run considers, in build order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// `(image index, role)` in build order.
    pub images: Vec<(usize, Role)>,
}

impl Graph {
    /// Resolve the graph of `cfg`, with `registry` (if known) as the host that makes a
    /// `FROM` reference one of the file's images.
    pub fn build(cfg: &PublishConfig, registry: Option<&str>) -> Result<Graph, GraphError> {
        let file = || cfg.path.clone();
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, img) in cfg.images.iter().enumerate() {
            if let Some(&first) = index.get(img.name.as_str()) {
                return Err(GraphError::Duplicate {
                    file: file(),
                    name: img.name.to_string(),
                    first_line: cfg.images[first].line,
                    line: img.line,
                });
            }
            index.insert(img.name.as_str(), i);
        }
        let mut deps = Vec::with_capacity(cfg.images.len());
        let mut warnings = Vec::with_capacity(cfg.images.len());
        for img in &cfg.images {
            let mut found: BTreeMap<usize, Vec<DepSource>> = BTreeMap::new();
            for d in &img.depends_on {
                let Some(&j) = index.get(d.name.as_str()) else {
                    return Err(GraphError::UnknownDependency {
                        file: file(),
                        image: img.name.to_string(),
                        name: d.name.clone(),
                        line: d.line,
                    });
                };
                found
                    .entry(j)
                    .or_default()
                    .push(DepSource::DependsOn { line: d.line });
            }
            let mut notes = Vec::new();
            for (j, source) in inferred(img, registry, &index, &mut notes)? {
                found.entry(j).or_default().push(source);
            }
            warnings.push(notes);
            deps.push(
                found
                    .into_iter()
                    .map(|(image, sources)| Dependency { image, sources })
                    .collect::<Vec<_>>(),
            );
        }
        let names = cfg.images.iter().map(|i| i.name.to_string()).collect();
        let mut graph = Graph {
            names,
            deps,
            warnings,
            order: Vec::new(),
            levels: Vec::new(),
        };
        graph.sort().map_err(|cycle| GraphError::Cycle {
            file: file(),
            cycle,
        })?;
        Ok(graph)
    }

    /// Build order (by level, then the file's order) and levels, or
    /// the description of a cycle.
    fn sort(&mut self) -> Result<(), Vec<String>> {
        let n = self.names.len();
        let mut levels = vec![0usize; n];
        let mut done = vec![false; n];
        let mut order = Vec::with_capacity(n);
        while order.len() < n {
            let ready = (0..n).find(|&i| !done[i] && self.deps[i].iter().all(|d| done[d.image]));
            let Some(i) = ready else {
                return Err(self.describe_cycle(&done));
            };
            levels[i] = self.deps[i]
                .iter()
                .map(|d| levels[d.image] + 1)
                .max()
                .unwrap_or(0);
            done[i] = true;
            order.push(i);
        }
        // Level by level (a dependency is always on an earlier level), the file's order
        // within one.
        order.sort_by_key(|&i| (levels[i], i));
        self.order = order;
        self.levels = levels;
        Ok(())
    }

    /// A cycle among the images not `done`: every one of them has an unfinished
    /// dependency, so following those must come back to an image already visited.
    fn describe_cycle(&self, done: &[bool]) -> Vec<String> {
        let start = done.iter().position(|d| !d).unwrap_or(0);
        let mut path: Vec<(usize, Option<&Dependency>)> = vec![(start, None)];
        loop {
            let (cur, _) = path[path.len() - 1];
            let Some(next) = self.deps[cur].iter().find(|d| !done[d.image]) else {
                return vec![self.names[cur].clone()];
            };
            if let Some(pos) = path.iter().position(|(i, _)| *i == next.image) {
                path.push((next.image, Some(next)));
                let cycle = &path[pos..];
                return cycle
                    .iter()
                    .map(|(i, via)| match via {
                        None => self.names[*i].clone(),
                        Some(d) => format!("{} ({})", self.names[*i], d.sources[0]),
                    })
                    .collect();
            }
            path.push((next.image, Some(next)));
        }
    }

    /// Image indices in build order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The level of image `i`: 0 without dependencies, else one more than its deepest
    /// dependency.
    pub fn level(&self, i: usize) -> usize {
        self.levels[i]
    }

    /// The images of each level, in build order; the images of one level may build in
    /// parallel once the levels before it are done.
    pub fn levels(&self) -> Vec<Vec<usize>> {
        let mut out: Vec<Vec<usize>> = Vec::new();
        for &i in &self.order {
            let l = self.levels[i];
            if out.len() <= l {
                out.resize_with(l + 1, Vec::new);
            }
            out[l].push(i);
        }
        out
    }

    /// The direct dependencies of image `i`.
    pub fn dependencies(&self, i: usize) -> &[Dependency] {
        &self.deps[i]
    }

    /// Notes about image `i`'s Dockerfile (such as a variable no `ARG` declares).
    pub fn warnings(&self, i: usize) -> &[String] {
        &self.warnings[i]
    }

    /// The images that depend on image `i` directly.
    pub fn dependents(&self, i: usize) -> Vec<usize> {
        (0..self.names.len())
            .filter(|&j| self.deps[j].iter().any(|d| d.image == i))
            .collect()
    }

    /// The images a run with `names` considers: every image when `names` is empty,
    /// else the named ones, what they depend on (transitively), and what depends on them
    /// (transitively, rebuilt only when a parent's digest changes). `file` is named in
    /// the error for an unknown name.
    pub fn select(&self, names: &[String], file: &Path) -> Result<Selection, GraphError> {
        let n = self.names.len();
        if names.is_empty() {
            let images = self.order.iter().map(|&i| (i, Role::Selected)).collect();
            return Ok(Selection { images });
        }
        let mut roles: Vec<Option<Role>> = vec![None; n];
        let mut stack = Vec::new();
        for name in names {
            let Some(i) = self.names.iter().position(|x| x == name) else {
                return Err(GraphError::UnknownImage {
                    file: file.to_path_buf(),
                    name: name.clone(),
                    known: self.names.join(", "),
                });
            };
            roles[i] = Some(Role::Selected);
            stack.push(i);
        }
        let selected = stack.clone();
        while let Some(i) = stack.pop() {
            for d in &self.deps[i] {
                if roles[d.image].is_none() {
                    roles[d.image] = Some(Role::Dependency);
                    stack.push(d.image);
                }
            }
        }
        stack = selected;
        while let Some(i) = stack.pop() {
            for j in self.dependents(i) {
                if roles[j].is_none() {
                    roles[j] = Some(Role::RebuildIfParentChanges);
                    stack.push(j);
                }
            }
        }
        let images = self
            .order
            .iter()
            .filter_map(|&i| roles[i].map(|r| (i, r)))
            .collect();
        Ok(Selection { images })
    }
}

/// The images of the file that `img`'s Dockerfile names, with where.
fn inferred(
    img: &ImageSpec,
    registry: Option<&str>,
    index: &BTreeMap<&str, usize>,
    notes: &mut Vec<String>,
) -> Result<Vec<(usize, DepSource)>, GraphError> {
    let text = read(&img.dockerfile)?;
    let args = img.build_args_with(registry);
    let mut out = Vec::new();
    for r in image_refs(&text, &args) {
        for var in &r.undeclared {
            notes.push(format!(
                "Dockerfile line {}: {} uses ${var}, which no ARG before the first FROM declares (the builder substitutes \"\")",
                r.line, r.instruction
            ));
        }
        let Some(resolved) = &r.resolved else {
            notes.push(format!(
                "Dockerfile line {}: cannot resolve {} {}; dependencies it names are not inferred",
                r.line, r.instruction, r.written
            ));
            continue;
        };
        let parts = split_reference(resolved);
        let ours = match (parts.host, registry) {
            (None, _) => true,
            (Some(h), Some(reg)) => h == reg,
            (Some(_), None) => false,
        };
        if let Some(&j) = index.get(parts.repository).filter(|_| ours) {
            let source = DepSource::Dockerfile {
                instruction: r.instruction,
                line: r.line,
                reference: r.written.clone(),
            };
            out.push((j, source));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
