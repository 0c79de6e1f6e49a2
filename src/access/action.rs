//! What a request does ([`Action`]) and sets of actions ([`ActionSet`]).

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a request does to a repository (or, for [`Action::Catalog`], to the registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Read manifests, tags, blobs and referrers.
    Pull,
    /// Upload blobs and manifests, move tags.
    Push,
    /// Delete manifests, tags and blobs.
    Delete,
    /// List repositories (`/v2/_catalog`).
    Catalog,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 4] = [Action::Pull, Action::Push, Action::Delete, Action::Catalog];

    /// The name used in configuration and in token scopes.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
            Action::Catalog => "catalog",
        }
    }

    /// The action named `s` (`pull`, `push`, `delete`, `catalog`).
    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of [`Action`]s, as a bit set (`Copy`, no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ActionSet(u8);

impl ActionSet {
    /// No action.
    pub const EMPTY: ActionSet = ActionSet(0);

    /// Whether `a` is in the set.
    pub fn contains(self, a: Action) -> bool {
        self.0 & a.bit() != 0
    }

    /// The set with `a` added.
    pub fn with(self, a: Action) -> ActionSet {
        ActionSet(self.0 | a.bit())
    }

    /// Both sets together.
    pub fn union(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 | other.0)
    }

    /// What both sets hold.
    pub fn intersection(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 & other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The actions in the set, in [`Action::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }
}

impl FromIterator<Action> for ActionSet {
    fn from_iter<I: IntoIterator<Item = Action>>(iter: I) -> ActionSet {
        iter.into_iter().fold(ActionSet::EMPTY, ActionSet::with)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
            assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{a}\""));
        }
        assert_eq!(Action::parse("Pull"), None);
        assert_eq!(Action::parse("*"), None);
    }

    #[test]
    fn set_operations() {
        let pp: ActionSet = [Action::Pull, Action::Push].into_iter().collect();
        assert!(pp.contains(Action::Pull) && pp.contains(Action::Push));
        assert!(!pp.contains(Action::Delete));
        let d = ActionSet::EMPTY.with(Action::Delete).with(Action::Pull);
        assert_eq!(
            pp.intersection(d).iter().collect::<Vec<_>>(),
            [Action::Pull]
        );
        assert_eq!(pp.union(d).iter().count(), 3);
        assert!(ActionSet::EMPTY.is_empty() && !pp.is_empty());
    }
}
