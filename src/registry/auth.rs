//! Access control at the HTTP edge.
//!
//! Before any handler runs, [`admit`] reads the caller's credentials (`Authorization:
//! Basic` or `Bearer`, or the client certificate's name the server put in the request),
//! asks the [`Gate`](crate::access::Gate) who the caller is, and checks the one action the
//! route needs ([`needed`]). A refusal is `401 UNAUTHORIZED` with a challenge when signing
//! in could help, `403 DENIED` when it cannot; either way before storage is consulted, so
//! a caller who may not pull a repository cannot learn whether it exists. [`token`] is the
//! Docker registry token endpoint, and [`audit`] writes the audit line of a write.

use super::error::{ApiError, ApiResult};
use super::path::Route;
use super::{respond, AppState, ClientAddr, Query};
use crate::access::{
    Action, AuditAction, AuditContext, AuthMode, Caller, CertIdentity, Credentials, Outcome, Scope,
    SignInError,
};
use base64::Engine;
use http::{header, HeaderMap, Method, StatusCode};
use std::net::{IpAddr, Ipv4Addr};

/// The action a route needs, and on which repository (`None`: the `/v2/` check, which
/// needs only a successful sign-in where users exist). Methods a route does not
/// support need nothing: they are answered 405 by the router.
pub(super) fn needed<'r>(route: &'r Route, method: &Method) -> Option<(Action, &'r str)> {
    let read = method == Method::GET || method == Method::HEAD;
    match route {
        Route::Base => None,
        Route::Catalog => Some((Action::Catalog, "")),
        Route::Tags(r) | Route::Referrers(r, _) if read => Some((Action::Pull, r.as_str())),
        Route::Manifest(r, _) | Route::Blob(r, _) if read => Some((Action::Pull, r.as_str())),
        Route::Manifest(r, _) | Route::Blob(r, _) if method == Method::DELETE => {
            Some((Action::Delete, r.as_str()))
        }
        Route::Manifest(r, _) if method == Method::PUT => Some((Action::Push, r.as_str())),
        Route::UploadStart(r) | Route::Upload(r, _) => Some((Action::Push, r.as_str())),
        _ => None,
    }
}

/// The client's address: the TCP peer, or what a trusted proxy says it forwarded.
fn client_ip(app: &AppState, parts: &http::request::Parts) -> IpAddr {
    // The server always sets ClientAddr; only in-process tests call without it.
    let peer = parts
        .extensions
        .get::<ClientAddr>()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), ClientAddr::ip);
    let forwarded = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    app.gate.client_ip(peer, forwarded)
}

/// The credentials of an `Authorization` header. Malformed Basic credentials count as a
/// wrong password (`None` user), unknown schemes as none.
fn credentials(headers: &HeaderMap) -> Result<Credentials, ()> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(Credentials::None);
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Credentials::Bearer(rest.to_string()));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(Credentials::None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .map_err(drop)?;
    let text = String::from_utf8(decoded).map_err(drop)?;
    let (user, password) = text.split_once(':').ok_or(())?;
    Ok(Credentials::Basic {
        user: user.to_string(),
        password: password.to_string(),
    })
}

/// The `WWW-Authenticate` challenge for a request needing `need` (`scope` names it
/// for token clients); `invalid_token` when a presented token was refused.
fn challenge(
    app: &AppState,
    parts: &http::request::Parts,
    need: Option<(Action, &str)>,
    invalid_token: bool,
) -> String {
    if app.gate.mode() != AuthMode::Token {
        return "Basic realm=\"imgflow\", charset=\"UTF-8\"".to_string();
    }
    let realm = match &app.public_url {
        Some(base) => format!("{}/token", base.trim_end_matches('/')),
        None => {
            let host = parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| parts.uri.authority().map(|a| a.as_str()))
                .unwrap_or("localhost");
            format!("https://{host}/token")
        }
    };
    let mut c = format!(
        "Bearer realm=\"{realm}\",service=\"{}\"",
        app.gate.service()
    );
    match need {
        Some((Action::Catalog, _)) => c.push_str(",scope=\"registry:catalog:*\""),
        Some((action, repo)) => {
            let actions = match action {
                Action::Push => "pull,push",
                other => other.as_str(),
            };
            c.push_str(&format!(",scope=\"repository:{repo}:{actions}\""));
        }
        None => {}
    }
    if invalid_token {
        c.push_str(",error=\"invalid_token\"");
    }
    c
}

/// Sign the caller in from `parts`, answering the errors a client should see.
async fn sign_in(
    app: &AppState,
    parts: &http::request::Parts,
    need: Option<(Action, &str)>,
) -> Result<Caller, ApiError> {
    let ip = client_ip(app, parts);
    let cert = parts.extensions.get::<CertIdentity>().map(|c| c.0.as_str());
    let creds = match credentials(&parts.headers) {
        Ok(c) => c,
        Err(()) => Credentials::Basic {
            user: String::new(),
            password: String::new(),
        },
    };
    let method = parts.method.as_str();
    match app.gate.sign_in(ip, creds, cert, method).await {
        Ok(caller) => Ok(caller),
        Err(SignInError::TooManyFailures(retry_after)) => {
            Err(ApiError::TooManyFailedLogins { retry_after })
        }
        Err(e @ (SignInError::BadToken(_) | SignInError::TokensOff)) => {
            Err(ApiError::Unauthorized {
                challenge: challenge(app, parts, need, true),
                message: e.to_string(),
            })
        }
        Err(e @ SignInError::WrongPassword) => Err(ApiError::Unauthorized {
            challenge: challenge(app, parts, need, false),
            message: e.to_string(),
        }),
    }
}

