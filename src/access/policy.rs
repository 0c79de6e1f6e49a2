//! The access policy: rules compiled from `[access]` (or the default policy), answering
//! "may this address and identity do this to this repository?" without allocating.
//!
//! Rules only grant. A request is allowed when some rule matches its address (`from`),
//! identity (`who`), action (`allow`) and repository (`repos`). A signed-in identity also
//! has whatever anonymous has from its address. For [`Action::Catalog`] `repos` is not
//! consulted (the catalog is not a repository; callers list only what may be pulled).

use super::action::{Action, ActionSet};
use super::glob::RepoGlob;
use super::identity::{Identity, Who};
use super::net::{normalize_ip, parse_net, NetSet};
use super::rules::{AccessConfig, AccessConfigError, FromEntry, RuleConfig};
use std::collections::HashSet;
use std::net::IpAddr;

/// A compiled policy; cheap to query from many threads (share it in an `Arc`).
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
    /// Some rule has no `from`: every address may be admitted.
    any_address: bool,
    /// The union of every rule's `from`.
    addresses: NetSet,
    description: String,
}

#[derive(Debug, Clone)]
struct Rule {
    /// `None`: any address.
    from: Option<NetSet>,
    who: WhoMatch,
    allow: ActionSet,
    /// `None`: every repository.
    repos: Option<Vec<RepoGlob>>,
}

#[derive(Debug, Clone, Default)]
struct WhoMatch {
    anonymous: bool,
    any_signed_in: bool,
    /// Users named directly or through a group.
    names: HashSet<String>,
}

impl WhoMatch {
    fn admits(&self, id: &Identity) -> bool {
        // Whatever anonymous may do, a signed-in identity may do too.
        self.anonymous
            || match id {
                Identity::Anonymous => false,
                Identity::User(n) => self.any_signed_in || self.names.contains(n.as_str()),
            }
    }
}

/// The private ranges the default policy admits besides loopback and local addresses.
pub const DEFAULT_NETWORKS: [&str; 6] = [
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
];

impl Policy {
    /// Compile `[access]`; `None` gives [`Policy::default_policy`]. The error names the
    /// offending key (unknown network or group names, a zero token lifetime).
    pub fn new(cfg: Option<&AccessConfig>) -> Result<Policy, AccessConfigError> {
        let Some(cfg) = cfg else {
            return Ok(Policy::default_policy());
        };
        cfg.check_scalars()?;
        let Some(rules) = &cfg.rule else {
            return Ok(Policy::default_policy());
        };
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, r)| compile_rule(cfg, i, r))
            .collect::<Result<Vec<_>, _>>()?;
        let description = format!(
            "{} access rule(s); {}",
            rules.len(),
            if cfg.htpasswd_file().is_some() {
                "users from htpasswd"
            } else {
                "no htpasswd users"
            }
        );
        Ok(Policy::from_rules(rules, description))
    }

    /// The policy without an `[access]` section: anonymous pull, push, delete and catalog
    /// from loopback, this machine's own addresses and the private ranges
    /// ([`DEFAULT_NETWORKS`]); every other address is refused.
    pub fn default_policy() -> Policy {
        let mut from = NetSet::new(DEFAULT_NETWORKS.iter().filter_map(|n| parse_net(n)));
        let local = local_addresses();
        for ip in &local {
            from.insert((*ip).into());
        }
        let rule = Rule {
            from: Some(from),
            who: WhoMatch {
                anonymous: true,
                ..WhoMatch::default()
            },
            allow: Action::ALL.into_iter().collect(),
            repos: None,
        };
        let description = format!(
            "no [access] section: anonymous pull, push, delete and catalog from loopback, \
             this machine's {} address(es) and private ranges (10/8, 172.16/12, 192.168/16, \
             fc00::/7); every other address is refused",
            local.len()
        );
        Policy::from_rules(vec![rule], description)
    }

    fn from_rules(rules: Vec<Rule>, description: String) -> Policy {
        let any_address = rules.iter().any(|r| r.from.is_none());
        let mut addresses = NetSet::default();
        for from in rules.iter().filter_map(|r| r.from.as_ref()) {
            addresses.extend(from);
        }
        Policy {
            rules,
            any_address,
            addresses,
            description,
        }
    }

    /// One line for the start-up log saying what the policy admits.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Whether `id` at `ip` may do `action` to repository `repo` (`repo` is ignored for
    /// [`Action::Catalog`]).
    pub fn allows(&self, ip: IpAddr, id: &Identity, action: Action, repo: &str) -> bool {
        let ip = normalize_ip(ip);
        self.rules.iter().any(|r| {
            r.allow.contains(action)
                && r.who.admits(id)
                && r.address_matches(ip)
                && (action == Action::Catalog || r.repo_matches(repo))
        })
    }

    /// Every action `id` at `ip` may do to repository `repo` (never [`Action::Catalog`]).
    pub fn granted(&self, ip: IpAddr, id: &Identity, repo: &str) -> ActionSet {
        let ip = normalize_ip(ip);
        let all = ActionSet::EMPTY
            .with(Action::Pull)
            .with(Action::Push)
            .with(Action::Delete);
        self.rules
            .iter()
            .filter(|r| r.who.admits(id) && r.address_matches(ip) && r.repo_matches(repo))
            .fold(ActionSet::EMPTY, |acc, r| acc.union(r.allow))
            .intersection(all)
    }

    /// Whether `id` at `ip` may list repositories.
    pub fn may_catalog(&self, ip: IpAddr, id: &Identity) -> bool {
        self.allows(ip, id, Action::Catalog, "")
    }

    /// Whether some signed-in identity could do `action` to `repo` from `ip` (a rule
    /// naming signed-in users matches): when an anonymous request is refused, signing in
    /// could help (401 with a challenge) or not (403).
    pub fn sign_in_could_help(&self, ip: IpAddr, action: Action, repo: &str) -> bool {
        let ip = normalize_ip(ip);
        self.rules.iter().any(|r| {
            r.allow.contains(action)
                && (r.who.any_signed_in || !r.who.names.is_empty())
                && r.address_matches(ip)
                && (action == Action::Catalog || r.repo_matches(repo))
        })
    }

    /// Whether any rule could ever admit a request from `ip`, whoever signs in: when not,
    /// the connection can be closed at accept, before TLS.
    pub fn admits_address(&self, ip: IpAddr) -> bool {
        self.any_address || self.addresses.contains(ip)
    }
}

