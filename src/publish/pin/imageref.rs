//! Docker image references as written in stack files (`[host[:port]/]repo[:tag][@digest]`)
//! and the registry address they are matched against.
//!
//! The split follows Docker's rule: the first path component names a registry when it
//! contains a `.` or a `:`, is `localhost`, or has an uppercase letter; otherwise the
//! reference is a Docker Hub one and has no host here.

use crate::oci::{Digest, NameError, RepoName, Tag};
use std::fmt;
use std::str::FromStr;

/// Why an image reference or a registry address cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// The registry address is not `host`, `host:port` or `[ipv6]:port`.
    #[error("invalid registry address {0:?}: expected host or host:port, without scheme or path")]
    InvalidRegistry(String),
    /// The repository, tag or digest part is invalid.
    #[error("invalid image reference {reference:?}: {source}")]
    Invalid {
        /// The reference as written.
        reference: String,
        /// What is wrong with it.
        source: NameError,
    },
}

/// A registry address: a host name or IP address and an optional port.
///
/// Two addresses are the same registry when the hosts are equal ignoring ASCII case and
/// the ports are exactly equal (`reg:5000` is not `reg`, `localhost` is not `127.0.0.1`).
#[derive(Debug, Clone)]
pub struct Registry {
    host: String,
    port: Option<u16>,
}

impl Registry {
    /// The host as written (an IPv6 address keeps its brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, when one was written.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
}

impl PartialEq for Registry {
    fn eq(&self, other: &Self) -> bool {
        self.host.eq_ignore_ascii_case(&other.host) && self.port == other.port
    }
}

impl Eq for Registry {}

impl FromStr for Registry {
    type Err = RefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || RefError::InvalidRegistry(s.to_string());
        let (host, port) = if s.starts_with('[') {
            let close = s.find(']').ok_or_else(bad)?;
            let (host, rest) = s.split_at(close + 1);
            match rest {
                "" => (host, None),
                _ => (host, Some(rest.strip_prefix(':').ok_or_else(bad)?)),
            }
        } else {
            match s.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (s, None),
            }
        };
        let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => !v6.is_empty() && v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'),
            None => {
                !host.is_empty()
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            }
        };
        if !host_ok {
            return Err(bad());
        }
        let port = match port {
            None => None,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(p.parse().map_err(|_| bad())?)
            }
            Some(_) => return Err(bad()),
        };
        Ok(Registry {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry, or `None` for a Docker Hub reference.
    pub registry: Option<Registry>,
    /// The repository path inside the registry.
    pub repo: RepoName,
    /// The tag, when one was written.
    pub tag: Option<Tag>,
    /// The digest, when one was written.
    pub digest: Option<Digest>,
}

impl ImageRef {
    /// The tag to resolve: the written one, else `latest`.
    pub fn tag_or_latest(&self) -> Tag {
        self.tag
            .clone()
            .unwrap_or_else(|| "latest".parse().expect("latest is a valid tag"))
    }
}

/// Splits `text` into its name part (everything before `@`) and the digest text after it.
pub fn split_digest(text: &str) -> (&str, Option<&str>) {
    match text.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (text, None),
    }
}

fn names_registry(component: &str) -> bool {
    component.contains(['.', ':'])
        || component == "localhost"
        || component.bytes().any(|b| b.is_ascii_uppercase())
}

impl FromStr for ImageRef {
    type Err = RefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |source| RefError::Invalid {
            reference: s.to_string(),
            source,
        };
        let (name_tag, digest) = split_digest(s);
        let digest = digest
            .map(|d| d.parse::<Digest>())
            .transpose()
            .map_err(|e| invalid(e.into()))?;
        let last_slash = name_tag.rfind('/');
        let (name, tag) = match name_tag.rfind(':') {
            Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
                (&name_tag[..colon], Some(&name_tag[colon + 1..]))
            }
            _ => (name_tag, None),
        };
        let tag = tag.map(|t| t.parse::<Tag>()).transpose().map_err(invalid)?;
        let (registry, path) = match name.split_once('/') {
            Some((first, rest)) if names_registry(first) => {
                (Some(first.parse::<Registry>()?), rest)
            }
            _ => (None, name),
        };
        let repo = path.parse::<RepoName>().map_err(invalid)?;
        Ok(ImageRef {
            registry,
            repo,
            tag,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn registries_compare_host_without_case_and_port_exactly() {
        let r = |s: &str| s.parse::<Registry>().unwrap();
        assert_eq!(r("Registry.Example:5000"), r("registry.example:5000"));
        assert_ne!(r("registry.example:5000"), r("registry.example"));
        assert_ne!(r("registry.example:5000"), r("registry.example:5001"));
        assert_ne!(r("localhost:5000"), r("127.0.0.1:5000"));
        assert_eq!(r("[::1]:5000").host(), "[::1]");
        assert_eq!(r("[::1]:5000").port(), Some(5000));
        assert_eq!(r("[::1]").port(), None);
        for bad in [
            "",
            "https://reg:5000",
            "reg:5000/x",
            "reg:",
            "reg:99999",
            "reg:50a",
            "::1",
            "[::1",
            "[]:5000",
            "a[b]",
        ] {
            assert!(bad.parse::<Registry>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn references_split_like_docker() {
        let r: ImageRef = format!("10.10.0.5:5000/team/spark:3.5.1@{D}")
            .parse()
            .unwrap();
        assert_eq!(r.registry.unwrap().to_string(), "10.10.0.5:5000");
        assert_eq!(r.repo.as_str(), "team/spark");
        assert_eq!(r.tag.unwrap().as_str(), "3.5.1");
        assert_eq!(r.digest.unwrap().as_str(), D);

        let hub: ImageRef = "team/spark:1".parse().unwrap();
        assert!(hub.registry.is_none());
        let bare: ImageRef = "postgres".parse().unwrap();
        assert!(bare.registry.is_none() && bare.tag.is_none());
        assert_eq!(bare.tag_or_latest().as_str(), "latest");

        let local: ImageRef = "localhost/proxy".parse().unwrap();
        assert_eq!(local.registry.unwrap().host(), "localhost");
        assert!(local.tag.is_none());
        let port_no_tag: ImageRef = "reg:5000/team/spark".parse().unwrap();
        assert!(port_no_tag.tag.is_none());
        assert_eq!(port_no_tag.registry.unwrap().port(), Some(5000));
        let v6: ImageRef = "[::1]:5000/a:b".parse().unwrap();
        assert_eq!(v6.registry.unwrap().host(), "[::1]");

        for bad in [
            "reg:5000/Team/x",
            "reg:5000/x:-bad",
            "reg:5000/x@sha256:zz",
            "",
        ] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad:?} accepted");
        }
    }
}
