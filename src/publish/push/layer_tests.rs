//! Unit tests of the blob decisions (cache, HEAD retries) against a fake registry that
//! answers blob HEADs only, over plain HTTP on loopback.

use super::archive::{DockerArchive, LayerSource};
use super::cache::{CachedBlob, LayerCache};
use super::chunked::UploadTarget;
use super::error::PushError;
use super::layer::{BlobOutcome, BlobPusher};
use super::progress::{BlobKind, LayerEvent, PushProgress};
use super::retry::RetryPolicy;
use crate::client::Client;
use crate::oci::{Digest, RepoName};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Blobs it holds, HEADs to fail with 503 first, and every request it saw.
#[derive(Default)]
struct Fake {
    blobs: HashMap<String, u64>,
    failing_heads: AtomicU32,
    seen: Mutex<Vec<String>>,
}

async fn answer(
    axum::extract::State(fake): axum::extract::State<Arc<Fake>>,
    method: Method,
    uri: Uri,
) -> Response {
    fake.seen.lock().unwrap().push(format!("{method} {uri}"));
    let digest = uri.path().rsplit('/').next().unwrap_or_default();
    if method != Method::HEAD || !uri.path().contains("/blobs/") {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let fail = fake
        .failing_heads
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    if fail.is_ok() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match fake.blobs.get(digest) {
        Some(size) => (StatusCode::OK, [("content-length", size.to_string())]).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn serve(fake: Arc<Fake>) -> Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(answer).with_state(fake);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Client::builder(format!("http://{addr}")).build().unwrap()
}

/// An archive whose one layer does NOT have the diff id its config names: compressing it
/// would fail, so a push that succeeds has not read it.
fn archive(dir: &Path) -> (DockerArchive, Digest) {
    let claimed = Digest::sha256(b"the real layer");
    let config = serde_json::json!({"rootfs": {"type": "layers", "diff_ids": [claimed]}});
    let manifest = serde_json::json!([{"Config": "c.json", "Layers": ["l/layer.tar"]}]);
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in [
        ("c.json", config.to_string().into_bytes()),
        ("l/layer.tar", b"other bytes".to_vec()),
        ("manifest.json", manifest.to_string().into_bytes()),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, path, &data[..]).unwrap();
    }
    let path = dir.join("a.tar");
    std::fs::write(&path, tar.into_inner().unwrap()).unwrap();
    (DockerArchive::open(&path).unwrap(), claimed)
}

/// The archive, its layer, the layer's claimed diff id and a cache entry for it.
fn fixture(dir: &Path) -> (Arc<DockerArchive>, LayerSource, Digest, CachedBlob) {
    let (archive, diff_id) = archive(dir);
    let layer = archive.image(0).unwrap().layers[0].clone();
    let cached = CachedBlob {
        digest: Digest::sha256(b"compressed"),
        size: 10,
    };
    (Arc::new(archive), layer, diff_id, cached)
}

struct Setup {
    client: Client,
    repo: RepoName,
    retry: RetryPolicy,
    progress: PushProgress,
    events: Arc<Mutex<Vec<LayerEvent>>>,
    cache: LayerCache,
}

impl Setup {
    fn pusher<'a>(&'a self, dir: &'a Path) -> BlobPusher<'a> {
        BlobPusher {
            target: UploadTarget {
                client: &self.client,
                repo: &self.repo,
                chunk_size: 1 << 20,
                retry: &self.retry,
                progress: &self.progress,
                blob: BlobKind::Layer(0),
            },
            mount_from: &[],
            cache: &self.cache,
            temp_dir: dir,
        }
    }
}

async fn setup(fake: Fake, diff_id: &Digest, cached: &CachedBlob) -> (Setup, Arc<Fake>) {
    let fake = Arc::new(fake);
    let events: Arc<Mutex<Vec<LayerEvent>>> = Arc::default();
    let sink = events.clone();
    let cache = LayerCache::in_memory();
    cache.put(diff_id, cached.clone());
    let setup = Setup {
        client: serve(fake.clone()).await,
        repo: "team/app".parse().unwrap(),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(10),
        },
        progress: PushProgress::new(move |_, e| sink.lock().unwrap().push(e.clone())),
        events,
        cache,
    };
    (setup, fake)
}

#[tokio::test]
async fn cache_hit_confirmed_by_head_skips_compression_and_head_errors_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, layer, diff_id, cached) = fixture(dir.path());
    let fake = Fake {
        blobs: [(cached.digest.to_string(), cached.size)].into(),
        failing_heads: AtomicU32::new(2),
        ..Fake::default()
    };
    let (s, fake) = setup(fake, &diff_id, &cached).await;
    let pushed = s
        .pusher(dir.path())
        .push_layer(&archive, &layer)
        .await
        .unwrap();
    assert_eq!(pushed.outcome, BlobOutcome::Existed);
    assert!(pushed.from_cache);
    assert_eq!(pushed.digest, cached.digest);
    let events = s.events.lock().unwrap().clone();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, LayerEvent::Compressing { .. })),
        "{events:?}"
    );
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "two 503s, then found: {seen:?}");
    assert!(seen.iter().all(|r| r.starts_with("HEAD ")));
}

#[tokio::test]
async fn a_failing_head_is_never_read_as_absent() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, layer, diff_id, cached) = fixture(dir.path());
    let fake = Fake {
        failing_heads: AtomicU32::new(u32::MAX),
        ..Fake::default()
    };
    let (s, fake) = setup(fake, &diff_id, &cached).await;
    let err = s
        .pusher(dir.path())
        .push_layer(&archive, &layer)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PushError::RetriesExhausted { attempts: 3, .. }),
        "{err}"
    );
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "only the HEADs, nothing uploaded: {seen:?}");
}

#[tokio::test]
async fn an_unconfirmed_cache_entry_leads_to_compression() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, layer, diff_id, cached) = fixture(dir.path());
    let (s, _fake) = setup(Fake::default(), &diff_id, &cached).await;
    let err = s
        .pusher(dir.path())
        .push_layer(&archive, &layer)
        .await
        .unwrap_err();
    // The registry does not have the cached blob: the layer is read and compressed,
    // which reveals that its content is not the diff id the config names.
    assert!(matches!(err, PushError::DiffIdMismatch { .. }), "{err}");
    assert!(s
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, LayerEvent::Compressing { .. })));
}
