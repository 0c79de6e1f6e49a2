//! Thin async helpers over reqwest for exact-status API tests: send a request and keep
//! the whole response, push blobs and manifests step by step, assert OCI error bodies,
//! and check the blob directory of a data dir.

use std::path::Path;

use super::tls::HttpResponse;
use super::Server;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer media type.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A client bound to one registry base URL.
#[derive(Clone)]
pub struct Api {
    /// HTTPS client trusting the registry's CA (HTTP/2 when offered, via ALPN).
    pub client: reqwest::Client,
    /// `https://HOST:PORT`.
    pub base: String,
}

impl Api {
    /// A client for `server`.
    pub fn new(server: &Server) -> Api {
        Api {
            client: server.client(),
            base: server.url(),
        }
    }

    /// `path` (starting with `/`) or an absolute URL, as a full URL.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.base, path)
        }
    }

    /// Sends one request and reads the whole response; panics on transport errors.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> HttpResponse {
        self.try_send(method, path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Like [`Api::send`] but returns transport errors.
    pub async fn try_send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> Result<HttpResponse, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method token");
        let mut req = self.client.request(method, self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.body(body).send().await.map_err(|e| format!("{e:?}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| format!("{e:?}"))?.to_vec();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    /// GET without a body.
    pub async fn get(&self, path: &str) -> HttpResponse {
        self.send("GET", path, &[], Vec::new()).await
    }

    /// Status of a HEAD request.
    pub async fn head_status(&self, path: &str) -> u16 {
        self.send("HEAD", path, &[], Vec::new()).await.status
    }

    /// Asserts that the registry still answers `GET /v2/` with 200.
    pub async fn assert_alive(&self, ctx: &str) {
        let r = self.get("/v2/").await;
        assert_eq!(r.status, 200, "{ctx}: GET /v2/ afterwards: {r:?}");
    }

    /// Monolithic push (`POST ?digest=`); asserts 201 and returns the digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = super::sha256_digest(data);
        let r = self
            .send(
                "POST",
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
                &[("Content-Type", "application/octet-stream")],
                data.to_vec(),
            )
            .await;
        assert_eq!(r.status, 201, "monolithic push to {repo}: {r:?}");
        digest
    }

    /// Opens an upload session; returns its `Location` (as sent by the server).
    pub async fn start_upload(&self, repo: &str) -> String {
        let r = self
            .send(
                "POST",
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                Vec::new(),
            )
            .await;
        assert_eq!(r.status, 202, "POST upload in {repo}: {r:?}");
        r.header("location").expect("Location on 202")
    }

    /// PATCHes `data` at `offset` with a `Content-Range`; returns the response.
    pub async fn patch(&self, location: &str, offset: u64, data: &[u8]) -> HttpResponse {
        let range = content_range(offset, data.len() as u64);
        self.send(
            "PATCH",
            location,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", &range),
            ],
            data.to_vec(),
        )
        .await
    }

    /// Bytes held by the upload session at `location`; `None` when it answers 404.
    pub async fn upload_offset(&self, location: &str) -> Option<u64> {
        let r = self.get(location).await;
        match r.status {
            204 => Some(range_offset(&r)),
            404 => None,
            other => panic!("GET {location}: unexpected {other}: {r:?}"),
        }
    }

    /// Closes the upload at `location` with an optional last chunk and `digest`.
    pub async fn finish(&self, location: &str, digest: &str, last: &[u8]) -> HttpResponse {
        let sep = if location.contains('?') { '&' } else { '?' };
        self.send(
            "PUT",
            &format!("{location}{sep}digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            last.to_vec(),
        )
        .await
    }

    /// PUTs a manifest; returns the response.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> HttpResponse {
        self.send(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type", media_type)],
            body.to_vec(),
        )
        .await
    }

    /// The tags of `repo` (empty when the repository is unknown).
    pub async fn tags(&self, repo: &str) -> Vec<String> {
        let r = self.get(&format!("/v2/{repo}/tags/list")).await;
        if r.status == 404 {
            return Vec::new();
        }
        assert_eq!(r.status, 200, "tags of {repo}: {r:?}");
        r.json()["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// GETs blob `digest` of `repo` and asserts it is exactly `expected`.
    pub async fn assert_blob(&self, repo: &str, digest: &str, expected: &[u8], ctx: &str) {
        let r = self.get(&format!("/v2/{repo}/blobs/{digest}")).await;
        assert_eq!(
            r.status, 200,
            "{ctx}: GET blob {digest}: status {}",
            r.status
        );
        assert_eq!(
            super::sha256_digest(&r.body),
            digest,
            "{ctx}: GET blob {digest} returned other content ({} bytes, expected {})",
            r.body.len(),
            expected.len()
        );
        assert!(r.body == expected, "{ctx}: blob {digest} bytes differ");
    }
}

/// `Content-Range` of a chunk of `len` bytes at `offset` (`start-end`, inclusive).
pub fn content_range(offset: u64, len: u64) -> String {
    format!("{}-{}", offset, offset + len.saturating_sub(1))
}

/// The session offset an upload response's `Range: 0-<last>` describes. `0-0` is read
/// as an empty session (tests never leave exactly one byte in a session).
pub fn range_offset(resp: &HttpResponse) -> u64 {
    let range = resp
        .header("range")
        .unwrap_or_else(|| panic!("no Range header in {resp:?}"));
    let (start, end) = range
        .split_once('-')
        .unwrap_or_else(|| panic!("bad Range {range:?}"));
    assert_eq!(start, "0", "Range must start at 0: {range:?}");
    let end: u64 = end
        .parse()
        .unwrap_or_else(|_| panic!("bad Range {range:?}"));
    if end == 0 {
        0
    } else {
        end + 1
    }
}

/// Asserts an OCI error response: `status`, one of `codes` as the first error code in
/// a `{"errors":[{"code":...}]}` JSON body, `Content-Type: application/json` and the
/// `Docker-Distribution-API-Version` header.
pub fn assert_error(resp: &HttpResponse, status: u16, codes: &[&str], ctx: &str) {
    assert_eq!(
        resp.status,
        status,
        "{ctx}: expected status {status}, got {}: {}",
        resp.status,
        String::from_utf8_lossy(&resp.body)
    );
    assert_api_version(resp, ctx);
    let ct = resp.header("content-type").unwrap_or_default();
    assert!(
        ct.starts_with("application/json"),
        "{ctx}: error Content-Type is {ct:?}, expected application/json"
    );
    let json: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_else(|e| {
        panic!(
            "{ctx}: error body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&resp.body)
        )
    });
    let code = json["errors"][0]["code"].as_str().unwrap_or_else(|| {
        panic!("{ctx}: error body has no errors[0].code: {json}");
    });
    assert!(
        codes.contains(&code),
        "{ctx}: error code {code:?}, expected one of {codes:?}: {json}"
    );
}

/// Asserts `Docker-Distribution-API-Version: registry/2.0`.
pub fn assert_api_version(resp: &HttpResponse, ctx: &str) {
    assert_eq!(
        resp.header("docker-distribution-api-version").as_deref(),
        Some("registry/2.0"),
        "{ctx}: Docker-Distribution-API-Version header missing or wrong (status {})",
        resp.status
    );
}

/// An image manifest with `config` and `layers`, each given as (digest, size).
pub fn image_manifest(config: (&str, usize), layers: &[(&str, usize)]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(d, s)| serde_json::json!({"mediaType": OCI_LAYER, "digest": d, "size": s}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.0, "size": config.1},
        "layers": layers,
    }))
    .expect("serialising a manifest")
}

