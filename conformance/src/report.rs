//! Case results and the run report (human lines or JSON).

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// The four workflow categories of the distribution spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Pulling blobs and manifests.
    Pull,
    /// Pushing blobs (monolithic, chunked, mounts) and manifests.
    Push,
    /// Listing tags, the catalog and referrers.
    Discovery,
    /// Deleting tags, manifests and blobs.
    Management,
}

impl Category {
    /// All categories, in run order.
    pub const ALL: [Category; 4] = [
        Category::Pull,
        Category::Push,
        Category::Discovery,
        Category::Management,
    ];

    /// The category's name, also the first component of its case ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Pull => "pull",
            Category::Push => "push",
            Category::Discovery => "discovery",
            Category::Management => "management",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Category {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s.trim())
            .ok_or_else(|| {
                format!("unknown category {s:?} (expected pull, push, discovery or management)")
            })
    }
}

/// How strongly the spec asks for what a case checks (RFC 2119 keywords).
///
/// A registry may legitimately differ on SHOULD and MAY behaviour, so a run fails (exit
/// status 1) only on MUST failures unless `--strict` is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Level {
    /// Required of every conforming registry (of the category it claims).
    #[serde(rename = "MUST")]
    Must,
    /// Recommended: a registry may have reasons to differ.
    #[serde(rename = "SHOULD")]
    Should,
    /// Optional behaviour (or a de facto convention the spec leaves open).
    #[serde(rename = "MAY")]
    May,
}

impl Level {
    /// All levels, strongest first.
    pub const ALL: [Level; 3] = [Level::Must, Level::Should, Level::May];

    /// `MUST`, `SHOULD` or `MAY`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
            Level::May => "MAY",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The registry behaved as the spec requires.
    Pass,
    /// It did not; the text names the request, what was expected and what came back.
    Fail(String),
    /// The case could not apply (e.g. an optional API the registry does not offer).
    Skip(String),
}

impl Outcome {
    /// `pass`, `fail` or `skip`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail(_) => "fail",
            Outcome::Skip(_) => "skip",
        }
    }

    /// The reason of a failure or skip (empty for a pass).
    pub fn detail(&self) -> &str {
        match self {
            Outcome::Pass => "",
            Outcome::Fail(d) | Outcome::Skip(d) => d,
        }
    }
}

/// One case of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseReport {
    /// Stable id such as `push/chunked/out-of-order-416`.
    pub id: String,
    /// Its category.
    pub category: Category,
    /// How strongly the spec asks for the behaviour checked.
    pub level: Level,
    /// What happened.
    pub outcome: Outcome,
}

#[derive(Serialize)]
struct JsonCase<'a> {
    id: &'a str,
    category: Category,
    level: Level,
    result: &'a str,
    detail: &'a str,
}

/// All cases of a run, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The cases.
    pub cases: Vec<CaseReport>,
    /// What teardown deleted (`None` when the run kept its content).
    pub teardown: Option<crate::teardown::Teardown>,
}

impl Report {
    fn count(&self, label: &str) -> usize {
        self.cases
            .iter()
            .filter(|c| c.outcome.label() == label)
            .count()
    }

    /// Number of passed cases.
    pub fn passed(&self) -> usize {
        self.count("pass")
    }

    /// Number of failed cases.
    pub fn failed(&self) -> usize {
        self.count("fail")
    }

    /// Number of skipped cases.
    pub fn skipped(&self) -> usize {
        self.count("skip")
    }

