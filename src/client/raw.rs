//! Low-level escape hatch: send any request, get the exact status, headers and body.
//!
//! The conformance suite uses it to check status codes and headers the high-level
//! operations hide.

use super::error::{body_excerpt, parse_error_body, ClientError, OciError, Result};
use super::{header_str, resolve_location, Client, HeaderMap, Method, StatusCode, Url};
use bytes::Bytes;

/// A request described field by field.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// HTTP method.
    pub method: Method,
    /// A path such as `/v2/<name>/tags/list?n=2`, or an absolute URL (e.g. a `Location`).
    pub target: String,
    /// Query parameters appended to those already in `target`.
    pub query: Vec<(String, String)>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Body. Without one, POST, PUT and PATCH send an empty body (`Content-Length: 0`).
    pub body: Option<Bytes>,
}

impl RawRequest {
    /// A request for `method target` without headers or body.
    pub fn new(method: Method, target: impl Into<String>) -> RawRequest {
        RawRequest {
            method,
            target: target.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// Append a query parameter (encoded as needed).
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Add a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }
}

/// A response as received.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Method of the request.
    pub method: Method,
    /// Final URL of the request.
    pub url: Url,
    /// Status received.
    pub status: StatusCode,
    /// Headers received.
    pub headers: HeaderMap,
    /// Body received (empty for HEAD).
    pub body: Bytes,
}

impl RawResponse {
    /// A header's value as text, when present and valid (first one if repeated).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_str(&self.headers, name)
    }

    /// The OCI error entries of the body (empty when it is not an OCI error body).
    pub fn oci_errors(&self) -> Vec<OciError> {
        parse_error_body(&self.body)
    }

    /// The `Location` header resolved against the request URL.
    pub fn location(&self) -> Option<Result<Url>> {
        self.header("Location")
            .map(|l| resolve_location(&self.url, l))
    }

    /// The body as text for messages (lossy, shortened).
    pub fn body_text(&self) -> String {
        body_excerpt(&self.body)
    }

    /// One-line summary: `METHOD URL -> STATUS`.
    pub fn summary(&self) -> String {
        format!("{} {} -> {}", self.method, self.url, self.status)
    }
}

impl Client {
    /// Send `req` as is and return the response, whatever its status.
    ///
    /// Only transport failures (connection, TLS, malformed HTTP) are errors.
    pub async fn raw(&self, req: RawRequest) -> Result<RawResponse> {
        let mut url = self.url(&req.target)?;
        if !req.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &req.query {
                pairs.append_pair(k, v);
            }
        }
        let mut rb = self.request(req.method.clone(), url.clone());
        for (name, value) in &req.headers {
            rb = rb.header(name.as_str(), value.as_str());
        }
        let needs_body = matches!(req.method, Method::POST | Method::PUT | Method::PATCH);
        match req.body {
            Some(body) => rb = rb.body(body),
            None if needs_body => rb = rb.body(Bytes::new()),
            None => {}
        }
        let http_err = |source: reqwest::Error| ClientError::Http {
            method: req.method.clone(),
            url: url.to_string(),
            source: source.without_url(),
        };
        let resp = self.dispatch(&req.method, &url, rb).await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let final_url = resp.url().clone();
        let body = resp.bytes().await.map_err(http_err)?;
        Ok(RawResponse {
            method: req.method,
            url: final_url,
            status,
            headers,
            body,
        })
    }
}
