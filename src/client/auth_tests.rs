//! The sign-in flows against a fake registry and token endpoint (plain HTTP on
//! loopback), which can break them on purpose: wrong passwords, expiring and revoked
//! tokens, denials, an unreachable realm, a Basic-only registry.

use crate::client::{AuthFailure, Client, ClientError, Credentials, Scope, Scopes};
use crate::oci::{Digest, RepoName};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PASSWORD: &str = "right-pw";

/// What the fake asks for.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Bearer tokens from `/token`.
    Token,
    /// Basic credentials on every request.
    Basic,
}

struct Fake {
    mode: Mode,
    /// The realm announced (may point elsewhere, e.g. to a closed port).
    realm: Mutex<String>,
    expires_in: Option<u64>,
    /// Bumped to revoke every token issued before.
    generation: AtomicUsize,
    token_hits: AtomicUsize,
    /// The `scope` parameters of each `/token` request.
    token_scopes: Mutex<Vec<Vec<String>>>,
    /// Issued tokens: their generation and what they grant.
    issued: Mutex<HashMap<String, (usize, Scopes)>>,
}

fn respond(status: StatusCode, headers: &[(&str, String)], body: &str) -> Response {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v.as_str());
    }
    b.body(Body::from(body.to_string())).unwrap()
}

/// The user of valid Basic credentials (`Some("")`: none sent; `None`: wrong ones).
fn basic_user(headers: &HeaderMap) -> Option<String> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Some(String::new());
    };
    let encoded = value.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    (password == PASSWORD).then(|| user.to_string())
}

