//! Signing in: the Docker registry token flow and Basic authentication, transparently
//! for every request of a [`Client`](super::Client).
//!
//! The [`Authenticator`] learns how the registry wants callers to sign in from its first
//! `401` challenge:
//!
//! - `Bearer realm=...,service=...,scope=...`: it gets a token from the realm (`GET` with
//!   `service` and one `scope` parameter per scope, Basic credentials if it has any, none
//!   for an anonymous token; an identity token is exchanged by `POST`ing
//!   `grant_type=refresh_token`), caches it for the scopes asked
//!   ([`TokenCache`]), and the request is sent again once with `Authorization: Bearer`;
//! - `Basic`: the request is sent again once with the credentials.
//!
//! From then on every request gets the right header *before* it is sent: the cached
//! token covering the scopes the request needs ([`Scopes::for_request`]), or a new one
//! fetched first. That is what makes requests whose body is a stream work: such a body
//! cannot be sent twice, so the scheme must be known before (any earlier request on the
//! registry does it, e.g. the `POST` that opens an upload session, or
//! [`Client::authorize`](super::Client::authorize)).

use super::challenge::{parse_challenges, Challenge, Scheme};
use super::credentials::Credentials;
use super::error::{body_excerpt, error_chain, parse_error_body, AuthFailure};
use super::scope::Scopes;
use super::token::{TokenCache, TokenResponse};
use reqwest::header::{HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, StatusCode, Url};
use std::sync::Mutex;
use std::time::Instant;

/// How the registry wants callers to sign in, as learnt from its challenges.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Known {
    /// No challenge seen yet.
    Unknown,
    /// `Basic`.
    Basic,
    /// `Bearer`: tokens come from `realm` for `service`.
    Bearer { realm: Url, service: Option<String> },
}

/// What a request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sent {
    /// No `Authorization` header.
    Nothing,
    /// The Basic credentials.
    Basic,
    /// This token.
    Bearer(String),
}

#[derive(Debug)]
struct State {
    known: Known,
    tokens: TokenCache,
}

/// Credentials, the learnt scheme and the token cache of one client.
#[derive(Debug)]
pub(crate) struct Authenticator {
    credentials: Option<Credentials>,
    preemptive_basic: bool,
    https: bool,
    state: Mutex<State>,
    /// Serialises token fetches, so parallel requests share one token.
    fetching: tokio::sync::Mutex<()>,
}

