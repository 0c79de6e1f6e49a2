//! Errors of the OCI client, and the OCI error body (`{"errors":[...]}`).

use crate::oci::Digest;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Longest part of a non-JSON error body kept in an error, in bytes.
const MAX_KEPT_BODY: usize = 2048;

/// One entry of an OCI error response: `{"code", "message", "detail"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OciError {
    /// Error code such as `BLOB_UNKNOWN` or `NAME_INVALID`.
    pub code: String,
    /// Human-readable message (may be empty).
    #[serde(default)]
    pub message: String,
    /// Unstructured detail, kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ErrorBody {
    errors: Vec<OciError>,
}

/// Parse an OCI error body. Anything that is not `{"errors":[...]}` yields an empty list.
pub fn parse_error_body(body: &[u8]) -> Vec<OciError> {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.errors)
        .unwrap_or_default()
}

/// Text of a response body for messages: valid UTF-8, at most a few kilobytes.
pub(crate) fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.len() <= MAX_KEPT_BODY {
        return text.into_owned();
    }
    let mut end = MAX_KEPT_BODY;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], body.len())
}

fn describe_errors(errors: &[OciError], body: &str) -> String {
    if errors.is_empty() {
        return if body.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", body.trim())
        };
    }
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        let sep = if i == 0 { ": " } else { "; " };
        let _ = write!(out, "{sep}{}", e.code);
        if !e.message.is_empty() {
            let _ = write!(out, " ({})", e.message);
        }
    }
    out
}

/// An error and its causes, `: `-separated (transport errors hide the useful part,
/// e.g. the TLS failure, in their sources).
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The registry answered with an unexpected HTTP status.
    #[error(
        "{method} {url}: registry answered {status}{}",
        describe_errors(errors, body)
    )]
    Status {
        /// Request method.
        method: Method,
        /// Request URL.
        url: String,
        /// Status received.
        status: StatusCode,
        /// Parsed OCI error entries (empty when the body is not an OCI error body).
        errors: Vec<OciError>,
        /// The body as text, shortened.
        body: String,
    },
    /// The request could not be sent or its response not read.
    #[error("{method} {url}: {}", error_chain(source))]
    Http {
        /// Request method.
        method: Method,
        /// Request URL.
        url: String,
        /// Underlying transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The response does not follow the distribution spec.
    #[error("{method} {url}: unexpected response: {reason}")]
    Protocol {
        /// Request method.
        method: Method,
        /// Request URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Content received or sent does not match the expected digest.
    #[error("digest mismatch: expected {expected}, computed {actual}")]
    DigestMismatch {
        /// Digest the content should have.
        expected: Digest,
        /// Digest the content has.
        actual: Digest,
    },
    /// Reading or writing local data failed.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What the client was doing.
        context: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A URL could not be built or resolved.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The offending text.
        url: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The client could not be configured (CA file, TLS setup).
    #[error("cannot configure the registry client: {0}")]
    Setup(String),
    /// Signing in to the registry failed, or the signed-in caller may not do this.
    #[error("{method} {url}: {failure}")]
    Auth {
        /// Request method.
        method: Method,
        /// Request URL.
        url: String,
        /// What went wrong.
        #[source]
        failure: AuthFailure,
    },
    /// Credentials could not be read (Docker configuration, credential helper).
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

/// Why signing in failed or a signed-in request was refused (see [`ClientError::Auth`]).
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    /// The registry or its token endpoint refused the user name and password.
    #[error("wrong credentials: {at} refused the password of {user:?}")]
    WrongCredentials {
        /// The user name sent.
        user: String,
        /// Who refused them: the token endpoint's URL or `the registry`.
        at: String,
    },
    /// The registry needs a signed-in user and the client has no credentials.
    #[error(
        "sign-in required: the registry refused anonymous access and no credentials were \
         found for it (docker login, or pass credentials){}",
        detail_suffix(message)
    )]
    SignInRequired {
        /// The registry's message, if any.
        message: String,
    },
    /// The token endpoint could not be reached (connection, TLS, timeout).
    #[error("token endpoint {realm} unreachable: {detail}")]
    TokenEndpointUnreachable {
        /// The token endpoint's URL.
        realm: String,
        /// The transport error.
        detail: String,
    },
    /// The token endpoint answered, but not with a token.
    #[error("token endpoint {realm} failed: {detail}")]
    TokenEndpointFailed {
        /// The token endpoint's URL.
        realm: String,
        /// Status or body problem.
        detail: String,
    },
    /// The caller is known, and the registry denies this action (403).
    #[error("denied: {identity} may not do this{}", detail_suffix(message))]
    Denied {
        /// `anonymous` or the user name.
        identity: String,
        /// The registry's message, if any.
        message: String,
    },
    /// The registry refused a freshly obtained token or the Basic credentials (401).
    #[error(
        "unauthorized: the registry refused the sign-in of {identity}{}",
        detail_suffix(message)
    )]
    Unauthorized {
        /// The user name.
        identity: String,
        /// The registry's message, if any.
        message: String,
    },
    /// Too many failed sign-ins from this address (429).
    #[error("too many failed sign-ins from this address; retry after {} s", retry_after.map_or("some".to_string(), |s| s.to_string()))]
    TooManyFailures {
        /// `Retry-After`, in seconds.
        retry_after: Option<u64>,
    },
    /// The token endpoint is plain HTTP while the registry is HTTPS: no credentials are
    /// sent there.
    #[error("insecure token endpoint {realm}: credentials are sent over HTTPS only")]
    InsecureRealm {
        /// The token endpoint's URL.
        realm: String,
    },
    /// The challenge lacks what the flow needs (e.g. a Bearer challenge without realm).
    #[error("unusable challenge {challenge:?}: {reason}")]
    BadChallenge {
        /// The `WWW-Authenticate` value.
        challenge: String,
        /// What is missing.
        reason: String,
    },
    /// The request's body is a stream that was consumed by the refused attempt.
    #[error(
        "the registry asked to sign in and this request's streamed body cannot be sent \
         again; call Client::authorize (or any cheap request on the repository) first"
    )]
    NotReplayable,
}

