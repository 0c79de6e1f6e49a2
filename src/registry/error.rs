//! API errors, and the one place where every error becomes an HTTP status, an OCI
//! error code and a JSON error body.

use super::path::PathError;
use crate::oci::{DigestError, NameError};
use crate::storage::StorageError;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// From the storage layer.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A repository name, tag or digest in the URL is invalid.
    #[error(transparent)]
    Path(#[from] PathError),
    /// A digest in a query parameter is invalid.
    #[error("{0}")]
    Digest(#[from] DigestError),
    /// A repository name in a query parameter (`from=`) is invalid.
    #[error("{0}")]
    Name(NameError),
    /// A required query parameter is missing.
    #[error("missing query parameter {0:?}")]
    MissingDigest(&'static str),
    /// A malformed upload request (bad Content-Range, unreadable body, ...).
    #[error("{0}")]
    UploadInvalid(String),
    /// A malformed `Range` header or query parameter.
    #[error("{0}")]
    BadRequest(String),
    /// Too many requests of this kind are in flight; the client should retry later.
    #[error("too many requests in flight; retry in {} s", .retry_after.as_secs())]
    TooManyRequests {
        /// When the client should retry.
        retry_after: std::time::Duration,
    },
    /// The method is not defined on this endpoint, which allows the methods listed.
    #[error("method {0} is not supported on this endpoint (allowed: {1})")]
    MethodNotAllowed(http::Method, &'static str),
}

impl ApiError {
    /// Whether the request body broke off or went silent (nothing left worth reading).
    pub fn is_body_failure(&self) -> bool {
        matches!(self, ApiError::Storage(StorageError::BodyFailed(_)))
    }

    /// Status, OCI code and extra headers of this error.
    fn parts(&self) -> (StatusCode, &'static str, Vec<(header::HeaderName, String)>) {
        use StorageError as S;
        let none = Vec::new;
        match self {
            ApiError::Storage(e) => match e {
                S::BlobUnknown(_) => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN", none()),
                S::UploadUnknown(_) => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN", none()),
                S::RangeMismatch { current, .. } => (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "BLOB_UPLOAD_INVALID",
                    vec![(header::RANGE, super::headers::upload_range(*current))],
                ),
                S::UploadInvalid(_) => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", none()),
                // Silent, too slow or broken off: the request did not arrive in time.
                S::BodyFailed(_) => (StatusCode::REQUEST_TIMEOUT, "BLOB_UPLOAD_INVALID", none()),
                S::DigestMismatch { .. } => (StatusCode::BAD_REQUEST, "DIGEST_INVALID", none()),
                S::SizeInvalid(_) => (StatusCode::BAD_REQUEST, "SIZE_INVALID", none()),
                S::RangeNotSatisfiable { size } => (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "SIZE_INVALID",
                    vec![(header::CONTENT_RANGE, format!("bytes */{size}"))],
                ),
                S::ManifestInvalid(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID", none()),
                S::ManifestTooLarge { .. } => {
                    (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID", none())
                }
                S::ManifestBlobUnknown(_) => {
                    (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN", none())
                }
                S::ManifestUnknown(_) => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", none()),
                S::NameUnknown(_) => (StatusCode::NOT_FOUND, "NAME_UNKNOWN", none()),
                S::Unsupported(_) => (StatusCode::BAD_REQUEST, "UNSUPPORTED", none()),
                S::Io(_) | S::Db(_) | S::ObjectStore(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", none())
                }
            },
            ApiError::Path(PathError::NotFound(_)) => {
                (StatusCode::NOT_FOUND, "UNSUPPORTED", none())
            }
            ApiError::Path(PathError::Name(n)) | ApiError::Name(n) => match n {
                NameError::InvalidDigest(_) => (StatusCode::BAD_REQUEST, "DIGEST_INVALID", none()),
                NameError::InvalidTag(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID", none()),
                NameError::InvalidName(_) | NameError::NameTooLong(_) => {
                    (StatusCode::BAD_REQUEST, "NAME_INVALID", none())
                }
            },
            ApiError::Digest(_) | ApiError::MissingDigest(_) => {
                (StatusCode::BAD_REQUEST, "DIGEST_INVALID", none())
            }
            ApiError::UploadInvalid(_) => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", none()),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "UNSUPPORTED", none()),
            ApiError::TooManyRequests { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                vec![(
                    header::RETRY_AFTER,
                    retry_after.as_secs().max(1).to_string(),
                )],
            ),
            ApiError::MethodNotAllowed(_, allowed) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                vec![(header::ALLOW, allowed.to_string())],
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, extra) = self.parts();
        let message = if status.is_server_error() {
            tracing::error!(error = %self, "internal error");
            "internal server error; see the registry log".to_string()
        } else {
            tracing::debug!(error = %self, code, "request rejected");
            self.to_string()
        };
        let body = serde_json::json!({
            "errors": [{ "code": code, "message": message, "detail": null }]
        });
        let mut resp = (status, body.to_string()).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in extra {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        resp
    }
}

/// Result alias for handlers.
pub type ApiResult<T = Response> = std::result::Result<T, ApiError>;
