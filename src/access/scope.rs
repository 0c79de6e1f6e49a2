//! Token scopes (`scope=repository:team/app:pull,push`) and the `access` claims granted for
//! them.
//!
//! A scope is `TYPE[(CLASS)]:NAME:ACTION[,ACTION...]`; the name may itself hold `:` (the
//! type is up to the first `:`, the actions after the last). Several scopes come space
//! separated in one `scope` parameter or in repeated parameters. What is granted is the
//! intersection of what was asked and what the policy allows; `*` asks for everything.

use super::action::{Action, ActionSet};
use super::identity::Identity;
use super::policy::Policy;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One requested scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `repository` or `registry` (a `(class)` suffix is dropped).
    pub resource_type: String,
    /// Repository name, or `catalog` for `registry`.
    pub name: String,
    /// Requested actions as written (`pull`, `push`, `delete`, `*`, ...).
    pub actions: Vec<String>,
}

/// One granted entry of a token's `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Repository name, or `catalog`.
    pub name: String,
    /// Granted actions.
    pub actions: Vec<String>,
}

impl Scope {
    /// Parse one scope; `None` when it is not `TYPE:NAME:ACTIONS`.
    pub fn parse(s: &str) -> Option<Scope> {
        let (ty, rest) = s.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        let ty = ty.split_once('(').map_or(ty, |(t, _)| t);
        if ty.is_empty() || name.is_empty() {
            return None;
        }
        Some(Scope {
            resource_type: ty.to_string(),
            name: name.to_string(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }

    /// Every scope in `params` (the values of each `scope` query parameter), each of which
    /// may hold several separated by spaces; malformed ones are skipped.
    pub fn parse_all<'a>(params: impl IntoIterator<Item = &'a str>) -> Vec<Scope> {
        params
            .into_iter()
            .flat_map(str::split_whitespace)
            .filter_map(Scope::parse)
            .collect()
    }
}

/// The `access` claims for `scopes`: for each, what was asked and the policy grants to
/// `id` at `ip`. Scopes granting nothing are left out; unknown types and actions are
/// ignored; `*` is expanded to the granted actions.
pub fn grant(policy: &Policy, ip: IpAddr, id: &Identity, scopes: &[Scope]) -> Vec<AccessEntry> {
    let mut out: Vec<AccessEntry> = Vec::new();
    for s in scopes {
        let actions: Vec<String> = match s.resource_type.as_str() {
            "repository" => {
                let allowed = policy.granted(ip, id, &s.name);
                let asked = asked(&s.actions);
                let granted = if s.actions.iter().any(|a| a == "*") {
                    allowed
                } else {
                    asked.intersection(allowed)
                };
                granted.iter().map(|a| a.as_str().to_string()).collect()
            }
            "registry" if s.name == "catalog" && policy.may_catalog(ip, id) => {
                let wanted = s.actions.iter().any(|a| a == "*" || a == "catalog");
                if wanted {
                    vec!["*".to_string()]
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        };
        if actions.is_empty() {
            continue;
        }
        // The same resource asked twice: merge.
        match out
            .iter_mut()
            .find(|e| e.resource_type == s.resource_type && e.name == s.name)
        {
            Some(e) => {
                for a in actions {
                    if !e.actions.contains(&a) {
                        e.actions.push(a);
                    }
                }
            }
            None => out.push(AccessEntry {
                resource_type: s.resource_type.clone(),
                name: s.name.clone(),
                actions,
            }),
        }
    }
    out
}

fn asked(actions: &[String]) -> ActionSet {
    actions
        .iter()
        .filter_map(|a| Action::parse(a))
        .filter(|a| *a != Action::Catalog)
        .collect()
}

/// Whether the `access` claims allow `action` on `repo` (for [`Action::Catalog`]:
/// `registry:catalog`, `repo` ignored).
pub fn access_allows(access: &[AccessEntry], action: Action, repo: &str) -> bool {
    let (ty, name) = match action {
        Action::Catalog => ("registry", "catalog"),
        _ => ("repository", repo),
    };
    access.iter().any(|e| {
        e.resource_type == ty
            && e.name == name
            && e.actions.iter().any(|a| a == "*" || a == action.as_str())
    })
}

#[cfg(test)]
#[path = "scope_tests.rs"]
mod tests;