    /// Ids of the failed cases.
    pub fn failed_ids(&self) -> Vec<&str> {
        self.cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Fail(_)))
            .map(|c| c.id.as_str())
            .collect()
    }

    /// Number of failed cases of `level`.
    pub fn failed_at(&self, level: Level) -> usize {
        self.cases
            .iter()
            .filter(|c| c.level == level && matches!(c.outcome, Outcome::Fail(_)))
            .count()
    }

    /// Whether the run succeeds: no MUST case failed, or with `strict` no case at all.
    pub fn succeeded(&self, strict: bool) -> bool {
        if strict {
            self.failed() == 0
        } else {
            self.failed_at(Level::Must) == 0
        }
    }

    /// The closing line: `N passed, N failed, N skipped`, the failures split by level
    /// when there are any (`N failed (N MUST, N SHOULD, N MAY)`).
    pub fn summary(&self) -> String {
        let failed = if self.failed() == 0 {
            "0 failed".to_string()
        } else {
            let by_level: Vec<String> = Level::ALL
                .iter()
                .map(|l| format!("{} {l}", self.failed_at(*l)))
                .collect();
            format!("{} failed ({})", self.failed(), by_level.join(", "))
        };
        format!(
            "{} passed, {failed}, {} skipped",
            self.passed(),
            self.skipped()
        )
    }

    /// One line per case (`PASS id`, `FAIL id: detail`, `SKIP id: reason`; cases of SHOULD
    /// or MAY behaviour carry the level after the id), then the closing line.
    pub fn human(&self) -> String {
        let mut out = String::new();
        for c in &self.cases {
            let tag = c.outcome.label().to_uppercase();
            let level = match c.level {
                Level::Must => String::new(),
                other => format!(" ({other})"),
            };
            match &c.outcome {
                Outcome::Pass => out.push_str(&format!("{tag} {}{level}\n", c.id)),
                other => out.push_str(&format!("{tag} {}{level}: {}\n", c.id, other.detail())),
            }
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// The machine-readable report: an array of `{id, category, level, result, detail}`.
    pub fn json(&self) -> String {
        let cases: Vec<JsonCase<'_>> = self
            .cases
            .iter()
            .map(|c| JsonCase {
                id: &c.id,
                category: c.category,
                level: c.level,
                result: c.outcome.label(),
                detail: c.outcome.detail(),
            })
            .collect();
        serde_json::to_string_pretty(&cases).unwrap_or_else(|_| "[]".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let case = |id: &str, level, outcome| CaseReport {
            id: id.to_string(),
            category: Category::Push,
            level,
            outcome,
        };
        Report {
            cases: vec![
                case("push/a", Level::Must, Outcome::Pass),
                case(
                    "push/b",
                    Level::Must,
                    Outcome::Fail("expected 201, got 400".into()),
                ),
                case("push/c", Level::May, Outcome::Skip("optional".into())),
                case("push/d", Level::Should, Outcome::Fail("no 416".into())),
            ],
            teardown: None,
        }
    }

    #[test]
    fn human_report_ends_with_the_counts() {
        let text = sample().human();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "PASS push/a");
        assert_eq!(lines[1], "FAIL push/b: expected 201, got 400");
        assert_eq!(lines[2], "SKIP push/c (MAY): optional");
        assert_eq!(lines[3], "FAIL push/d (SHOULD): no 416");
        assert_eq!(
            lines[4],
            "1 passed, 2 failed (1 MUST, 1 SHOULD, 0 MAY), 1 skipped"
        );
        assert_eq!(sample().failed_ids(), vec!["push/b", "push/d"]);
    }

    #[test]
    fn only_must_failures_fail_a_run_unless_strict() {
        let mut r = sample();
        assert!(!r.succeeded(false) && !r.succeeded(true));
        r.cases.remove(1);
        assert!(
            r.succeeded(false),
            "a SHOULD failure fails only a strict run"
        );
        assert!(!r.succeeded(true));
        r.cases.pop();
        assert!(r.succeeded(false) && r.succeeded(true));
        assert_eq!(r.summary(), "1 passed, 0 failed, 1 skipped");
    }

    #[test]
    fn json_report_has_the_documented_fields() {
        let v: serde_json::Value = serde_json::from_str(&sample().json()).unwrap();
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 4);
        assert_eq!(arr[1]["id"], "push/b");
        assert_eq!(arr[1]["category"], "push");
        assert_eq!(arr[1]["level"], "MUST");
        assert_eq!(arr[2]["level"], "MAY");
        assert_eq!(arr[1]["result"], "fail");
        assert_eq!(arr[1]["detail"], "expected 201, got 400");
        assert_eq!(arr[0]["detail"], "");
    }

    #[test]
    fn categories_parse() {
        assert_eq!("discovery".parse::<Category>(), Ok(Category::Discovery));
        assert!("pulls".parse::<Category>().is_err());
    }
}
