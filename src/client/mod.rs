//! An async OCI distribution-spec v1.1 client over HTTPS.
//!
//! [`Client`] talks to a registry only through HTTP (reqwest with rustls). It trusts the
//! CA certificates it is given (PEM, by path or bytes, or a [`RegistryTrust`] gathered
//! like docker: `--cacert`, `/etc/docker/certs.d/HOST:PORT/*.crt`, system roots) and,
//! optionally, the system's roots. Operations are grouped by resource:
//!
//! - [`blobs`]: HEAD/GET (with `Range`, into memory or streamed to a writer), DELETE;
//! - [`upload`]: monolithic, streamed and chunked uploads (hashing while reading),
//!   cross-repository mounts, upload status and cancellation;
//! - [`manifests`]: PUT (by tag or digest), GET/HEAD with `Accept`, DELETE;
//! - [`discovery`]: tag listing and catalog with `Link` pagination, referrers;
//! - [`raw`]: an escape hatch sending any request and returning status, headers and body
//!   exactly, for conformance checks.
//!
//! Signing in is transparent for every operation ([`auth`]): with [`Credentials`] (user
//! and password, or an identity token), found like docker does by [`CredentialLookup`]
//! (`config.json`, `credHelpers`/`credsStore` helpers, `auths`), or anonymously, the
//! client answers the registry's `401` challenges: the Docker token flow (`Bearer`:
//! a token per scope set from the realm, cached until shortly before it expires, see
//! [`token`]) or `Basic`. A request is sent again at most once. Once the scheme is known,
//! every request carries the right header before it is sent, so streamed uploads work
//! when any request on the registry came first (the upload's own `POST` does); see
//! [`Client::authorize`] to establish it explicitly.
//!
//! What `imgflow publish` does for a registry `HOST:PORT`:
//!
//! ```no_run
//! # async fn f() -> imgflow::client::Result<()> {
//! use imgflow::client::{Client, CredentialLookup};
//! let builder = Client::docker_builder(
//!     "registry.example:5000",
//!     &CredentialLookup::from_env(),
//!     None, // --cacert
//! )?;
//! let client = builder.build()?;
//! # Ok(()) }
//! ```
//!
//! Every failure is a [`ClientError`]; an unexpected status carries the status and the
//! parsed OCI error body, a sign-in problem is [`ClientError::Auth`] with an
//! [`AuthFailure`] telling wrong credentials, unreachable token endpoint and denial apart.

mod auth;
pub mod blobs;
mod builder;
pub mod challenge;
pub mod credentials;
pub mod discovery;
pub mod error;
pub mod headers;
mod helper;
pub mod manifests;
pub mod progress;
pub mod raw;
pub mod scope;
pub mod token;
pub mod trust;
pub mod upload;

pub use blobs::ByteRange;
pub use builder::ClientBuilder;
pub use bytes::Bytes;
pub use challenge::{parse_challenges, Challenge, Scheme};
pub use credentials::{CredentialLookup, Credentials};
pub use discovery::{CatalogPage, Referrers, TagPage};
pub use error::{parse_error_body, AuthFailure, ClientError, CredentialsError, OciError, Result};
pub use headers::{next_link, parse_upload_range, resolve_location};
pub use manifests::{FetchedManifest, ManifestHead, PushedManifest, MANIFEST_ACCEPT};
pub use progress::{Progress, ProgressEvent};
pub use raw::{RawRequest, RawResponse};
pub use reqwest::header::HeaderMap;
pub use reqwest::{Method, StatusCode, Url};
pub use scope::{Scope, Scopes};
pub use trust::RegistryTrust;
pub use upload::{BlobUpload, MountOutcome, PushedBlob, UploadOptions, DEFAULT_CHUNK_SIZE};

use crate::oci::RepoName;
use auth::Authenticator;
use reqwest::RequestBuilder;
use std::path::Path;
use std::sync::Arc;

/// Header naming the registry API version (`registry/2.0`).
pub const API_VERSION_HEADER: &str = "Docker-Distribution-API-Version";
/// Header carrying the canonical digest of a blob or manifest.
pub const CONTENT_DIGEST_HEADER: &str = "Docker-Content-Digest";
/// Header returned by a registry that processed a manifest's `subject`.
pub const OCI_SUBJECT_HEADER: &str = "OCI-Subject";
/// Header listing the referrers filters a registry applied.
pub const OCI_FILTERS_APPLIED_HEADER: &str = "OCI-Filters-Applied";

/// An OCI distribution client bound to one registry. Cheap to clone; clones share the
/// learnt sign-in scheme and the token cache.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    auth: Arc<Authenticator>,
}