impl AuthFailure {
    /// The HTTP status that led to this failure, when one did.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            AuthFailure::Denied { .. } => Some(StatusCode::FORBIDDEN),
            AuthFailure::SignInRequired { .. } | AuthFailure::Unauthorized { .. } => {
                Some(StatusCode::UNAUTHORIZED)
            }
            AuthFailure::TooManyFailures { .. } => Some(StatusCode::TOO_MANY_REQUESTS),
            _ => None,
        }
    }
}

fn detail_suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    }
}

/// Why credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The Docker configuration file exists but cannot be read.
    #[error("cannot read the Docker configuration {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The Docker configuration file is not valid.
    #[error("invalid Docker configuration {path}: {reason}")]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The credential helper configured for the registry is not on the search path.
    #[error(
        "credential helper {helper} (configured for {host}) is not installed: not found in \
         PATH {search_path:?}"
    )]
    HelperNotInstalled {
        /// The program name, `docker-credential-NAME`.
        helper: String,
        /// The registry.
        host: String,
        /// The directories searched.
        search_path: String,
    },
    /// The credential helper could not be run or failed.
    #[error("credential helper {helper} failed for {host}: {reason}")]
    HelperFailed {
        /// The program name, `docker-credential-NAME`.
        helper: String,
        /// The registry.
        host: String,
        /// Exit status and output, or the spawn error.
        reason: String,
    },
}

impl ClientError {
    /// The HTTP status, when the registry answered with an unexpected one (also for
    /// [`ClientError::Auth`] failures coming from a 401, 403 or 429).
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            ClientError::Auth { failure, .. } => failure.status(),
            _ => None,
        }
    }

    /// What went wrong signing in, for [`ClientError::Auth`].
    pub fn auth_failure(&self) -> Option<&AuthFailure> {
        match self {
            ClientError::Auth { failure, .. } => Some(failure),
            _ => None,
        }
    }

    /// The OCI error entries of the response, if any.
    pub fn oci_errors(&self) -> &[OciError] {
        match self {
            ClientError::Status { errors, .. } => errors,
            _ => &[],
        }
    }

    /// Whether the registry reported the OCI error `code` (e.g. `MANIFEST_UNKNOWN`).
    pub fn has_code(&self, code: &str) -> bool {
        self.oci_errors().iter().any(|e| e.code == code)
    }

    /// Whether the registry answered 404 Not Found.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> ClientError {
        ClientError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result type of the client.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_oci_error_bodies() {
        let body = br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":{"digest":"sha256:abc"}},{"code":"DENIED"}]}"#;
        let errors = parse_error_body(body);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].code, "BLOB_UNKNOWN");
        assert_eq!(errors[0].message, "blob unknown to registry");
        assert_eq!(
            errors[0].detail.as_ref().and_then(|d| d["digest"].as_str()),
            Some("sha256:abc")
        );
        assert_eq!(errors[1].code, "DENIED");
        assert!(errors[1].message.is_empty() && errors[1].detail.is_none());
    }

    #[test]
    fn non_oci_bodies_yield_no_entries() {
        for body in [
            &b""[..],
            b"not json",
            b"{}",
            br#"{"errors":"x"}"#,
            b"404 page not found\n",
        ] {
            assert!(parse_error_body(body).is_empty(), "{body:?}");
        }
    }

    #[test]
    fn status_error_message_names_the_codes() {
        let err = ClientError::Status {
            method: Method::GET,
            url: "https://r.example/v2/a/manifests/x".to_string(),
            status: StatusCode::NOT_FOUND,
            errors: parse_error_body(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            ),
            body: String::new(),
        };
        assert!(err.is_not_found());
        assert!(err.has_code("MANIFEST_UNKNOWN"));
        assert!(!err.has_code("BLOB_UNKNOWN"));
        let text = err.to_string();
        assert!(
            text.contains("404 Not Found") && text.contains("MANIFEST_UNKNOWN (manifest unknown)"),
            "{text}"
        );
    }

    #[test]
    fn long_bodies_are_shortened_on_a_char_boundary() {
        let body = "é".repeat(3000);
        let excerpt = body_excerpt(body.as_bytes());
        assert!(excerpt.len() < 2100);
        assert!(excerpt.ends_with("(6000 bytes)"));
    }
}
