//! API errors, and the one place where every error becomes an HTTP status, an OCI
//! error code and a JSON error body.

use super::path::PathError;
use crate::oci::{DigestError, NameError};
use crate::storage::StorageError;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

/// The message of a 507 answer: the data volume (blobs, uploads or the metadata
/// database) has no space left.
pub const STORAGE_FULL_MESSAGE: &str =
    "the registry's storage is full (no space left on its data volume); retry once space is freed";

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
    /// The caller must sign in (or its credentials were refused); `challenge` is the
    /// `WWW-Authenticate` value telling it how.
    #[error("{message}")]
    Unauthorized {
        /// `WWW-Authenticate` value.
        challenge: String,
        /// What to tell the client.
        message: String,
    },
    /// Too many failed sign-ins from this address.
    #[error("too many failed sign-ins from this address; retry in {} s", .retry_after.as_secs().max(1))]
    TooManyFailedLogins {
        /// When the client may try again.
        retry_after: std::time::Duration,
    },
    /// The access rules refuse this, and signing in would not change that.
    #[error("access denied: {0}")]
    Denied(String),
    /// A failure of the registry itself (logged, not shown in detail).
    #[error("{0}")]
    Internal(String),
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
                S::InUse { .. } => (StatusCode::CONFLICT, "DENIED", none()),
                S::TooManyUploads(_) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "TOOMANYREQUESTS",
                    vec![(header::RETRY_AFTER, "60".to_string())],
                ),
                S::Unsupported(_) => (StatusCode::BAD_REQUEST, "UNSUPPORTED", none()),
                // No OCI code means "out of space"; Distribution answers UNKNOWN too.
                S::Io(_) | S::Db(_) | S::ObjectStore(_) if e.is_storage_full() => {
                    (StatusCode::INSUFFICIENT_STORAGE, "UNKNOWN", none())
                }
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
            ApiError::TooManyRequests { retry_after }
            | ApiError::TooManyFailedLogins { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                vec![(
                    header::RETRY_AFTER,
                    retry_after.as_secs().max(1).to_string(),
                )],
            ),
            ApiError::Unauthorized { challenge, .. } => (
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                vec![(header::WWW_AUTHENTICATE, challenge.clone())],
            ),
            ApiError::Denied(_) => (StatusCode::FORBIDDEN, "DENIED", none()),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", none()),
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
        let message = if status == StatusCode::INSUFFICIENT_STORAGE {
            tracing::error!(error = %self, "storage full");
            STORAGE_FULL_MESSAGE.to_string()
        } else if status.is_server_error() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// Status, OCI code and message of the response `err` becomes.
    async fn answer(err: StorageError) -> (StatusCode, String, String) {
        let resp = ApiError::from(err).into_response();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let e = &json["errors"][0];
        (
            status,
            e["code"].as_str().unwrap().to_string(),
            e["message"].as_str().unwrap().to_string(),
        )
    }

    fn os_error(errno: i32) -> std::io::Error {
        std::io::Error::from_raw_os_error(errno)
    }

    #[tokio::test]
    async fn full_disk_and_quota_are_507_with_a_clear_message() {
        let full = [
            StorageError::Io(os_error(libc::ENOSPC)),
            StorageError::Io(os_error(libc::EDQUOT)),
            // Wrapped once more, as the blocking-pool helpers do.
            StorageError::Io(std::io::Error::other(os_error(libc::ENOSPC))),
            StorageError::Db(sqlx::Error::Io(os_error(libc::ENOSPC))),
            // object_store's local backend wraps its own error around the io::Error.
            StorageError::ObjectStore(object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(std::io::Error::other(os_error(libc::EDQUOT))),
            }),
        ];
        for err in full {
            let what = format!("{err:?}");
            let (status, code, message) = answer(err).await;
            assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{what}");
            assert_eq!(code, "UNKNOWN", "{what}");
            assert_eq!(message, STORAGE_FULL_MESSAGE, "{what}");
        }
    }

    #[tokio::test]
    async fn other_io_errors_stay_500_without_details() {
        for errno in [libc::EIO, libc::EACCES, libc::EROFS] {
            let (status, code, message) = answer(StorageError::Io(os_error(errno))).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "errno {errno}");
            assert_eq!(code, "UNKNOWN");
            assert!(!message.contains("full"), "{message}");
        }
    }

    /// A real `SQLITE_FULL` from SQLite: a database capped at a few pages runs out.
    #[tokio::test]
    async fn sqlite_full_is_507() {
        use sqlx::ConnectOptions;
        let mut conn = "sqlite::memory:"
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .unwrap()
            .connect()
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (b BLOB)")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("PRAGMA max_page_count = 4")
            .execute(&mut conn)
            .await
            .unwrap();
        let err = sqlx::query("INSERT INTO t VALUES (zeroblob(1000000))")
            .execute(&mut conn)
            .await
            .expect_err("a 1 MB row cannot fit in 4 pages");
        let err = StorageError::Db(err);
        assert!(err.is_storage_full(), "{err:?}");
        let (status, code, _) = answer(err).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::INSUFFICIENT_STORAGE, "UNKNOWN")
        );
        // Other database errors are not mistaken for a full disk.
        let err = sqlx::query("INSERT INTO missing VALUES (1)")
            .execute(&mut conn)
            .await
            .unwrap_err();
        let (status, _, _) = answer(StorageError::Db(err)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