impl Client {
    /// Start configuring a client for the registry at `base_url` (`https://HOST:PORT`).
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(base_url.into())
    }

    /// A builder for registry `host` (`HOST[:PORT]`, as in image references) set up
    /// the way docker would talk to it: `https://HOST[:PORT]`, the credentials `lookup`
    /// finds for it (none: anonymous), and the CAs of
    /// [`RegistryTrust::for_registry`] (`cacert`, `/etc/docker/certs.d/HOST[:PORT]/`,
    /// system roots). Runs a credential helper if one is configured (blocking).
    pub fn docker_builder(
        host: &str,
        lookup: &CredentialLookup,
        cacert: Option<&Path>,
    ) -> Result<ClientBuilder> {
        let trust = RegistryTrust::for_registry(host, cacert)?;
        let credentials = lookup.find(host)?;
        Ok(Client::builder(format!("https://{host}"))
            .trust(&trust)
            .credentials(credentials))
    }

    /// The registry's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// `HOST[:PORT]` of the registry, as credentials are looked up for it.
    pub fn registry_host(&self) -> String {
        let host = self.base.host_str().unwrap_or_default();
        match self.base.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        }
    }

    /// Resolve `target` (an absolute URL or a path such as `/v2/`) against the base URL.
    pub fn url(&self, target: &str) -> Result<Url> {
        resolve_location(&self.base, target)
    }

    /// URL of `/v2/<repo>/<tail>`.
    pub(crate) fn repo_url(&self, repo: &RepoName, tail: &str) -> Result<Url> {
        self.url(&format!("/v2/{repo}/{tail}"))
    }

    /// A request builder; [`Self::send`] adds the `Authorization` header.
    pub(crate) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url)
    }

    /// Send `rb` and require one of the `ok` statuses; any other status becomes
    /// [`ClientError::Status`] with the parsed OCI error body, or [`ClientError::Auth`]
    /// for a `401` that signing in did not cure and for a `403`.
    pub(crate) async fn send(
        &self,
        method: &Method,
        url: &Url,
        rb: RequestBuilder,
        ok: &[StatusCode],
    ) -> Result<reqwest::Response> {
        let resp = self.dispatch(method, url, rb).await?;
        if ok.contains(&resp.status()) {
            return Ok(resp);
        }
        let failure = match resp.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => resp.status(),
            _ => return Err(status_error(method, url, resp).await),
        };
        let message = if *method == Method::HEAD {
            String::new()
        } else {
            auth::registry_message(&resp.bytes().await.unwrap_or_default())
        };
        let identity = self.auth.identity();
        let failure = match failure {
            StatusCode::FORBIDDEN => AuthFailure::Denied { identity, message },
            _ if self.auth.has_credentials() => AuthFailure::Unauthorized { identity, message },
            _ => AuthFailure::SignInRequired { message },
        };
        Err(self.auth_error(method, url, failure))
    }

    fn auth_error(&self, method: &Method, url: &Url, failure: AuthFailure) -> ClientError {
        ClientError::Auth {
            method: method.clone(),
            url: url.to_string(),
            failure,
        }
    }

    /// Send `rb` signed in as the registry wants (see [`auth`]): with the header known
    /// to be needed, and once more after a `401` challenge that a token or the Basic
    /// credentials may answer. Returns the response whatever its status.
    pub(crate) async fn dispatch(
        &self,
        method: &Method,
        url: &Url,
        rb: RequestBuilder,
    ) -> Result<reqwest::Response> {
        let scopes = Scopes::for_request(method, url);
        let spare = rb.try_clone();
        let (resp, sent) = self.attempt(method, url, rb, &scopes).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let again = self
            .auth
            .challenged(&self.http, url, resp.headers(), &scopes, &sent)
            .await
            .map_err(|f| self.auth_error(method, url, f))?;
        if !again {
            return Ok(resp);
        }
        let Some(spare) = spare else {
            return Err(self.auth_error(method, url, AuthFailure::NotReplayable));
        };
        let (resp, sent) = self.attempt(method, url, spare, &scopes).await?;
        if resp.status() == StatusCode::UNAUTHORIZED && sent == auth::Sent::Basic {
            let failure = AuthFailure::WrongCredentials {
                user: self.auth.identity(),
                at: "the registry".to_string(),
            };
            return Err(self.auth_error(method, url, failure));
        }
        Ok(resp)
    }

    /// Send `rb` with the header the registry is known to want for `scopes`.
    async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        rb: RequestBuilder,
        scopes: &Scopes,
    ) -> Result<(reqwest::Response, auth::Sent)> {
        let (rb, sent) = self
            .auth
            .apply(&self.http, rb, scopes)
            .await
            .map_err(|f| self.auth_error(method, url, f))?;
        Ok((self.transmit(method, url, rb).await?, sent))
    }

    async fn transmit(
        &self,
        method: &Method,
        url: &Url,
        rb: RequestBuilder,
    ) -> Result<reqwest::Response> {
        rb.send().await.map_err(|source| ClientError::Http {
            method: method.clone(),
            url: url.to_string(),
            source: source.without_url(),
        })
    }

    /// Sign in ahead for `scopes`: learns the registry's scheme with a `GET /v2/` if no
    /// challenge was seen yet, and fetches the token when the registry uses tokens.
    ///
    /// Call it before pushing an image, with `repository:REPO:pull,push` (and
    /// `repository:SOURCE:pull` for mounts): every request of the push (HEADs,
    /// uploads, the manifest) then shares that one token, wrong credentials and an
    /// unreachable token endpoint fail before any upload, and streamed uploads, whose
    /// body could not be sent twice, never meet a challenge. An open registry, or a
    /// Basic one, needs nothing.
    pub async fn authorize(&self, scopes: &Scopes) -> Result<()> {
        let url = self.url("/v2/")?;
        let m = Method::GET;
        if !self.auth.knows_scheme() {
            let resp = self
                .transmit(&m, &url, self.request(m.clone(), url.clone()))
                .await?;
            if resp.status() == StatusCode::UNAUTHORIZED {
                self.auth
                    .learn(&url, resp.headers())
                    .map_err(|f| self.auth_error(&m, &url, f))?;
            }
        }
        // Only the token matters here: the request is not sent.
        let (_unsent, _) = self
            .auth
            .apply(&self.http, self.request(m.clone(), url.clone()), scopes)
            .await
            .map_err(|f| self.auth_error(&m, &url, f))?;
        Ok(())
    }

    /// [`Self::send`] for a request with no body and no extra headers.
    pub(crate) async fn send_bare(
        &self,
        method: &Method,
        url: &Url,
        ok: &[StatusCode],
    ) -> Result<reqwest::Response> {
        let rb = self.request(method.clone(), url.clone());
        self.send(method, url, rb, ok).await
    }

    /// `GET /v2/`: check that the registry implements the API. Returns the value of the
    /// `Docker-Distribution-API-Version` header, if sent.
    pub async fn ping(&self) -> Result<Option<String>> {
        let url = self.url("/v2/")?;
        let resp = self
            .send(
                &Method::GET,
                &url,
                self.request(Method::GET, url.clone()),
                &[StatusCode::OK],
            )
            .await?;
        Ok(header_str(resp.headers(), API_VERSION_HEADER).map(str::to_string))
    }
}