/// Admit a request to `route`: the signed-in caller, or the error to answer.
pub(super) async fn admit(
    app: &AppState,
    route: &Route,
    parts: &http::request::Parts,
) -> Result<Caller, ApiError> {
    let need = needed(route, &parts.method);
    let caller = sign_in(app, parts, need).await?;
    if !app.gate.policy().admits_address(caller.ip) {
        // Only through a trusted proxy: direct connections are closed at accept.
        return Err(ApiError::Denied(format!("no access from {}", caller.ip)));
    }
    let Some((action, repo)) = need else {
        // The version check: where users exist it is how clients (`docker login`) find
        // out how to sign in, and whether their credentials work.
        if matches!(route, Route::Base)
            && app.gate.mode() != AuthMode::Open
            && !caller.authenticated
        {
            return Err(ApiError::Unauthorized {
                challenge: challenge(app, parts, None, false),
                message: "sign in to use this registry".into(),
            });
        }
        return Ok(caller);
    };
    if app.gate.allows(&caller, action, repo) {
        return Ok(caller);
    }
    let what = match action {
        Action::Catalog => "list repositories".to_string(),
        other => format!("{} {repo}", other.as_str()),
    };
    app.gate.record(
        AuditContext {
            ip: caller.ip,
            identity: &caller.identity,
            method: parts.method.as_str(),
        },
        AuditAction::Deny,
        (!repo.is_empty()).then_some(repo),
        None,
        Outcome::Denied,
        Some(format!("may not {what}")),
    );
    if app.gate.sign_in_could_help(&caller, action, repo) {
        Err(ApiError::Unauthorized {
            challenge: challenge(app, parts, need, false),
            message: format!("authentication required to {what}"),
        })
    } else {
        Err(ApiError::Denied(format!(
            "{} may not {what} from {}",
            caller.identity, caller.ip
        )))
    }
}

/// `GET /token`: a Docker registry token for the caller (Basic credentials, or none for
/// an anonymous token) granting what it asked in `scope` as far as the rules allow.
pub(super) async fn token(
    app: &AppState,
    parts: &http::request::Parts,
    query: &Query,
) -> ApiResult {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return Err(ApiError::MethodNotAllowed(parts.method.clone(), "GET"));
    }
    if app.gate.mode() != AuthMode::Token {
        return Err(ApiError::Path(super::path::PathError::NotFound(
            "/token (token authentication is off)".into(),
        )));
    }
    let caller = sign_in(app, parts, None).await?;
    let scopes = Scope::parse_all(query.all("scope").iter().map(String::as_str));
    let issued = app
        .gate
        .issue_token(&caller, &scopes, parts.method.as_str())
        .ok_or_else(|| ApiError::Denied("token authentication is off".into()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let body = serde_json::to_string(&issued).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(respond(
        StatusCode::OK,
        &[
            (header::CONTENT_TYPE, "application/json".into()),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
        body,
    ))
}

/// Write the audit line of a write request (manifest push and tags, deletes), now that
/// its outcome is known.
pub(super) fn audit(
    app: &AppState,
    caller: &Caller,
    route: &Route,
    parts: &http::request::Parts,
    query: &Query,
    result: &ApiResult,
) {
    let method = parts.method.as_str();
    let ctx = AuditContext {
        ip: caller.ip,
        identity: &caller.identity,
        method,
    };
    let outcome = if result.is_ok() {
        Outcome::Ok
    } else {
        Outcome::Failed
    };
    let detail = result.as_ref().err().map(|e| e.to_string());
    let record = |action, repo: &str, reference: &str, detail: Option<String>| {
        app.gate
            .record(ctx, action, Some(repo), Some(reference), outcome, detail)
    };
    match route {
        Route::Manifest(repo, reference) if parts.method == Method::PUT => {
            let digest = result
                .as_ref()
                .ok()
                .and_then(|r| r.headers().get(super::headers::CONTENT_DIGEST))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let pushed = digest.clone().unwrap_or_else(|| reference.to_string());
            record(AuditAction::Push, repo.as_str(), &pushed, detail.clone());
            let mut tags: Vec<String> = query.all("tag").to_vec();
            if let crate::oci::Reference::Tag(tag) = reference {
                tags.push(tag.to_string());
            }
            for tag in tags {
                let to = digest.as_ref().map(|d| format!("-> {d}"));
                record(AuditAction::Tag, repo.as_str(), &tag, detail.clone().or(to));
            }
        }
        Route::Manifest(repo, reference) if parts.method == Method::DELETE => {
            record(
                AuditAction::Delete,
                repo.as_str(),
                &reference.to_string(),
                detail,
            );
        }
        Route::Blob(repo, digest) if parts.method == Method::DELETE => {
            record(AuditAction::Delete, repo.as_str(), digest.as_str(), detail);
        }
        _ => {}
    }
}