impl Fake {
    /// `GET /token?service=&scope=...` with Basic credentials or none.
    fn token(&self, headers: &HeaderMap, query: &str) -> Response {
        let Some(user) = basic_user(headers) else {
            return respond(StatusCode::UNAUTHORIZED, &[], "{}");
        };
        let scopes: Vec<String> = form_pairs(query)
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v)
            .collect();
        self.issue(&user, scopes)
    }

    /// `POST /token` with an OAuth 2 refresh-token form: the identity token of carol is
    /// `refresh-ok`; the scopes come space-separated.
    fn refresh(&self, form: &str) -> Response {
        let field = |name: &str| {
            form_pairs(form)
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
                .unwrap_or_default()
        };
        if field("grant_type") != "refresh_token" || field("refresh_token") != "refresh-ok" {
            return respond(StatusCode::UNAUTHORIZED, &[], "{}");
        }
        let scopes = field("scope")
            .split_ascii_whitespace()
            .map(str::to_string)
            .collect();
        self.issue("carol", scopes)
    }

    fn issue(&self, user: &str, scopes: Vec<String>) -> Response {
        let n = self.token_hits.fetch_add(1, Ordering::SeqCst) + 1;
        self.token_scopes.lock().unwrap().push(scopes.clone());
        // Anonymous callers get pull only.
        let mut granted = Scopes::new();
        for s in scopes.iter().filter_map(|s| Scope::parse(s)) {
            if !user.is_empty() || !s.actions.contains("push") {
                granted.insert(s);
            }
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let token = format!("T{n}-{user}");
        self.issued
            .lock()
            .unwrap()
            .insert(token.clone(), (generation, granted));
        let mut body = serde_json::json!({ "access_token": token });
        if let Some(secs) = self.expires_in {
            body["expires_in"] = secs.into();
        }
        respond(StatusCode::OK, &[], &body.to_string())
    }

    fn challenge(&self, scope: &str, invalid: bool) -> Response {
        let value = match self.mode {
            Mode::Basic => "Basic realm=\"fake\"".to_string(),
            Mode::Token => {
                let mut v = format!(
                    "Bearer realm=\"{}\",service=\"fake, the service\"",
                    self.realm.lock().unwrap()
                );
                if !scope.is_empty() {
                    v.push_str(&format!(",scope=\"{scope}\""));
                }
                if invalid {
                    v.push_str(",error=\"invalid_token\"");
                }
                v
            }
        };
        respond(
            StatusCode::UNAUTHORIZED,
            &[("WWW-Authenticate", value)],
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"sign in"}]}"#,
        )
    }

    /// The refusal of a request, `None` when it may go on.
    fn refusal(&self, headers: &HeaderMap, scope: &str) -> Option<Response> {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if self.mode == Mode::Basic {
            return match basic_user(headers) {
                Some(u) if !u.is_empty() => None,
                _ => Some(self.challenge(scope, false)),
            };
        }
        let Some(token) = auth.strip_prefix("Bearer ") else {
            return Some(self.challenge(scope, false));
        };
        let generation = self.generation.load(Ordering::SeqCst);
        let Some((issued_in, granted)) = self.issued.lock().unwrap().get(token).cloned() else {
            return Some(self.challenge(scope, true));
        };
        if issued_in != generation {
            return Some(self.challenge(scope, true));
        }
        let needed = match Scope::parse(scope) {
            Some(s) => Scopes::new().with(s),
            None => Scopes::new(),
        };
        if granted.covers(&needed) {
            None
        } else {
            Some(self.challenge(scope, false))
        }
    }

    async fn handle(self: Arc<Fake>, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().unwrap_or("").to_string();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        match (&parts.method, path.as_str()) {
            (&Method::POST, "/token") => return self.refresh(&String::from_utf8_lossy(&body)),
            (_, "/token") => return self.token(&parts.headers, &query),
            _ => {}
        }
        if path.starts_with("/v2/forbidden/") {
            return respond(
                StatusCode::FORBIDDEN,
                &[],
                r#"{"errors":[{"code":"DENIED","message":"not yours"}]}"#,
            );
        }
        let scope = match (&parts.method, path.as_str()) {
            (_, "/v2/") => String::new(),
            (&Method::GET | &Method::HEAD, p) if p.starts_with("/v2/public/") => {
                return respond(StatusCode::OK, &[], "{}");
            }
            (&Method::GET | &Method::HEAD, p) => format!("repository:{}:pull", repo_of(p)),
            (_, p) => format!("repository:{}:pull,push", repo_of(p)),
        };
        if let Some(refusal) = self.refusal(&parts.headers, &scope) {
            return refusal;
        }
        let accepted = |location: String| {
            respond(
                StatusCode::ACCEPTED,
                &[("Location", location), ("Range", "0-0".into())],
                "",
            )
        };
        match parts.method {
            Method::POST if query.contains("mount=") => accepted(format!("{path}m1")),
            Method::POST => accepted(format!("{path}u1")),
            Method::PATCH => accepted(path),
            Method::PUT => respond(StatusCode::CREATED, &[("Location", "/b".into())], ""),
            _ => respond(StatusCode::OK, &[], "{}"),
        }
    }
}

/// The decoded pairs of a query string or form body.
fn form_pairs(text: &str) -> impl Iterator<Item = (String, String)> {
    let url = reqwest::Url::parse(&format!("http://x/?{text}")).unwrap();
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect::<Vec<_>>()
        .into_iter()
}

fn repo_of(path: &str) -> &str {
    let rest = path.trim_start_matches("/v2/");
    rest.find("/blobs/")
        .or_else(|| rest.find("/manifests/"))
        .map_or(rest, |i| &rest[..i])
}

/// A running fake; its realm is its own `/token` unless changed.
async fn start(mode: Mode, expires_in: Option<u64>) -> (Arc<Fake>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let fake = Arc::new(Fake {
        mode,
        realm: Mutex::new(format!("{base}/token")),
        expires_in,
        generation: AtomicUsize::new(0),
        token_hits: AtomicUsize::new(0),
        token_scopes: Mutex::new(Vec::new()),
        issued: Mutex::new(HashMap::new()),
    });
    let app = axum::Router::new()
        .fallback(|State(f): State<Arc<Fake>>, req: Request| f.handle(req))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (fake, base)
}