/// Build the error for an unexpected response, reading its body.
pub(crate) async fn status_error(
    method: &Method,
    url: &Url,
    resp: reqwest::Response,
) -> ClientError {
    let status = resp.status();
    let body = if *method == Method::HEAD {
        Default::default()
    } else {
        resp.bytes().await.unwrap_or_default()
    };
    ClientError::Status {
        method: method.clone(),
        url: url.to_string(),
        status,
        errors: parse_error_body(&body),
        body: error::body_excerpt(&body),
    }
}

/// A header's value as text, when present and valid.
pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A protocol error for `method url`.
pub(crate) fn protocol(method: &Method, url: &Url, reason: impl Into<String>) -> ClientError {
    ClientError::Protocol {
        method: method.clone(),
        url: url.to_string(),
        reason: reason.into(),
    }
}

/// The `Location` header of `resp`, resolved against the request URL.
pub(crate) fn location_of(method: &Method, url: &Url, resp: &reqwest::Response) -> Result<Url> {
    let value = header_str(resp.headers(), "Location")
        .ok_or_else(|| protocol(method, url, "no Location header"))?;
    resolve_location(url, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_validates_base_url_and_ca() {
        assert!(Client::builder("not a url").build().is_err());
        assert!(Client::builder("ftp://h/").build().is_err());
        let err = Client::builder("https://127.0.0.1:5000")
            .ca_pem(b"no certificate here".to_vec())
            .build()
            .unwrap_err();
        assert!(matches!(err, ClientError::Setup(_)), "{err}");
        let err = Client::builder("https://127.0.0.1:5000")
            .ca_file("/nonexistent/ca.crt")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.crt"), "{err}");
    }

    #[test]
    fn builds_repository_urls() {
        let c = Client::builder("https://127.0.0.1:5000").build().unwrap();
        let repo: RepoName = "team/app".parse().unwrap();
        assert_eq!(
            c.repo_url(&repo, "tags/list").unwrap().as_str(),
            "https://127.0.0.1:5000/v2/team/app/tags/list"
        );
        assert_eq!(
            c.url("https://other:1/x").unwrap().as_str(),
            "https://other:1/x"
        );
    }
}
