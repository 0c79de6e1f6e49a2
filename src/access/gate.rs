//! The gate: who a request is, and whether it may do what it asks.
//!
//! [`Gate`] owns everything with a lifecycle in access control: the compiled policy, the
//! htpasswd users (reloaded when the file changes), the token signing key, the failed
//! sign-in counts and the audit log. It knows no HTTP: the registry parses headers into
//! [`Credentials`], asks [`Gate::sign_in`] for a [`Caller`], then [`Gate::allows`] for
//! each action, and turns a [`SignInError`] or a refusal into a response.
//!
//! Modes follow the configuration: with no htpasswd users the registry is *open*
//! (anonymous and client certificates; credentials sent anyway are ignored, as
//! Distribution does); with users it challenges with `Bearer` (token mode, the default)
//! or `Basic`. A signed-in caller has what the rules grant its name plus what they grant
//! anonymous at its address; a token carries the actions granted when it was issued, and
//! they count only where the rules still grant them to its identity: a token is no way
//! around a rule's `from` (a VLAN user's token replayed from the cluster pushes nothing).

use super::audit::{AuditAction, AuditEvent, AuditLog, Outcome};
use super::htpasswd::{Htpasswd, PasswordCheck};
use super::identity::{Identity, ANONYMOUS};
use super::limiter::LoginLimiter;
use super::net::{normalize_ip, NetSet};
use super::policy::Policy;
use super::scope::{self, Scope};
use super::token::{token_allows, Claims, TokenError, TokenKeys, TokenResponse};
use super::Action;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How callers sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// No users: anonymous and client certificates only.
    Open,
    /// Users, signing in with Basic credentials on each request.
    Basic,
    /// Users, with Docker registry tokens from `/token` (Basic also accepted).
    Token,
}

/// Credentials a request carries in its `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// None.
    None,
    /// `Basic` user and password.
    Basic {
        /// User name.
        user: String,
        /// Password (never logged).
        password: String,
    },
    /// A `Bearer` token.
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Basic { user, .. } => write!(f, "Basic({user}, ***)"),
            Credentials::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// A signed-in (or anonymous) caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Client address (after trusted-proxy resolution).
    pub ip: IpAddr,
    /// Who it is.
    pub identity: Identity,
    /// The token it presented, if any: its `access` claims are what it may do.
    pub claims: Option<Arc<Claims>>,
    /// Whether it presented valid credentials of any kind (a password, a token, even an
    /// anonymous one, or a client certificate).
    pub authenticated: bool,
}

/// Why signing in failed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Unknown user or wrong password.
    #[error("incorrect username or password")]
    WrongPassword,
    /// Too many failed sign-ins from this address; retry after the duration.
    #[error("too many failed sign-ins from this address; retry in {} s", .0.as_secs().max(1))]
    TooManyFailures(Duration),
    /// The token is not valid here.
    #[error("invalid token: {0}")]
    BadToken(#[from] TokenError),
    /// A token was sent but the registry issues none.
    #[error("token authentication is off on this registry")]
    TokensOff,
}

/// Verified tokens remembered (each ~0.5 KiB).
const VERIFIED_TOKENS: usize = 1024;

/// What the gate is built from.
pub struct GateOptions {
    /// The compiled rules.
    pub policy: Policy,
    /// Users, if any.
    pub htpasswd: Option<Htpasswd>,
    /// Token keys when token authentication is on (requires users or client
    /// certificates to be useful; anonymous tokens work too).
    pub tokens: Option<TokenKeys>,
    /// Failed sign-ins per address per minute (0: no limit).
    pub max_failed_logins: u32,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: NetSet,
    /// Where audit lines go.
    pub audit: AuditLog,
    /// The token service name (the `aud` of tokens, `service` of challenges).
    pub service: String,
}

/// Access control for one registry (see the module documentation).
pub struct Gate {
    /// Tokens verified recently, by SHA-256 of the token: a docker pull presents the
    /// same token on every request, and an ES256 check costs far more than the request.
    verified: quick_cache::sync::Cache<[u8; 32], Arc<Claims>>,
    policy: Policy,
    htpasswd: Option<Htpasswd>,
    tokens: Option<TokenKeys>,
    limiter: LoginLimiter,
    trusted_proxies: NetSet,
    audit: AuditLog,
    service: String,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("mode", &self.mode())
            .field("policy", &self.policy.description())
            .finish()
    }
}

/// One request's context for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct AuditContext<'a> {
    /// The caller's address.
    pub ip: IpAddr,
    /// Who.
    pub identity: &'a Identity,
    /// HTTP method.
    pub method: &'a str,
}

