//! Bearer tokens: the token endpoint's answer and the cache of tokens per scope set.
//!
//! A token is reused, for any request whose scopes it covers, until shortly before it
//! expires: `expires_in` seconds after it was received (60 when the endpoint does not
//! say), minus a tenth of that lifetime (at most 10 s) so that a token is never sent in
//! its last moments. Unlike Docker, a lifetime under 60 s is believed, not raised to 60:
//! a registry issuing short tokens would refuse the longer reuse.

use super::scope::Scopes;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Lifetime of a token whose response has no `expires_in` (the spec's default).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// Longest safety margin before expiry.
const MAX_MARGIN: Duration = Duration::from_secs(10);

/// The JSON answer of a token endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    /// The token (Docker name).
    #[serde(default)]
    pub token: Option<String>,
    /// The token (OAuth 2 name), accepted when `token` is absent.
    #[serde(default)]
    pub access_token: Option<String>,
    /// Seconds the token stays valid.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token, from `token` or else `access_token`; `None` when both are missing or
    /// empty.
    pub fn bearer(&self) -> Option<&str> {
        [&self.token, &self.access_token]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .find(|t| !t.is_empty())
    }

    /// How long the token may be used: `expires_in` (or the default) minus the margin.
    pub fn usable_for(&self) -> Duration {
        let lifetime = match self.expires_in {
            Some(secs) if secs > 0 => Duration::from_secs(secs),
            _ => DEFAULT_TOKEN_LIFETIME,
        };
        lifetime - (lifetime / 10).min(MAX_MARGIN)
    }
}

/// A cached token and the scopes it was asked for.
#[derive(Debug, Clone)]
struct Entry {
    scopes: Scopes,
    token: String,
    usable_until: Instant,
}

/// Tokens per scope set, dropped once expired.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Vec<Entry>,
}

impl TokenCache {
    /// A usable token whose scopes cover `needed` at time `now`: the one asked for
    /// exactly these scopes if cached, else any covering one.
    pub fn get(&mut self, needed: &Scopes, now: Instant) -> Option<String> {
        self.entries.retain(|e| e.usable_until > now);
        self.entries
            .iter()
            .find(|e| e.scopes == *needed)
            .or_else(|| self.entries.iter().find(|e| e.scopes.covers(needed)))
            .map(|e| e.token.clone())
    }

    /// Remember `token`, asked for `scopes` and received at `now`, for `usable_for`.
    pub fn insert(&mut self, scopes: Scopes, token: String, usable_for: Duration, now: Instant) {
        self.entries.retain(|e| e.scopes != scopes);
        self.entries.push(Entry {
            scopes,
            token,
            usable_until: now + usable_for,
        });
    }

    /// Forget `token` (the registry refused it).
    pub fn remove(&mut self, token: &str) {
        self.entries.retain(|e| e.token != token);
    }

    /// Number of tokens held (expired ones included until the next lookup).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::scope::Scope;

    fn response(json: &str) -> TokenResponse {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn accepts_token_or_access_token() {
        assert_eq!(
            response(r#"{"token":"a","access_token":"b"}"#).bearer(),
            Some("a")
        );
        assert_eq!(response(r#"{"access_token":"b"}"#).bearer(), Some("b"));
        assert_eq!(
            response(r#"{"token":"","access_token":"b"}"#).bearer(),
            Some("b")
        );
        assert_eq!(response(r#"{"expires_in":5}"#).bearer(), None);
    }

    #[test]
    fn lifetime_defaults_to_60_s_and_keeps_a_margin() {
        assert_eq!(response("{}").usable_for(), Duration::from_secs(54));
        assert_eq!(
            response(r#"{"expires_in":0}"#).usable_for(),
            Duration::from_secs(54)
        );
        assert_eq!(
            response(r#"{"expires_in":300}"#).usable_for(),
            Duration::from_secs(290)
        );
        assert_eq!(
            response(r#"{"expires_in":2}"#).usable_for(),
            Duration::from_millis(1800)
        );
    }

    #[test]
    fn reuses_tokens_until_expiry_and_by_coverage() {
        let t0 = Instant::now();
        let push = Scopes::new().with(Scope::repository("a", &["pull", "push"]));
        let pull = Scopes::new().with(Scope::repository("a", &["pull"]));
        let mut cache = TokenCache::default();
        assert_eq!(cache.get(&pull, t0), None);
        cache.insert(push.clone(), "T1".into(), Duration::from_secs(54), t0);
        assert_eq!(cache.get(&push, t0).as_deref(), Some("T1"));
        assert_eq!(
            cache.get(&pull, t0 + Duration::from_secs(53)).as_deref(),
            Some("T1"),
            "a push token serves pulls"
        );
        let other = Scopes::new().with(Scope::repository("b", &["pull"]));
        assert_eq!(cache.get(&other, t0), None);
        // An exact match wins over a covering token.
        cache.insert(pull.clone(), "T2".into(), Duration::from_secs(54), t0);
        assert_eq!(cache.get(&pull, t0).as_deref(), Some("T2"));
        // Expired tokens are dropped.
        assert_eq!(cache.get(&pull, t0 + Duration::from_secs(54)), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn refused_tokens_are_forgotten_and_replaced() {
        let t0 = Instant::now();
        let s = Scopes::new();
        let mut cache = TokenCache::default();
        cache.insert(s.clone(), "old".into(), Duration::from_secs(9), t0);
        cache.insert(s.clone(), "new".into(), Duration::from_secs(9), t0);
        assert_eq!(cache.len(), 1, "one token per scope set");
        cache.remove("new");
        assert_eq!(cache.get(&s, t0), None);
    }
}