impl Authenticator {
    /// With `credentials` (none: anonymous); `preemptive_basic` sends Basic credentials
    /// before any challenge; `https` refuses sending credentials to a plain-HTTP realm.
    pub(crate) fn new(
        credentials: Option<Credentials>,
        preemptive_basic: bool,
        https: bool,
    ) -> Authenticator {
        Authenticator {
            credentials,
            preemptive_basic,
            https,
            state: Mutex::new(State {
                known: Known::Unknown,
                tokens: TokenCache::default(),
            }),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The signed-in identity for messages: the user name or `anonymous`.
    pub(crate) fn identity(&self) -> String {
        match self.credentials.as_ref().map(Credentials::username) {
            Some(user) if !user.is_empty() => user.to_string(),
            Some(_) => "the identity-token holder".to_string(),
            None => "anonymous".to_string(),
        }
    }

    /// Whether the client has credentials.
    pub(crate) fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// Whether the registry's scheme is known (a challenge was seen).
    pub(crate) fn knows_scheme(&self) -> bool {
        self.state().known != Known::Unknown
    }

    fn basic(&self) -> Option<(&str, &str)> {
        match &self.credentials {
            Some(Credentials::Basic { username, password }) => Some((username, password)),
            _ => None,
        }
    }

    /// Add the `Authorization` header `rb` needs for `scopes`, fetching a token first
    /// when the registry uses tokens and none cached covers them.
    pub(crate) async fn apply(
        &self,
        http: &reqwest::Client,
        rb: RequestBuilder,
        scopes: &Scopes,
    ) -> Result<(RequestBuilder, Sent), AuthFailure> {
        let known = self.state().known.clone();
        match known {
            Known::Bearer { realm, service } => {
                let token = self.token(http, &realm, service.as_deref(), scopes).await?;
                Ok((rb.bearer_auth(&token), Sent::Bearer(token)))
            }
            Known::Basic => Ok(self.with_basic(rb)),
            Known::Unknown if self.preemptive_basic => Ok(self.with_basic(rb)),
            Known::Unknown => Ok((rb, Sent::Nothing)),
        }
    }

    fn with_basic(&self, rb: RequestBuilder) -> (RequestBuilder, Sent) {
        match self.basic() {
            Some((user, password)) => (rb.basic_auth(user, Some(password)), Sent::Basic),
            None => (rb, Sent::Nothing),
        }
    }

    /// Learn from the challenges of a `401` to a request (at `url`, needing `scopes`,
    /// that carried `sent`). `Ok(true)`: sending it again may now succeed (a token was
    /// fetched, or Basic credentials will be sent); `Ok(false)`: it cannot.
    pub(crate) async fn challenged(
        &self,
        http: &reqwest::Client,
        url: &Url,
        headers: &HeaderMap,
        scopes: &Scopes,
        sent: &Sent,
    ) -> Result<bool, AuthFailure> {
        let challenges = challenges_of(headers);
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == Scheme::Bearer) {
            return self.bearer_challenge(http, url, bearer, scopes, sent).await;
        }
        if challenges.iter().any(|c| c.scheme == Scheme::Basic) {
            let Some((user, _)) = self.basic() else {
                return Ok(false);
            };
            if *sent == Sent::Basic {
                return Err(AuthFailure::WrongCredentials {
                    user: user.to_string(),
                    at: "the registry".to_string(),
                });
            }
            self.state().known = Known::Basic;
            return Ok(true);
        }
        Ok(false)
    }

    /// Learn the registry's scheme from the challenges of a `401`, without fetching a
    /// token (see [`Client::authorize`](super::Client::authorize)).
    pub(crate) fn learn(&self, url: &Url, headers: &HeaderMap) -> Result<(), AuthFailure> {
        let challenges = challenges_of(headers);
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == Scheme::Bearer) {
            let (realm, service) = bearer_target(url, bearer)?;
            self.state().known = Known::Bearer { realm, service };
        } else if challenges.iter().any(|c| c.scheme == Scheme::Basic) {
            self.state().known = Known::Basic;
        }
        Ok(())
    }

    async fn bearer_challenge(
        &self,
        http: &reqwest::Client,
        url: &Url,
        challenge: &Challenge,
        scopes: &Scopes,
        sent: &Sent,
    ) -> Result<bool, AuthFailure> {
        let (realm, service) = bearer_target(url, challenge)?;
        {
            let mut state = self.state();
            state.known = Known::Bearer {
                realm: realm.clone(),
                service: service.clone(),
            };
            if let Sent::Bearer(token) = sent {
                state.tokens.remove(token);
            }
        }
        let refused_token = matches!(sent, Sent::Bearer(_));
        if refused_token && !self.has_credentials() && challenge.error() != Some("invalid_token") {
            // A valid anonymous token lacking the access: another one would too.
            return Ok(false);
        }
        let mut wanted = scopes.clone();
        if let Some(scope) = challenge.scope() {
            wanted.extend_from_challenge(scope);
        }
        self.token(http, &realm, service.as_deref(), &wanted)
            .await?;
        Ok(true)
    }

    /// A token covering `scopes`: cached, or fetched from `realm` (one fetch at a time).
    pub(crate) async fn token(
        &self,
        http: &reqwest::Client,
        realm: &Url,
        service: Option<&str>,
        scopes: &Scopes,
    ) -> Result<String, AuthFailure> {
        if let Some(token) = self.state().tokens.get(scopes, Instant::now()) {
            return Ok(token);
        }
        let _one_at_a_time = self.fetching.lock().await;
        if let Some(token) = self.state().tokens.get(scopes, Instant::now()) {
            return Ok(token);
        }
        let answer = self.fetch(http, realm, service, scopes).await?;
        let token = answer
            .bearer()
            .ok_or_else(|| AuthFailure::TokenEndpointFailed {
                realm: realm.to_string(),
                detail: "its answer holds neither `token` nor `access_token`".to_string(),
            })?
            .to_string();
        self.state().tokens.insert(
            scopes.clone(),
            token.clone(),
            answer.usable_for(),
            Instant::now(),
        );
        Ok(token)
    }