/// Walks `DATA/blobs/<algorithm>/<xx>/<hex>` and asserts that every regular file there
/// is a complete blob: it sits in the directory named by its first two hex characters
/// and its content hashes to its name. Returns the digests found. Files already listed
/// in `known` (digest → size) with the same size are not re-hashed.
pub fn verify_blob_files(
    data_dir: &Path,
    known: &mut std::collections::HashMap<String, u64>,
) -> Vec<String> {
    use sha2::{Digest, Sha256, Sha512};
    use std::io::Read;
    let mut found = Vec::new();
    let root = data_dir.join("blobs");
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.expect("directory entry");
            let path = entry.path();
            let ft = entry.file_type().expect("file type");
            if ft.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&root).expect("under blobs/");
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            assert!(
                parts.len() == 3 && parts[2].starts_with(&parts[1]) && parts[1].len() == 2,
                "stray file under blobs/: {} (expected <algorithm>/<xx>/<hex>)",
                path.display()
            );
            let digest = format!("{}:{}", parts[0], parts[2]);
            let size = entry.metadata().expect("metadata").len();
            if known.get(&digest) == Some(&size) {
                found.push(digest);
                continue;
            }
            let mut file = std::fs::File::open(&path).expect("open blob file");
            let mut buf = vec![0u8; 1 << 20];
            let actual = match parts[0].as_str() {
                "sha256" => {
                    let mut h = Sha256::new();
                    loop {
                        let n = file.read(&mut buf).expect("read blob file");
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                    }
                    hex::encode(h.finalize())
                }
                "sha512" => {
                    let mut h = Sha512::new();
                    loop {
                        let n = file.read(&mut buf).expect("read blob file");
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                    }
                    hex::encode(h.finalize())
                }
                other => panic!("unexpected algorithm directory blobs/{other}"),
            };
            assert_eq!(
                actual,
                parts[2],
                "blob file {} ({size} bytes) does not hash to its name: partial or corrupt",
                path.display()
            );
            known.insert(digest.clone(), size);
            found.push(digest);
        }
    }
    found.sort();
    found
}
