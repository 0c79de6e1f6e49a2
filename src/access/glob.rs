//! Repository globs of `[[access.rule]] repos`.
//!
//! A glob is matched against a repository name segment by segment (segments are separated
//! by `/`):
//! - a segment `**` matches any number of whole segments, zero included: `**` matches every
//!   repository, `interns/**` matches `interns`, `interns/nb` and `interns/a/b`, and
//!   `**/cache` matches `cache` and `ci/x/cache`;
//! - `*` inside a segment matches any characters except `/`: `*` is exactly one segment,
//!   `team-*` matches `team-a` but not `team-a/b`;
//! - anything else matches itself.

/// A compiled repository glob; matching never allocates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoGlob {
    segs: Vec<Seg>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// `**`: zero or more segments.
    AnyDepth,
    /// A segment pattern split at its `*`s: `a*b*c` is `["a", "b", "c"]`, `*` is `["", ""]`.
    Pattern(Vec<Box<str>>),
}

/// Why a glob was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// Empty glob or empty segment (`a//b`, a leading or trailing `/`).
    #[error("empty path segment in repository glob {0:?}")]
    EmptySegment(String),
    /// `**` mixed with other characters in one segment (`a**`).
    #[error("`**` must be a whole path segment in repository glob {0:?}")]
    PartialAnyDepth(String),
}

impl RepoGlob {
    /// Compile `pattern`.
    pub fn new(pattern: &str) -> Result<RepoGlob, GlobError> {
        let mut segs = Vec::new();
        for seg in pattern.split('/') {
            if seg.is_empty() {
                return Err(GlobError::EmptySegment(pattern.to_string()));
            }
            if seg == "**" {
                // `**/**` is `**`.
                if segs.last() != Some(&Seg::AnyDepth) {
                    segs.push(Seg::AnyDepth);
                }
            } else if seg.contains("**") {
                return Err(GlobError::PartialAnyDepth(pattern.to_string()));
            } else {
                segs.push(Seg::Pattern(seg.split('*').map(Box::from).collect()));
            }
        }
        Ok(RepoGlob { segs })
    }

    /// Whether this glob is `**`, which matches every repository.
    pub fn matches_everything(&self) -> bool {
        self.segs == [Seg::AnyDepth]
    }

    /// Whether the repository `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        !name.is_empty() && match_segs(&self.segs, Some(name))
    }
}

/// Match `segs` against `rest` (`None`: no segment left).
fn match_segs(segs: &[Seg], rest: Option<&str>) -> bool {
    let Some((first, more)) = segs.split_first() else {
        return rest.is_none();
    };
    match first {
        Seg::AnyDepth => {
            if more.is_empty() {
                return true;
            }
            // Try every suffix of whole segments, the whole of `rest` first.
            let mut tail = rest;
            loop {
                if match_segs(more, tail) {
                    return true;
                }
                match tail {
                    None => return false,
                    Some(t) => tail = t.split_once('/').map(|(_, after)| after),
                }
            }
        }
        Seg::Pattern(parts) => {
            let Some(rest) = rest else { return false };
            let (seg, after) = match rest.split_once('/') {
                Some((seg, after)) => (seg, Some(after)),
                None => (rest, None),
            };
            match_segment(parts, seg) && match_segs(more, after)
        }
    }
}

/// Whether `seg` matches the pattern whose literal pieces between `*`s are `parts`.
fn match_segment(parts: &[Box<str>], seg: &str) -> bool {
    let [first, middle @ .., last] = parts else {
        // No `*`: a literal.
        return parts.first().is_some_and(|p| **p == *seg);
    };
    let Some(mut rest) = seg.strip_prefix(&**first) else {
        return false;
    };
    for part in middle {
        match rest.find(&**part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(&**last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(glob: &str, name: &str) -> bool {
        RepoGlob::new(glob).unwrap().matches(name)
    }

    #[test]
    fn double_star_matches_everything() {
        for name in ["a", "a/b", "interns/a/b/c", "x-y_z.1"] {
            assert!(m("**", name), "{name}");
        }
        assert!(RepoGlob::new("**").unwrap().matches_everything());
        assert!(RepoGlob::new("**/**").unwrap().matches_everything());
        assert!(!RepoGlob::new("a/**").unwrap().matches_everything());
        assert!(!m("**", ""));
    }

    #[test]
    fn prefix_double_star_matches_any_depth_including_zero() {
        assert!(m("interns/**", "interns/nb"));
        assert!(m("interns/**", "interns/a/b"));
        assert!(m("interns/**", "interns"));
        assert!(!m("interns/**", "internsx/a"));
        assert!(!m("interns/**", "team/interns/a"));
        assert!(!m("interns/**", "intern"));
    }

    #[test]
    fn double_star_in_the_middle_and_at_the_start() {
        assert!(m("a/**/z", "a/z"));
        assert!(m("a/**/z", "a/b/c/z"));
        assert!(!m("a/**/z", "a/b/c/y"));
        assert!(!m("a/**/z", "a/z/y"));
        assert!(m("**/cache", "cache"));
        assert!(m("**/cache", "ci/x/cache"));
        assert!(!m("**/cache", "ci/cachex"));
    }

    #[test]
    fn single_star_is_one_segment() {
        assert!(m("*", "alpine"));
        assert!(!m("*", "library/alpine"));
        assert!(m("library/*", "library/alpine"));
        assert!(!m("library/*", "library"));
        assert!(!m("library/*", "library/a/b"));
        assert!(m("*/*", "a/b"));
        assert!(!m("*/*", "a"));
    }

    #[test]
    fn star_inside_a_segment() {
        assert!(m("team-*", "team-a"));
        assert!(m("team-*", "team-"));
        assert!(!m("team-*", "team-a/b"));
        assert!(!m("team-*", "xteam-a"));
        assert!(m("*-cache", "build-cache"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "a-b-b-c"));
        assert!(!m("a*b*c", "a-c-b"));
        assert!(!m("ab*ba", "aba"));
    }

    #[test]
    fn literals_match_exactly() {
        assert!(m("library/alpine", "library/alpine"));
        assert!(!m("library/alpine", "library/alpine2"));
        assert!(!m("library/alpine", "library"));
        assert!(!m("library/alpine", "Library/alpine"));
    }

    #[test]
    fn malformed_globs_are_refused() {
        for bad in ["", "a//b", "/a", "a/", "a**", "**b/c", "a/b**"] {
            assert!(RepoGlob::new(bad).is_err(), "{bad}");
        }
    }
}