fn client(base: &str, credentials: Option<Credentials>) -> Client {
    Client::builder(base)
        .credentials(credentials)
        .build()
        .unwrap()
}

fn carol(password: &str) -> Option<Credentials> {
    Some(Credentials::basic("carol", password))
}

fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

fn hits(fake: &Fake) -> usize {
    fake.token_hits.load(Ordering::SeqCst)
}

fn failure(err: &ClientError) -> &AuthFailure {
    err.auth_failure()
        .unwrap_or_else(|| panic!("expected an Auth error, got {err}"))
}

#[tokio::test]
async fn token_flow_retries_once_and_reuses_the_token() {
    let (fake, base) = start(Mode::Token, Some(300)).await;
    let c = client(&base, carol(PASSWORD));
    c.start_upload(&repo("team/app")).await.unwrap();
    assert_eq!(hits(&fake), 1);
    assert_eq!(
        fake.token_scopes.lock().unwrap()[0],
        ["repository:team/app:pull,push"]
    );
    // Same scopes, a covered subset, the version check: the token is reused, also by a
    // clone of the client.
    c.start_upload(&repo("team/app")).await.unwrap();
    c.clone()
        .blob_size(&repo("team/app"), &digest())
        .await
        .unwrap();
    c.ping().await.unwrap();
    assert_eq!(hits(&fake), 1);
    // Another repository needs another token.
    c.blob_size(&repo("team/other"), &digest()).await.unwrap();
    assert_eq!(hits(&fake), 2);
}

fn digest() -> Digest {
    Digest::of(crate::oci::Algorithm::Sha256, b"x")
}

#[tokio::test]
async fn parallel_requests_share_one_token() {
    let (fake, base) = start(Mode::Token, None).await;
    let c = client(&base, carol(PASSWORD));
    c.ping().await.unwrap();
    let before = hits(&fake);
    let r = repo("team/app");
    let all = futures::future::join_all((0..8).map(|_| c.start_upload(&r))).await;
    assert!(all.iter().all(Result::is_ok));
    assert_eq!(hits(&fake) - before, 1);
}