    /// Ask the token endpoint for a token for `scopes`.
    async fn fetch(
        &self,
        http: &reqwest::Client,
        realm: &Url,
        service: Option<&str>,
        scopes: &Scopes,
    ) -> Result<TokenResponse, AuthFailure> {
        let realm_text = realm.to_string();
        if self.https && self.has_credentials() && realm.scheme() != "https" {
            return Err(AuthFailure::InsecureRealm { realm: realm_text });
        }
        let rb = match &self.credentials {
            Some(Credentials::IdentityToken { token, .. }) => {
                // OAuth 2 refresh: the form is encoded like a query string.
                let mut form = Url::parse("x:").expect("a valid URL");
                {
                    let mut q = form.query_pairs_mut();
                    q.append_pair("grant_type", "refresh_token")
                        .append_pair("client_id", "imgflow")
                        .append_pair("refresh_token", token)
                        .append_pair("scope", &scopes.to_string());
                    if let Some(service) = service {
                        q.append_pair("service", service);
                    }
                }
                http.post(realm.clone())
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form.query().unwrap_or_default().to_string())
            }
            creds => {
                let mut url = realm.clone();
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(service) = service {
                        q.append_pair("service", service);
                    }
                    for scope in scopes.iter() {
                        q.append_pair("scope", &scope.to_string());
                    }
                }
                let rb = http.get(url);
                match creds {
                    Some(Credentials::Basic { username, password }) => {
                        rb.basic_auth(username, Some(password))
                    }
                    _ => rb,
                }
            }
        };
        let unreachable = |e: reqwest::Error| AuthFailure::TokenEndpointUnreachable {
            realm: realm_text.clone(),
            detail: error_chain(&e.without_url()),
        };
        let resp = rb.send().await.map_err(unreachable)?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = resp.bytes().await.map_err(unreachable)?;
        let message = registry_message(&body);
        match status {
            StatusCode::OK => {
                serde_json::from_slice(&body).map_err(|e| AuthFailure::TokenEndpointFailed {
                    realm: realm_text,
                    detail: format!("its answer is not token JSON: {e}"),
                })
            }
            StatusCode::UNAUTHORIZED if self.has_credentials() => {
                Err(AuthFailure::WrongCredentials {
                    user: self.identity(),
                    at: format!("the token endpoint {realm_text}"),
                })
            }
            StatusCode::UNAUTHORIZED => Err(AuthFailure::SignInRequired { message }),
            StatusCode::FORBIDDEN => Err(AuthFailure::Denied {
                identity: self.identity(),
                message,
            }),
            StatusCode::TOO_MANY_REQUESTS => Err(AuthFailure::TooManyFailures { retry_after }),
            other => Err(AuthFailure::TokenEndpointFailed {
                realm: realm_text,
                detail: format!("answered {other}: {message}"),
            }),
        }
    }
}

/// The challenges of a response.
fn challenges_of(headers: &HeaderMap) -> Vec<Challenge> {
    parse_challenges(
        headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

/// The realm (resolved against the request's `url`) and service of a Bearer challenge.
fn bearer_target(url: &Url, challenge: &Challenge) -> Result<(Url, Option<String>), AuthFailure> {
    let bad = |reason: String| AuthFailure::BadChallenge {
        challenge: format!("{challenge:?}"),
        reason,
    };
    let realm = challenge
        .realm()
        .ok_or_else(|| bad("no realm".to_string()))?;
    let realm = url
        .join(realm)
        .map_err(|e| bad(format!("realm is not a URL: {e}")))?;
    Ok((realm, challenge.service().map(str::to_string)))
}

/// The message of an error body: the OCI errors' messages, else the text itself.
pub(crate) fn registry_message(body: &[u8]) -> String {
    let errors = parse_error_body(body);
    if errors.is_empty() {
        return body_excerpt(body).trim().to_string();
    }
    errors
        .iter()
        .map(|e| {
            if e.message.is_empty() {
                e.code.clone()
            } else {
                format!("{}: {}", e.code, e.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
