//! Token scopes (`repository:team/app:pull,push`) and the scopes a request needs.
//!
//! A [`Scopes`] set merges the actions asked on the same resource and prints in a
//! canonical order, so it doubles as the key of the token cache.

use reqwest::{Method, Url};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One scope: resource type, resource name and actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `repository` or `registry`.
    pub resource_type: String,
    /// The repository name (`team/app`), or `catalog`.
    pub name: String,
    /// The actions, e.g. `pull`, `push`, `delete`, `*`.
    pub actions: BTreeSet<String>,
}

impl Scope {
    /// `repository:NAME:ACTIONS`.
    pub fn repository(name: &str, actions: &[&str]) -> Scope {
        Scope {
            resource_type: "repository".to_string(),
            name: name.to_string(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// `registry:catalog:*`, needed to list repositories.
    pub fn catalog() -> Scope {
        Scope {
            resource_type: "registry".to_string(),
            name: "catalog".to_string(),
            actions: BTreeSet::from(["*".to_string()]),
        }
    }

    /// Parse `TYPE:NAME:ACTIONS`. The name may itself hold colons (a registry host with
    /// a port), so the type ends at the first colon and the actions start after the last.
    pub fn parse(text: &str) -> Option<Scope> {
        let (resource_type, rest) = text.trim().split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if resource_type.is_empty() || name.is_empty() {
            return None;
        }
        Some(Scope {
            resource_type: resource_type.to_string(),
            name: name.to_string(),
            actions: actions
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actions: Vec<&str> = self.actions.iter().map(String::as_str).collect();
        write!(
            f,
            "{}:{}:{}",
            self.resource_type,
            self.name,
            actions.join(",")
        )
    }
}

/// A set of scopes; actions on the same resource are merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(BTreeMap<(String, String), BTreeSet<String>>);

impl Scopes {
    /// The empty set (a token that only proves who the caller is).
    pub fn new() -> Scopes {
        Scopes::default()
    }

    /// Add `scope`, merging its actions with those already asked on its resource.
    pub fn insert(&mut self, scope: Scope) {
        self.0
            .entry((scope.resource_type, scope.name))
            .or_default()
            .extend(scope.actions);
    }

    /// Builder form of [`Scopes::insert`].
    pub fn with(mut self, scope: Scope) -> Scopes {
        self.insert(scope);
        self
    }

    /// Add every scope of `other`.
    pub fn extend(&mut self, other: &Scopes) {
        for scope in other.iter() {
            self.insert(scope);
        }
    }

    /// Add the space-separated scopes of a challenge's `scope` parameter (unparsable
    /// entries are ignored).
    pub fn extend_from_challenge(&mut self, value: &str) {
        for scope in value.split_ascii_whitespace().filter_map(Scope::parse) {
            self.insert(scope);
        }
    }

    /// Whether no scope is asked.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes, in canonical order.
    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().map(|((t, n), a)| Scope {
            resource_type: t.clone(),
            name: n.clone(),
            actions: a.clone(),
        })
    }

    /// Whether every action of `other` is in this set too (a token asked for `self`
    /// serves requests needing `other`).
    pub fn covers(&self, other: &Scopes) -> bool {
        other.0.iter().all(|(resource, actions)| {
            self.0
                .get(resource)
                .is_some_and(|mine| mine.contains("*") || actions.is_subset(mine))
        })
    }

    /// The scopes a request needs, from its method and URL:
    ///
    /// - `/v2/` (and anything outside `/v2/`): none;
    /// - `/v2/_catalog`: `registry:catalog:*`;
    /// - `/v2/NAME/{blobs,manifests,tags,referrers}/...`: `pull` for GET and HEAD,
    ///   `delete` for DELETE, `pull,push` otherwise (uploads, manifest PUT);
    /// - a mount (`?mount=...&from=SOURCE`) also `repository:SOURCE:pull`.
    pub fn for_request(method: &Method, url: &Url) -> Scopes {
        let mut scopes = Scopes::new();
        let Some(rest) = url.path().strip_prefix("/v2/") else {
            return scopes;
        };
        if rest == "_catalog" {
            return scopes.with(Scope::catalog());
        }
        let Some(name) = repository_of(rest) else {
            return scopes;
        };
        let actions: &[&str] = match *method {
            Method::GET | Method::HEAD => &["pull"],
            Method::DELETE => &["delete"],
            _ => &["pull", "push"],
        };
        scopes.insert(Scope::repository(name, actions));
        if let Some((_, from)) = url.query_pairs().find(|(k, _)| k == "from") {
            if !from.is_empty() {
                scopes.insert(Scope::repository(&from, &["pull"]));
            }
        }
        scopes
    }
}

/// The repository name of a `/v2/` path tail such as `team/app/blobs/uploads/ID`: what
/// precedes the last resource segment (names may contain `blobs`, references cannot
/// contain `/`).
fn repository_of(rest: &str) -> Option<&str> {
    ["/blobs/", "/manifests/", "/tags/", "/referrers/"]
        .iter()
        .filter_map(|marker| rest.rfind(marker))
        .max()
        .map(|end| &rest[..end])
        .filter(|name| !name.is_empty())
}

impl fmt::Display for Scopes {
    /// Space-separated, in canonical order (the cache key).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{scope}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(path: &str) -> Url {
        Url::parse(&format!("https://r.example:5000{path}")).unwrap()
    }

    fn needed(method: Method, path: &str) -> String {
        Scopes::for_request(&method, &url(path)).to_string()
    }

    #[test]
    fn parses_and_prints_scopes() {
        let s = Scope::parse("repository:team/app:push,pull").unwrap();
        assert_eq!(s.resource_type, "repository");
        assert_eq!(s.name, "team/app");
        assert_eq!(s.to_string(), "repository:team/app:pull,push");
        let s = Scope::parse("repository:r.example:5000/team/app:pull").unwrap();
        assert_eq!(s.name, "r.example:5000/team/app");
        assert_eq!(Scope::catalog().to_string(), "registry:catalog:*");
        assert!(Scope::parse("repository").is_none());
        assert!(Scope::parse("repository:pull").is_none());
        assert!(Scope::parse(":a:pull").is_none());
    }

    #[test]
    fn merges_actions_and_orders_canonically() {
        let mut a = Scopes::new()
            .with(Scope::repository("b/src", &["pull"]))
            .with(Scope::repository("a/dst", &["push"]));
        a.extend_from_challenge("repository:a/dst:pull bogus registry:catalog:*");
        assert_eq!(
            a.to_string(),
            "registry:catalog:* repository:a/dst:pull,push repository:b/src:pull"
        );
        let b = Scopes::new()
            .with(Scope::repository("a/dst", &["pull", "push"]))
            .with(Scope::catalog())
            .with(Scope::repository("b/src", &["pull"]));
        assert_eq!(a, b, "insertion order does not matter");
    }

    #[test]
    fn coverage_decides_token_reuse() {
        let push = Scopes::new().with(Scope::repository("a", &["pull", "push"]));
        let pull = Scopes::new().with(Scope::repository("a", &["pull"]));
        let other = Scopes::new().with(Scope::repository("b", &["pull"]));
        assert!(push.covers(&pull));
        assert!(!pull.covers(&push));
        assert!(!push.covers(&other));
        assert!(push.covers(&Scopes::new()));
        let star = Scopes::new().with(Scope::repository("a", &["*"]));
        assert!(star.covers(&push));
    }

    #[test]
    fn infers_the_scopes_of_requests() {
        let pull = "repository:team/app:pull";
        let cases = [
            (Method::GET, "/v2/", ""),
            (Method::GET, "/token", ""),
            (Method::GET, "/v2/_catalog", "registry:catalog:*"),
            (Method::HEAD, "/v2/team/app/blobs/sha256:00", pull),
            (Method::GET, "/v2/team/app/tags/list", pull),
            (Method::GET, "/v2/team/app/referrers/sha256:00", pull),
            (
                Method::PUT,
                "/v2/team/app/manifests/1.0",
                "repository:team/app:pull,push",
            ),
            (
                Method::PATCH,
                "/v2/x/blobs/uploads/abc",
                "repository:x:pull,push",
            ),
            (
                Method::DELETE,
                "/v2/x/manifests/sha256:00",
                "repository:x:delete",
            ),
            // Names may contain resource words; the last one is the resource.
            (
                Method::GET,
                "/v2/team/blobs/manifests/latest",
                "repository:team/blobs:pull",
            ),
            (Method::GET, "/v2/blobs/", ""),
        ];
        for (method, path, scopes) in cases {
            assert_eq!(needed(method.clone(), path), scopes, "{method} {path}");
        }
    }

    #[test]
    fn a_mount_also_needs_pull_on_its_source() {
        assert_eq!(
            needed(
                Method::POST,
                "/v2/team/app/blobs/uploads/?mount=sha256:00&from=team/base"
            ),
            "repository:team/app:pull,push repository:team/base:pull"
        );
        assert_eq!(
            needed(Method::POST, "/v2/team/app/blobs/uploads/?mount=sha256:00"),
            "repository:team/app:pull,push"
        );
    }
}
