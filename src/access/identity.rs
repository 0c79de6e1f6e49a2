//! Who a request is ([`Identity`]) and who a rule names ([`Who`]).

use serde::{Deserialize, Deserializer};
use std::fmt;

/// The identity a request acts as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// No credentials (or none that were accepted).
    Anonymous,
    /// Signed in: an htpasswd user, a token's subject or a client certificate's Common Name.
    User(String),
}

impl Identity {
    /// A signed-in identity.
    pub fn user(name: impl Into<String>) -> Identity {
        Identity::User(name.into())
    }

    /// The signed-in name, `None` for anonymous.
    pub fn name(&self) -> Option<&str> {
        match self {
            Identity::Anonymous => None,
            Identity::User(n) => Some(n),
        }
    }
}

/// `"anonymous"` or the signed-in name (user names can never be `anonymous`).
impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name().unwrap_or(ANONYMOUS))
    }
}

/// The Common Name of a client certificate signed by `[tls] client_ca`, verified during
/// the TLS handshake. The server puts it in the extensions of every request of that
/// connection; it is never empty and never `anonymous` (such certificates carry no
/// identity). The registry turns it into a signed-in [`Identity`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertIdentity(pub String);

/// The word for the anonymous identity in rules and logs; no user may be called this.
pub const ANONYMOUS: &str = "anonymous";

/// One entry of a rule's `who`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// `"anonymous"`: requests without credentials only.
    Anonymous,
    /// `"*"`: any signed-in identity.
    AnySignedIn,
    /// `"@name"`: the members of a group of `[access.groups]`.
    Group(String),
    /// A signed-in name.
    User(String),
}

impl Who {
    /// Parse a `who` entry.
    pub fn parse(s: &str) -> Who {
        match s {
            ANONYMOUS => Who::Anonymous,
            "*" => Who::AnySignedIn,
            _ => match s.strip_prefix('@') {
                Some(g) => Who::Group(g.to_string()),
                None => Who::User(s.to_string()),
            },
        }
    }
}

impl<'de> Deserialize<'de> for Who {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Who, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s == "@" {
            return Err(serde::de::Error::custom("empty name in `who`"));
        }
        Ok(Who::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_entries_parse() {
        assert_eq!(Who::parse("anonymous"), Who::Anonymous);
        assert_eq!(Who::parse("*"), Who::AnySignedIn);
        assert_eq!(Who::parse("@admins"), Who::Group("admins".into()));
        assert_eq!(Who::parse("carol"), Who::User("carol".into()));
    }

    #[test]
    fn identity_display() {
        assert_eq!(Identity::Anonymous.to_string(), "anonymous");
        assert_eq!(Identity::user("carol").to_string(), "carol");
        assert_eq!(Identity::user("carol").name(), Some("carol"));
        assert_eq!(Identity::Anonymous.name(), None);
    }
}