impl Gate {
    /// A gate from its parts.
    pub fn new(opts: GateOptions) -> Gate {
        Gate {
            verified: quick_cache::sync::Cache::new(VERIFIED_TOKENS),
            limiter: LoginLimiter::new(opts.max_failed_logins),
            policy: opts.policy,
            htpasswd: opts.htpasswd,
            tokens: opts.tokens,
            trusted_proxies: opts.trusted_proxies,
            audit: opts.audit,
            service: opts.service,
        }
    }

    /// The embedded default: the default policy, no users, no tokens, no audit.
    pub fn open_default() -> Gate {
        Gate::new(GateOptions {
            policy: Policy::default_policy(),
            htpasswd: None,
            tokens: None,
            max_failed_logins: 0,
            trusted_proxies: NetSet::default(),
            audit: AuditLog::off(),
            service: "imgflow".into(),
        })
    }

    /// How callers sign in.
    pub fn mode(&self) -> AuthMode {
        match (&self.htpasswd, &self.tokens) {
            (_, Some(_)) => AuthMode::Token,
            (Some(_), None) => AuthMode::Basic,
            (None, None) => AuthMode::Open,
        }
    }

    /// The compiled rules.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The token service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The client's address: the TCP peer, or, when the peer is a trusted proxy, the
    /// last address of `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let peer = normalize_ip(peer);
        if self.trusted_proxies.is_empty() || !self.trusted_proxies.contains(peer) {
            return peer;
        }
        let Some(list) = forwarded_for else {
            return peer;
        };
        let mut client = peer;
        for hop in list.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = normalize_ip(ip);
                    if !self.trusted_proxies.contains(client) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }

    /// Reload the htpasswd file if it changed; logs what happened.
    pub fn reload_users(&self) {
        let Some(h) = &self.htpasswd else { return };
        match h.reload_if_changed() {
            Ok(true) => {
                tracing::info!(users = h.len(), file = %h.path().display(), "reloaded users")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "htpasswd not reloaded; the users loaded before stay")
            }
        }
    }

    /// Who the caller at `ip` is, from its credentials or, failing those, its client
    /// certificate's name (`cert`). Password checks run on the blocking pool; failures
    /// count against the address and are audited.
    pub async fn sign_in(
        self: &Arc<Self>,
        ip: IpAddr,
        creds: Credentials,
        cert: Option<&str>,
        method: &str,
    ) -> Result<Caller, SignInError> {
        let ip = normalize_ip(ip);
        let cert_identity = cert
            .filter(|n| !n.is_empty() && *n != ANONYMOUS)
            .map(Identity::user);
        let anonymous = Caller {
            ip,
            authenticated: cert_identity.is_some(),
            identity: cert_identity.unwrap_or(Identity::Anonymous),
            claims: None,
        };
        match creds {
            Credentials::None => Ok(anonymous),
            Credentials::Bearer(token) => {
                let Some(keys) = &self.tokens else {
                    return Err(SignInError::TokensOff);
                };
                match self.verify_token(keys, &token) {
                    Ok(claims) => Ok(Caller {
                        ip,
                        identity: claims.identity(),
                        claims: Some(claims),
                        authenticated: true,
                    }),
                    Err(e) => {
                        self.record(
                            AuditContext {
                                ip,
                                identity: &Identity::Anonymous,
                                method,
                            },
                            AuditAction::Deny,
                            None,
                            None,
                            Outcome::Denied,
                            Some(format!("invalid token: {e}")),
                        );
                        Err(e.into())
                    }
                }
            }
            // Open registries ignore passwords, as Distribution does.
            Credentials::Basic { .. } if self.htpasswd.is_none() => Ok(anonymous),
            Credentials::Basic { user, password } => {
                let identity = self.check_password(ip, user, password, method).await?;
                Ok(Caller {
                    ip,
                    identity,
                    claims: None,
                    authenticated: true,
                })
            }
        }
    }

    /// Verify `token`, or find it verified recently and not yet expired.
    fn verify_token(&self, keys: &TokenKeys, token: &str) -> Result<Arc<Claims>, TokenError> {
        use sha2::Digest as _;
        let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if let Some(claims) = self.verified.get(&key) {
            if now <= claims.exp + super::token::LEEWAY_SECS {
                return Ok(claims);
            }
            self.verified.remove(&key);
        }
        let claims = Arc::new(keys.verify(token, &self.service)?);
        self.verified.insert(key, claims.clone());
        Ok(claims)
    }

    /// Check `user`'s password (rate-limited per address, audited when bcrypt ran or it
    /// failed).
    async fn check_password(
        self: &Arc<Self>,
        ip: IpAddr,
        user: String,
        password: String,
        method: &str,
    ) -> Result<Identity, SignInError> {
        let claimed = Identity::user(user.clone());
        let ctx = AuditContext {
            ip,
            identity: &claimed,
            method,
        };
        if let Err(wait) = self.limiter.check(ip) {
            self.record(
                ctx,
                AuditAction::Login,
                None,
                None,
                Outcome::Denied,
                Some("too many failed sign-ins".into()),
            );
            return Err(SignInError::TooManyFailures(wait));
        }
        // A password checked recently needs no bcrypt run, nor a trip to the blocking
        // pool (curl and skopeo send it on every request).
        if self
            .htpasswd
            .as_ref()
            .is_some_and(|h| h.remembered(&user, &password))
        {
            return Ok(claimed);
        }
        let gate = self.clone();
        let check = tokio::task::spawn_blocking(move || match &gate.htpasswd {
            Some(h) => h.check(&user, &password),
            None => PasswordCheck::Wrong,
        })
        .await
        .unwrap_or(PasswordCheck::Wrong);
        match check {
            PasswordCheck::Remembered => Ok(claimed),
            PasswordCheck::Verified => {
                self.record(ctx, AuditAction::Login, None, None, Outcome::Ok, None);
                Ok(claimed)
            }
            PasswordCheck::Wrong => {
                self.limiter.record_failure(ip);
                self.record(
                    ctx,
                    AuditAction::Login,
                    None,
                    None,
                    Outcome::Failed,
                    Some("incorrect username or password".into()),
                );
                Err(SignInError::WrongPassword)
            }
        }
    }

    /// Whether `caller` may do `action` to `repo` (`repo` is ignored for the catalog).
    /// With a token: what anonymous may do at the caller's address, plus what the token
    /// grants as far as the rules also grant it to the token's identity *at this
    /// address*, which may not be where the token was issued.
    pub fn allows(&self, caller: &Caller, action: Action, repo: &str) -> bool {
        match &caller.claims {
            Some(claims) => {
                self.policy
                    .allows(caller.ip, &Identity::Anonymous, action, repo)
                    || (token_allows(claims, action, repo)
                        && self
                            .policy
                            .allows(caller.ip, &caller.identity, action, repo))
            }
            None => self
                .policy
                .allows(caller.ip, &caller.identity, action, repo),
        }
    }

    /// Whether `caller` may pull `repo` by the rules (for filtering the catalog, whose
    /// token names no repository).
    pub fn may_pull(&self, caller: &Caller, repo: &str) -> bool {
        self.allows(caller, Action::Pull, repo)
            || self
                .policy
                .allows(caller.ip, &caller.identity, Action::Pull, repo)
    }

    /// Whether a refused request could succeed if the caller signed in: it is anonymous,
    /// the registry has users, and some rule grants signed-in users this action here.
    pub fn sign_in_could_help(&self, caller: &Caller, action: Action, repo: &str) -> bool {
        caller.identity == Identity::Anonymous
            && self.mode() != AuthMode::Open
            && self.policy.sign_in_could_help(caller.ip, action, repo)
    }

    /// A token for `caller` granting the intersection of `scopes` with what the rules
    /// allow it (audited). `None` when token authentication is off.
    pub fn issue_token(
        &self,
        caller: &Caller,
        scopes: &[Scope],
        method: &str,
    ) -> Option<Result<TokenResponse, TokenError>> {
        let keys = self.tokens.as_ref()?;
        let access = scope::grant(&self.policy, caller.ip, &caller.identity, scopes);
        let granted = access
            .iter()
            .map(|a| format!("{}:{}:{}", a.resource_type, a.name, a.actions.join(",")))
            .collect::<Vec<_>>()
            .join(" ");
        let issued = keys.issue(&caller.identity, &self.service, access);
        let outcome = if issued.is_ok() {
            Outcome::Ok
        } else {
            Outcome::Failed
        };
        self.record(
            AuditContext {
                ip: caller.ip,
                identity: &caller.identity,
                method,
            },
            AuditAction::Token,
            None,
            None,
            outcome,
            Some(if granted.is_empty() {
                "granted nothing".to_string()
            } else {
                format!("granted {granted}")
            }),
        );
        Some(issued)
    }

    /// Write one audit line.
    pub fn record(
        &self,
        ctx: AuditContext<'_>,
        action: AuditAction,
        repository: Option<&str>,
        reference: Option<&str>,
        outcome: Outcome,
        detail: Option<String>,
    ) {
        self.audit.record(&AuditEvent {
            client: ctx.ip,
            identity: ctx.identity.clone(),
            method: ctx.method.to_string(),
            action,
            repository: repository.map(str::to_string),
            reference: reference.map(str::to_string),
            outcome,
            detail,
        });
    }
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