#[tokio::test]
async fn tokens_are_renewed_before_they_expire() {
    let (fake, base) = start(Mode::Token, Some(1)).await;
    let c = client(&base, carol(PASSWORD));
    let r = repo("team/app");
    c.start_upload(&r).await.unwrap();
    c.start_upload(&r).await.unwrap();
    assert_eq!(hits(&fake), 1);
    tokio::time::sleep(Duration::from_millis(950)).await;
    c.start_upload(&r).await.unwrap();
    assert_eq!(hits(&fake), 2, "usable for 0.9 s of its 1 s");
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once() {
    let (fake, base) = start(Mode::Token, Some(300)).await;
    let c = client(&base, carol(PASSWORD));
    let r = repo("team/app");
    c.start_upload(&r).await.unwrap();
    fake.generation.fetch_add(1, Ordering::SeqCst);
    c.start_upload(&r).await.unwrap();
    assert_eq!(hits(&fake), 2);
}

#[tokio::test]
async fn wrong_password_is_named() {
    let (_fake, base) = start(Mode::Token, None).await;
    let c = client(&base, carol("wrong"));
    let err = c.start_upload(&repo("team/app")).await.unwrap_err();
    let text = err.to_string();
    match failure(&err) {
        AuthFailure::WrongCredentials { user, at } => {
            assert_eq!(user, "carol");
            assert!(at.contains("/token"), "{at}");
        }
        other => panic!("{other}"),
    }
    assert!(text.contains("wrong credentials"), "{text}");
}

#[tokio::test]
async fn anonymous_tokens_and_their_limits() {
    let (fake, base) = start(Mode::Token, None).await;
    let c = client(&base, None);
    // No challenge for what anonymous may do.
    c.blob_size(&repo("public/x"), &digest()).await.unwrap();
    assert_eq!(hits(&fake), 0);
    // An anonymous token for a pull.
    c.blob_size(&repo("team/app"), &digest()).await.unwrap();
    assert_eq!(hits(&fake), 1);
    // A push is not granted to anonymous: one more token, then a clear refusal.
    let err = c.start_upload(&repo("team/app")).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
    match failure(&err) {
        AuthFailure::SignInRequired { message } => assert!(message.contains("sign in")),
        other => panic!("{other}"),
    }
    assert_eq!(hits(&fake), 2, "retried once, not in a loop");
}

#[tokio::test]
async fn denial_and_unreachable_realm() {
    let (fake, base) = start(Mode::Token, None).await;
    let c = client(&base, carol(PASSWORD));
    let err = c
        .blob_size(&repo("forbidden/x"), &digest())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::FORBIDDEN));
    assert!(matches!(failure(&err), AuthFailure::Denied { identity, .. } if identity == "carol"));

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    *fake.realm.lock().unwrap() = format!("http://127.0.0.1:{port}/token");
    let err = c.start_upload(&repo("team/app")).await.unwrap_err();
    match failure(&err) {
        AuthFailure::TokenEndpointUnreachable { realm, .. } => {
            assert!(realm.contains(&port.to_string()))
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn streamed_uploads_after_authorize() {
    let (fake, base) = start(Mode::Token, None).await;
    let c = client(&base, carol(PASSWORD));
    let r = repo("team/app");
    let push = Scopes::new().with(Scope::repository("team/app", &["pull", "push"]));
    c.authorize(&push).await.unwrap();
    let before = hits(&fake);
    let data = b"streamed layer".to_vec();
    let opts = crate::client::UploadOptions::default();
    c.push_blob_streamed(&r, std::io::Cursor::new(data), &opts)
        .await
        .unwrap();
    assert_eq!(
        hits(&fake),
        before,
        "the upload used the token fetched ahead"
    );
    // Wrong credentials fail at authorize, before any upload.
    let bad = client(&base, carol("wrong"));
    assert!(matches!(
        failure(&bad.authorize(&push).await.unwrap_err()),
        AuthFailure::WrongCredentials { .. }
    ));
}

#[tokio::test]
async fn a_mount_asks_for_both_repositories() {
    let (fake, base) = start(Mode::Token, None).await;
    let c = client(&base, carol(PASSWORD));
    c.mount_blob(&repo("team/app"), &digest(), Some(&repo("team/base")))
        .await
        .unwrap();
    let asked = fake.token_scopes.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        asked,
        ["repository:team/app:pull,push", "repository:team/base:pull"]
    );
}

#[tokio::test]
async fn basic_registries_get_credentials_after_the_challenge() {
    let (fake, base) = start(Mode::Basic, None).await;
    let c = client(&base, carol(PASSWORD));
    c.start_upload(&repo("team/app")).await.unwrap();
    c.start_upload(&repo("team/app")).await.unwrap();
    assert_eq!(hits(&fake), 0);
    let err = client(&base, carol("wrong"))
        .start_upload(&repo("team/app"))
        .await
        .unwrap_err();
    assert!(
        matches!(failure(&err), AuthFailure::WrongCredentials { at, .. } if at == "the registry")
    );
    let err = client(&base, None).ping().await.unwrap_err();
    assert!(matches!(failure(&err), AuthFailure::SignInRequired { .. }));
}

#[tokio::test]
async fn identity_tokens_are_exchanged_as_refresh_tokens() {
    let (fake, base) = start(Mode::Token, None).await;
    let identity = |token: &str| {
        Some(Credentials::IdentityToken {
            username: String::new(),
            token: token.to_string(),
        })
    };
    let c = client(&base, identity("refresh-ok"));
    c.start_upload(&repo("team/app")).await.unwrap();
    assert_eq!(
        fake.token_scopes.lock().unwrap()[0],
        ["repository:team/app:pull,push"]
    );
    let err = client(&base, identity("revoked"))
        .start_upload(&repo("team/app"))
        .await
        .unwrap_err();
    assert!(
        matches!(failure(&err), AuthFailure::WrongCredentials { .. }),
        "{err}"
    );
}
