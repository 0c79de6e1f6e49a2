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
    /// What happened.
    pub outcome: Outcome,
}

#[derive(Serialize)]
struct JsonCase<'a> {
    id: &'a str,
    category: Category,
    result: &'a str,
    detail: &'a str,
}

/// All cases of a run, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The cases.
    pub cases: Vec<CaseReport>,
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

    /// The closing line: `N passed, N failed, N skipped`.
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed(),
            self.failed(),
            self.skipped()
        )
    }

    /// One line per case, then the closing line.
    pub fn human(&self) -> String {
        let mut out = String::new();
        for c in &self.cases {
            let tag = c.outcome.label().to_uppercase();
            match &c.outcome {
                Outcome::Pass => out.push_str(&format!("{tag} {}\n", c.id)),
                other => out.push_str(&format!("{tag} {}: {}\n", c.id, other.detail())),
            }
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// The machine-readable report: an array of `{id, category, result, detail}`.
    pub fn json(&self) -> String {
        let cases: Vec<JsonCase<'_>> = self
            .cases
            .iter()
            .map(|c| JsonCase {
                id: &c.id,
                category: c.category,
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
        let case = |id: &str, outcome| CaseReport {
            id: id.to_string(),
            category: Category::Push,
            outcome,
        };
        Report {
            cases: vec![
                case("push/a", Outcome::Pass),
                case("push/b", Outcome::Fail("expected 201, got 400".into())),
                case("push/c", Outcome::Skip("optional".into())),
            ],
        }
    }

    #[test]
    fn human_report_ends_with_the_counts() {
        let text = sample().human();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "PASS push/a");
        assert_eq!(lines[1], "FAIL push/b: expected 201, got 400");
        assert_eq!(lines[2], "SKIP push/c: optional");
        assert_eq!(lines[3], "1 passed, 1 failed, 1 skipped");
        assert_eq!(sample().failed_ids(), vec!["push/b"]);
    }

    #[test]
    fn json_report_has_the_documented_fields() {
        let v: serde_json::Value = serde_json::from_str(&sample().json()).unwrap();
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 3);
        assert_eq!(arr[1]["id"], "push/b");
        assert_eq!(arr[1]["category"], "push");
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