impl Rule {
    fn address_matches(&self, ip: IpAddr) -> bool {
        self.from.as_ref().is_none_or(|f| f.contains(ip))
    }

    fn repo_matches(&self, repo: &str) -> bool {
        self.repos
            .as_ref()
            .is_none_or(|globs| globs.iter().any(|g| g.matches(repo)))
    }
}

fn compile_rule(cfg: &AccessConfig, i: usize, r: &RuleConfig) -> Result<Rule, AccessConfigError> {
    let from = match &r.from {
        None => None,
        Some(entries) => {
            let mut set = NetSet::default();
            for (pos, e) in entries.iter().enumerate() {
                match cfg.resolve_from(e, i, pos)? {
                    FromEntry::Net(n) => set.insert(n),
                    FromEntry::Named(cidrs) => cidrs.iter().for_each(|c| set.insert(c.0)),
                }
            }
            Some(set)
        }
    };
    let who = match &r.who {
        None => WhoMatch {
            anonymous: true,
            any_signed_in: true,
            names: HashSet::new(),
        },
        Some(list) => {
            let mut m = WhoMatch::default();
            for (pos, w) in list.iter().enumerate() {
                match w {
                    Who::Anonymous => m.anonymous = true,
                    Who::AnySignedIn => m.any_signed_in = true,
                    Who::User(n) => {
                        m.names.insert(n.clone());
                    }
                    Who::Group(g) => m.names.extend(cfg.group(g, i, pos)?.iter().cloned()),
                }
            }
            m
        }
    };
    let repos = match &r.repos {
        Some(globs) if !globs.iter().any(RepoGlob::matches_everything) => Some(globs.clone()),
        _ => None,
    };
    Ok(Rule {
        from,
        who,
        allow: r.allow.iter().copied().collect(),
        repos,
    })
}

/// This machine's interface addresses (normalised); empty when they cannot be listed.
fn local_addresses() -> Vec<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(ifs) => {
            let mut v: Vec<IpAddr> = ifs.iter().map(|i| normalize_ip(i.ip())).collect();
            v.sort();
            v.dedup();
            v
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot list this machine's addresses");
            Vec::new()
        }
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
