//! The OCI Distribution v1.1 HTTP API (Docker registry v2 compatible).
//!
//! Every request goes through [`dispatch`]: the path is parsed once by [`path::Route`]
//! into typed values, then a thin handler calls [`crate::storage::Storage`]. Errors
//! become responses in [`error`] only. Every response carries
//! `Docker-Distribution-API-Version: registry/2.0`, errors included.

mod auth;
pub mod budget;
pub mod error;
pub mod headers;
pub mod path;

mod blobs;
mod discovery;
mod drain;
mod manifests;
mod uploads;

use crate::access::{Caller, Gate};
use crate::storage::Storage;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use error::{ApiError, ApiResult};
use http::{header, HeaderName, HeaderValue, Method, StatusCode};
use path::Route;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The TCP peer of a connection, put into every request's extensions by the server.
/// IPv4-mapped IPv6 addresses are normalised to IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::SocketAddr);

impl ClientAddr {
    /// The peer address with an IPv4-mapped IPv6 address turned into plain IPv4.
    pub fn new(peer: std::net::SocketAddr) -> ClientAddr {
        let ip = crate::access::normalize_ip(peer.ip());
        ClientAddr(std::net::SocketAddr::new(ip, peer.port()))
    }

    /// The client's IP address.
    pub fn ip(&self) -> std::net::IpAddr {
        self.0.ip()
    }
}

/// What every handler needs.
#[derive(Clone)]
pub struct AppState {
    /// The content store.
    pub storage: Storage,
    /// Absolute URL prefix for `Location` headers (`https://registry.example:5000`);
    /// `None` answers with relative locations, which work behind any proxy.
    pub public_url: Option<String>,
    /// How long an upload body may stay silent before it is abandoned.
    pub body_idle_timeout: Duration,
    /// The slowest an upload body may arrive once its grace period is over.
    pub min_upload_rate: headers::MinRate,
    /// Memory shared by the manifest bodies being received.
    pub manifest_budget: budget::ManifestBudget,
    /// Access control: who callers are and what they may do.
    pub gate: Arc<Gate>,
}

impl AppState {
    /// A `Location` value for `path` (which starts with `/v2/`).
    fn location(&self, path: &str) -> String {
        match &self.public_url {
            Some(base) => format!("{}{}", base.trim_end_matches('/'), path),
            None => path.to_string(),
        }
    }
}

/// The registry's HTTP service.
pub fn router(state: AppState) -> Router {
    Router::new()
        .fallback(dispatch)
        .with_state(state)
        .layer(axum::middleware::map_response(add_api_version))
}

async fn add_api_version(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        HeaderName::from_static(headers::API_VERSION),
        HeaderValue::from_static("registry/2.0"),
    );
    resp
}

/// Route one request: `/token`, or an API route once the caller is admitted.
async fn dispatch(State(app): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let query = Query::parse(parts.uri.query());
    let (body, unread) = drain::shared(body);
    let result = if parts.uri.path() == "/token" {
        auth::token(&app, &parts, &query).await
    } else {
        match Route::parse(parts.uri.path()) {
            Ok(route) => match auth::admit(&app, &route, &parts).await {
                Ok(caller) => {
                    let result = handle(&app, &caller, &route, &parts, &query, body).await;
                    auth::audit(&app, &caller, &route, &parts, &query, &result);
                    result
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e.into()),
        }
    };
    match result {
        Ok(resp) => resp,
        Err(e) => {
            // Refused before the body was read: take in what the client is still
            // sending, so it can read the error instead of a reset connection.
            let drained = !e.is_body_failure() && drain::rest(&unread, &parts.headers).await;
            let mut resp = e.into_response();
            if parts.method == Method::HEAD {
                *resp.body_mut() = Body::empty();
            }
            if !drained && parts.version < http::Version::HTTP_2 {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            resp
        }
    }
}

async fn handle(
    app: &AppState,
    caller: &Caller,
    route: &Route,
    parts: &http::request::Parts,
    query: &Query,
    body: Body,
) -> ApiResult {
    let m = &parts.method;
    let h = &parts.headers;
    let is = |allowed: &Method| m == allowed;
    match route {
        Route::Base if is(&Method::GET) || is(&Method::HEAD) => Ok(respond(
            StatusCode::OK,
            &[(header::CONTENT_TYPE, "application/json".into())],
            if is(&Method::GET) { "{}" } else { "" },
        )),
        Route::Catalog if is(&Method::GET) => discovery::catalog(app, caller, query).await,
        Route::Tags(repo) if is(&Method::GET) => discovery::tags(app, repo, query).await,
        Route::Referrers(repo, d) if is(&Method::GET) => {
            discovery::referrers(app, repo, d, query).await
        }
        Route::Manifest(repo, r) if is(&Method::GET) || is(&Method::HEAD) => {
            manifests::get(app, repo, r, h, is(&Method::HEAD)).await
        }
        Route::Manifest(repo, r) if is(&Method::PUT) => {
            manifests::put(app, repo, r, h, query, body).await
        }
        Route::Manifest(repo, r) if is(&Method::DELETE) => manifests::delete(app, repo, r).await,
        Route::Blob(repo, d) if is(&Method::GET) || is(&Method::HEAD) => {
            blobs::get(app, repo, d, h, is(&Method::HEAD)).await
        }
        Route::Blob(repo, d) if is(&Method::DELETE) => blobs::delete(app, repo, d).await,
        Route::UploadStart(repo) if is(&Method::POST) => {
            uploads::start(app, caller, repo, parts, query, body).await
        }
        Route::Upload(repo, id) if is(&Method::GET) => uploads::status(app, repo, id).await,
        Route::Upload(repo, id) if is(&Method::PATCH) => {
            uploads::patch(app, repo, id, h, body).await
        }
        Route::Upload(repo, id) if is(&Method::PUT) => {
            uploads::finish(app, repo, id, h, query, body).await
        }
        Route::Upload(repo, id) if is(&Method::DELETE) => uploads::cancel(app, repo, id).await,
        route => Err(ApiError::MethodNotAllowed(
            m.clone(),
            route.allowed_methods(),
        )),
    }
}

/// Decoded query parameters (repeated keys keep every value).
#[derive(Debug, Default)]
pub(crate) struct Query(HashMap<String, Vec<String>>);

impl Query {
    fn parse(raw: Option<&str>) -> Query {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            map.entry(decode(k)).or_default().push(decode(v));
        }
        Query(map)
    }

    /// The first value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.first()).map(String::as_str)
    }

    /// Every value of `key`.
    pub(crate) fn all(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// A response with `status`, `headers` and `body`.
pub(crate) fn respond(
    status: StatusCode,
    headers: &[(HeaderName, String)],
    body: impl Into<Body>,
) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            resp.headers_mut().insert(name.clone(), v);
        }
    }
    resp
}

/// Header name from a static lowercase string.
pub(crate) fn hname(s: &'static str) -> HeaderName {
    HeaderName::from_static(s)
}
