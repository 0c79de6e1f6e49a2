//! The configuration schema of access control: `[access]` with its networks, groups, rules
//! and token settings, and `[audit]`. [`crate::config::Config`] holds these; the policy is
//! built from them ([`crate::access::Policy::new`]).

use super::action::Action;
use super::glob::RepoGlob;
use super::identity::Who;
use super::net::{parse_net, NetSet};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// `[access]`. Absent: the default policy ([`crate::access::Policy::default_policy`]).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// htpasswd file of users (bcrypt only); `None` or empty: no users.
    #[serde(default)]
    pub htpasswd: Option<PathBuf>,
    /// Peers whose `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
    /// Failed sign-ins allowed per client address per minute (0: no limit).
    #[serde(default = "default_max_failed_logins")]
    pub max_failed_logins: u32,
    /// `[access.networks]`: names for lists of CIDRs.
    #[serde(default)]
    pub networks: BTreeMap<String, Vec<Cidr>>,
    /// `[access.groups]`: names for lists of users.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    /// `[[access.rule]]`; absent: the default policy's rule.
    #[serde(default)]
    pub rule: Option<Vec<RuleConfig>>,
    /// `[access.token]`.
    #[serde(default)]
    pub token: TokenConfig,
}

fn default_max_failed_logins() -> u32 {
    10
}

/// One `[[access.rule]]`: it grants `allow` on `repos` to `who` from `from`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Network names of `[access.networks]`, CIDRs or addresses; absent: any address.
    #[serde(default)]
    pub from: Option<Vec<String>>,
    /// Who the rule is for; absent: anyone, signed in or not.
    #[serde(default)]
    pub who: Option<Vec<Who>>,
    /// Actions granted.
    pub allow: Vec<Action>,
    /// Repository globs; absent: every repository (`["**"]`).
    #[serde(default)]
    pub repos: Option<Vec<RepoGlob>>,
}

/// `[access.token]`: Docker registry token authentication.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Serve `/token` and challenge with `Bearer`; absent: on whenever `htpasswd` is set.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Lifetime of an issued token in seconds.
    #[serde(default = "default_ttl_secs")]
    pub ttl_secs: u64,
    /// PEM (PKCS#8) P-256 signing key; generated when missing.
    #[serde(default = "default_token_key")]
    pub key: PathBuf,
}

fn default_ttl_secs() -> u64 {
    300
}

fn default_token_key() -> PathBuf {
    PathBuf::from("certs/token.key")
}

impl Default for TokenConfig {
    fn default() -> TokenConfig {
        TokenConfig {
            enabled: None,
            ttl_secs: default_ttl_secs(),
            key: default_token_key(),
        }
    }
}

/// `[audit]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// `"-"`: standard output; `""`: off; otherwise a file appended to.
    pub path: String,
}

/// A CIDR or a plain address (a range of one), as written in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub IpNet);

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        parse_net(&s).map(Cidr).ok_or_else(|| {
            serde::de::Error::custom(format!("{s:?} is not a CIDR (10.0.0.0/16) or address"))
        })
    }
}

/// One step of a path to a configuration key: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// A key of a table.
    Key(String),
    /// An element of an array (of tables).
    Index(usize),
}

/// A configuration value that is well-formed but wrong, such as a rule naming a network
/// that `[access.networks]` does not define; `path` says which value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", DisplayPath(.path))]
pub struct AccessConfigError {
    /// Where the value is, from the top of the file (`access.rule[2].from[0]`).
    pub path: Vec<KeyPart>,
    /// What is wrong.
    pub message: String,
}

/// Shows a key path as `access.rule[2].from[0]`.
pub struct DisplayPath<'a>(pub &'a [KeyPart]);

impl fmt::Display for DisplayPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.0.iter().enumerate() {
            match part {
                KeyPart::Key(k) if i == 0 => write!(f, "{k}")?,
                KeyPart::Key(k) => write!(f, ".{k}")?,
                KeyPart::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The address ranges of one `from` entry.
pub(crate) enum FromEntry<'a> {
    /// A literal CIDR or address.
    Net(IpNet),
    /// The ranges of a named network.
    Named(&'a [Cidr]),
}

impl AccessConfig {
    /// The htpasswd file, when one is configured (an empty path is none).
    pub fn htpasswd_file(&self) -> Option<&std::path::Path> {
        self.htpasswd
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
    }

    /// Whether token authentication is on (by default whenever there are users).
    pub fn token_enabled(&self) -> bool {
        self.token.enabled.unwrap_or(self.htpasswd_file().is_some())
    }

    /// `trusted_proxies` as a set.
    pub fn trusted_proxy_set(&self) -> NetSet {
        NetSet::new(self.trusted_proxies.iter().map(|c| c.0))
    }

    /// Resolve one `from` entry of rule `rule`, position `pos`.
    pub(crate) fn resolve_from<'a>(
        &'a self,
        entry: &str,
        rule: usize,
        pos: usize,
    ) -> Result<FromEntry<'a>, AccessConfigError> {
        if let Some(cidrs) = self.networks.get(entry) {
            return Ok(FromEntry::Named(cidrs));
        }
        parse_net(entry).map(FromEntry::Net).ok_or_else(|| {
            config_error(
                rule_path(rule, "from", pos),
                format!(
                    "{entry:?} is neither a network of [access.networks] ({}) nor a CIDR or address",
                    names(self.networks.keys())
                ),
            )
        })
    }

    /// The members of group `group`, named by rule `rule` at `who` position `pos`.
    pub(crate) fn group(
        &self,
        group: &str,
        rule: usize,
        pos: usize,
    ) -> Result<&[String], AccessConfigError> {
        self.groups.get(group).map(Vec::as_slice).ok_or_else(|| {
            config_error(
                rule_path(rule, "who", pos),
                format!(
                    "group {group:?} is not defined in [access.groups] ({})",
                    names(self.groups.keys())
                ),
            )
        })
    }

    /// Check what deserialization cannot: the token lifetime.
    pub(crate) fn check_scalars(&self) -> Result<(), AccessConfigError> {
        if self.token.ttl_secs == 0 {
            let path = vec![key("access"), key("token"), key("ttl_secs")];
            return Err(config_error(path, "must be at least 1".to_string()));
        }
        Ok(())
    }
}

fn config_error(path: Vec<KeyPart>, message: String) -> AccessConfigError {
    AccessConfigError { path, message }
}

fn key(k: &str) -> KeyPart {
    KeyPart::Key(k.to_string())
}

fn rule_path(rule: usize, field: &str, pos: usize) -> Vec<KeyPart> {
    vec![
        key("access"),
        key("rule"),
        KeyPart::Index(rule),
        key(field),
        KeyPart::Index(pos),
    ]
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(String::as_str).collect();
    if v.is_empty() {
        "none defined".to_string()
    } else {
        format!("defined: {}", v.join(", "))
    }
}

impl TryFrom<String> for RepoGlob {
    type Error = super::glob::GlobError;
    fn try_from(s: String) -> Result<RepoGlob, Self::Error> {
        RepoGlob::new(&s)
    }
}

impl<'de> Deserialize<'de> for RepoGlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RepoGlob, D::Error> {
        let s = String::deserialize(d)?;
        RepoGlob::try_from(s).map_err(serde::de::Error::custom)
    }
}
