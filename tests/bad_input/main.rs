//! Bad input against a real `imgflow serve` over HTTPS: every malformed or hostile
//! request gets the spec's status and OCI error code (JSON body, API version header),
//! stores nothing (no blob, manifest, tag, repository or stray blob file appears), and
//! the registry keeps serving.
//!
//! Paths that HTTP client libraries would normalise (`..`, `%2e%2e`, `//`) and bodies
//! that disagree with their `Content-Length` are sent with the raw HTTP/1.1 client of
//! `common::raw_http`; everything else goes through reqwest (HTTP/2 via ALPN).
//!
//! Cases are grouped by area: [`uploads`] (digests, truncation, ranges), [`manifests`]
//! (content, size limits) and [`requests`] (names, session ids, methods).

#[path = "../common/mod.rs"]
mod common;
mod manifests;
mod requests;
mod uploads;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use common::oci_api::{
    assert_api_version, assert_error, image_manifest, verify_blob_files, Api, OCI_MANIFEST,
};
use common::raw_http::raw_request;
use common::tls::HttpResponse;
use common::{pseudo_random_bytes, Server};

pub(crate) const REPO: &str = "bad/input";
/// The server's default manifest size limit (4 MiB).
pub(crate) const MANIFEST_LIMIT: usize = 4 * 1024 * 1024;

/// A running server holding one small image tagged `v1` in [`REPO`].
pub(crate) struct Fixture {
    pub(crate) server: Server,
    pub(crate) api: Api,
    pub(crate) manifest: Vec<u8>,
    pub(crate) config_digest: String,
    pub(crate) config_len: usize,
    pub(crate) layer_digest: String,
    pub(crate) layer_len: usize,
    /// Blob digests expected on disk.
    pub(crate) blobs: Vec<String>,
    /// Repositories expected in the catalog.
    pub(crate) repos: Vec<String>,
    /// Tags expected in [`REPO`].
    pub(crate) tags: Vec<String>,
}

impl Fixture {
    pub(crate) async fn start() -> Fixture {
        let server = Server::start();
        let api = Api::new(&server);
        let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
        let layer = pseudo_random_bytes(3000, 7);
        let config_digest = api.push_blob(REPO, &config).await;
        let layer_digest = api.push_blob(REPO, &layer).await;
        let manifest = image_manifest(
            (&config_digest, config.len()),
            &[(&layer_digest, layer.len())],
        );
        let r = api.put_manifest(REPO, "v1", OCI_MANIFEST, &manifest).await;
        assert_eq!(r.status, 201, "fixture manifest push: {r:?}");
        let mut blobs = vec![config_digest.clone(), layer_digest.clone()];
        blobs.sort();
        Fixture {
            server,
            api,
            manifest,
            config_digest,
            config_len: config.len(),
            layer_digest,
            layer_len: layer.len(),
            blobs,
            repos: vec![REPO.to_string()],
            tags: vec!["v1".to_string()],
        }
    }

    pub(crate) fn ca(&self) -> PathBuf {
        self.server.ca_path()
    }

    /// One raw HTTP/1.1 request on a fresh connection.
    pub(crate) async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        raw_request(self.server.addr(), &self.ca(), method, path, headers, body).await
    }

    /// The registry still serves, and holds exactly what the fixture pushed: the same
    /// tags, manifest, repositories and blob files (each a complete blob).
    pub(crate) async fn assert_unchanged(&self, ctx: &str) {
        self.api.assert_alive(ctx).await;
        assert_eq!(self.api.tags(REPO).await, self.tags, "{ctx}: tags changed");
        let m = self.api.get(&format!("/v2/{REPO}/manifests/v1")).await;
        assert_eq!(m.status, 200, "{ctx}: GET manifest v1");
        assert!(m.body == self.manifest, "{ctx}: manifest v1 changed");
        let cat = self.api.get("/v2/_catalog").await;
        assert_eq!(cat.status, 200, "{ctx}: catalog");
        let repos: Vec<String> = cat.json()["repositories"]
            .as_array()
            .expect("repositories array")
            .iter()
            .filter_map(|r| r.as_str().map(String::from))
            .collect();
        let mut expected = self.repos.clone();
        expected.sort();
        assert_eq!(repos, expected, "{ctx}: catalog changed");
        let on_disk = verify_blob_files(self.server.data_dir(), &mut HashMap::new());
        assert_eq!(on_disk, self.blobs, "{ctx}: blob files changed");
    }

    /// Blob `digest` is absent from [`REPO`] (HEAD 404 with the API header).
    pub(crate) async fn assert_no_blob(&self, digest: &str, ctx: &str) {
        let r = self
            .api
            .send(
                "HEAD",
                &format!("/v2/{REPO}/blobs/{digest}"),
                &[],
                Vec::new(),
            )
            .await;
        assert_eq!(r.status, 404, "{ctx}: blob {digest} must be absent");
        assert_api_version(&r, ctx);
    }

    /// Manifest `reference` is absent from [`REPO`] (GET 404 MANIFEST_UNKNOWN).
    pub(crate) async fn assert_no_manifest(&self, reference: &str, ctx: &str) {
        let r = self
            .api
            .get(&format!("/v2/{REPO}/manifests/{reference}"))
            .await;
        assert_error(
            &r,
            404,
            &["MANIFEST_UNKNOWN"],
            &format!("{ctx}: {reference}"),
        );
    }

    /// An upload session in [`REPO`] holding `data`; returns its Location.
    pub(crate) async fn session_with(&self, data: &[u8]) -> String {
        let loc = self.api.start_upload(REPO).await;
        let r = self.api.patch(&loc, 0, data).await;
        assert_eq!(r.status, 202, "PATCH first chunk: {r:?}");
        loc
    }

    /// Waits (bounded) until the session at `loc` reports `offset`; panics otherwise.
    pub(crate) async fn assert_offset(&self, loc: &str, offset: u64, ctx: &str) {
        let mut last = None;
        for _ in 0..50 {
            last = self.api.upload_offset(loc).await;
            if last == Some(offset) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{ctx}: session {loc} is at {last:?}, expected {offset}");
    }
}

/// HEAD errors carry no body: check the status and the API version header.
pub(crate) fn assert_head_error(resp: &HttpResponse, status: u16, ctx: &str) {
    assert_eq!(resp.status, status, "{ctx}: {resp:?}");
    assert_api_version(resp, ctx);
}
