//! `publish::push` against a real `imgflow serve` over HTTPS (trusted through its CA):
//! push a `docker save` archive built here (no dockerd), read it back, push it again
//! (nothing uploaded), into a second repository (mounted), in the legacy layout, attach a
//! check report, move tags; and resume a layer upload after `kill -9` of the registry.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::{pseudo_random_bytes, Server};
use imgflow::client::Client;
use imgflow::oci::{Digest, Manifest, Reference, RepoName, Tag, OCI_MANIFEST};
use imgflow::publish::push::{
    BlobKind, BlobOutcome, LayerEvent, Provenance, PushOptions, PushProgress, PushRequest,
    PushedImage, Pusher, RetryPolicy, CHECK_REPORT_TYPE,
};

const MIB: usize = 1 << 20;

/// A layer tar holding one file.
fn layer_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    tar.append_data(&mut h, name, content).expect("tar entry");
    tar.into_inner().expect("tar")
}

fn add(tar: &mut tar::Builder<std::fs::File>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    tar.append_data(&mut h, path, data).expect("archive entry");
}

/// Write a `docker save` archive of an image made of `layers`: the OCI layout of
/// docker 25+ (`blobs/sha256/...`), or the legacy `<id>/layer.tar` one.
fn docker_save(dir: &Path, file: &str, layers: &[Vec<u8>], legacy: bool) -> PathBuf {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| Digest::sha256(l).to_string())
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap();
    let config_hex = Digest::sha256(&config).hex().to_string();
    let path = dir.join(file);
    let mut tar = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let mut layer_paths = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let member = if legacy {
            format!("{i:064x}/layer.tar")
        } else {
            format!("blobs/sha256/{}", Digest::sha256(layer).hex())
        };
        add(&mut tar, &member, layer);
        layer_paths.push(member);
    }
    let config_path = if legacy {
        format!("{config_hex}.json")
    } else {
        format!("blobs/sha256/{config_hex}")
    };
    add(&mut tar, &config_path, &config);
    if !legacy {
        add(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        add(
            &mut tar,
            "index.json",
            br#"{"schemaVersion":2,"manifests":[]}"#,
        );
    }
    let manifest = serde_json::json!([{
        "Config": config_path, "RepoTags": ["test/image:latest"], "Layers": layer_paths
    }]);
    add(&mut tar, "manifest.json", manifest.to_string().as_bytes());
    tar.into_inner().unwrap();
    path
}

fn client(server: &Server) -> Client {
    Client::builder(server.url())
        .ca_file(server.ca_path())
        .build()
        .expect("client")
}

fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

fn options(dir: &Path, chunk_size: usize) -> PushOptions {
    PushOptions {
        concurrency: 2,
        chunk_size,
        retry: RetryPolicy::default(),
        cache_dir: Some(dir.join("cache")),
        temp_dir: Some(dir.to_path_buf()),
    }
}

type Events = Arc<Mutex<Vec<(BlobKind, LayerEvent)>>>;

fn recording() -> (PushProgress, Events) {
    let events: Events = Arc::default();
    let sink = events.clone();
    let hook = PushProgress::new(move |blob, e| sink.lock().unwrap().push((blob, e.clone())));
    (hook, events)
}

/// Every layer of `image` in the registry gunzips to the tar it was made from.
async fn assert_layers_byte_exact(c: &Client, image: &PushedImage, layers: &[Vec<u8>]) {
    let fetched = c
        .get_manifest(
            &image.repo,
            &Reference::Digest(image.digest.clone()),
            &[OCI_MANIFEST],
        )
        .await
        .expect("manifest by digest");
    assert_eq!(fetched.digest, image.digest);
    let m = Manifest::parse(&fetched.body, Some(&fetched.media_type)).expect("OCI manifest");
    assert_eq!(m.blobs.len(), layers.len() + 1, "config + layers");
    for (desc, original) in m.blobs[1..].iter().zip(layers) {
        assert_eq!(desc.media_type, imgflow::oci::OCI_LAYER_TAR_GZIP);
        let blob = c.get_blob(&image.repo, &desc.digest).await.expect("layer");
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&blob[..])
            .read_to_end(&mut plain)
            .expect("gunzip");
        assert!(plain == *original, "layer {} differs", desc.digest);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_skip_mount_report_and_tags() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let layers = vec![
        layer_tar("big.bin", &pseudo_random_bytes(3 * MIB, 1)),
        layer_tar("text.txt", "hello imgflow\n".repeat(20_000).as_bytes()),
        layer_tar("empty", b""),
    ];
    let archive = docker_save(dir.path(), "image.tar", &layers, false);
    let c = client(&server);
    let provenance = Provenance {
        revision: Some("0123abc".into()),
        dirty: Some(false),
        created: Some("2026-12-02T16:00:00Z".into()),
        build_args: [("BASE".to_string(), "busybox".to_string())].into(),
        ..Provenance::default()
    };
    let base = repo("team/base");
    let mut req = PushRequest::new(&archive, base.clone());
    req.annotations = provenance.annotations().unwrap();

    // First push: every blob uploaded, by digest only.
    let pusher = Pusher::new(c.clone(), options(dir.path(), 2 * MIB));
    let started = Instant::now();
    let first = pusher.push_image(&req).await.expect("first push");
    eprintln!("first push: {:?}", started.elapsed());
    assert!(first.verified);
    assert_eq!(first.layers.len(), 3);
    assert!(
        first.layers.iter().all(|l| l.outcome.uploaded()),
        "{first:?}"
    );
    assert_eq!(first.pushed_bytes, first.compressed_size);
    assert_eq!(first.skipped_bytes, 0);
    assert_layers_byte_exact(&c, &first, &layers).await;
    let fetched = c
        .get_manifest(&base, &Reference::Digest(first.digest.clone()), &[])
        .await
        .unwrap();
    let m = Manifest::parse(&fetched.body, None).unwrap();
    let ann = m.annotations.expect("annotations");
    assert_eq!(ann["org.opencontainers.image.revision"], "0123abc");
    assert_eq!(ann["io.imgflow.build-arg.BASE"], "busybox");
    assert!(
        c.list_tags(&base).await.unwrap_or_default().is_empty(),
        "no tag yet"
    );

    // Second push of the same image (fresh pusher, same cache): nothing uploaded, and no
    // layer compressed again.
    let (progress, events) = recording();
    req.progress = progress;
    let again = Pusher::new(c.clone(), options(dir.path(), 2 * MIB));
    let second = again.push_image(&req).await.expect("second push");
    assert_eq!(second.digest, first.digest);
    assert_eq!(second.pushed_bytes, 0, "{second:?}");
    assert_eq!(second.skipped_bytes, first.compressed_size);
    assert!(second
        .layers
        .iter()
        .all(|l| l.outcome == BlobOutcome::Existed && l.from_cache));
    assert!(!events
        .lock()
        .unwrap()
        .iter()
        .any(|(_, e)| matches!(e, LayerEvent::Compressing { .. })));

    // Into a second repository: layers mounted from the first.
    let app = repo("team/app");
    let mut req_app = PushRequest::new(&archive, app.clone());
    req_app.mount_from = vec![repo("team/missing"), base.clone()];
    req_app.annotations = req.annotations.clone();
    let mounted = again.push_image(&req_app).await.expect("push with mounts");
    for l in &mounted.layers {
        assert_eq!(l.outcome, BlobOutcome::Mounted(base.clone()), "{l:?}");
    }
    assert_eq!(mounted.pushed_bytes, mounted.config.size, "only the config");
    assert_eq!(mounted.digest, first.digest);

    // The legacy layout of the same image gives the same blobs and manifest.
    let legacy = docker_save(dir.path(), "legacy.tar", &layers, true);
    let mut req_legacy = PushRequest::new(&legacy, repo("team/legacy"));
    req_legacy.annotations = req.annotations.clone();
    let cold = Pusher::new(c.clone(), options(&dir.path().join("other"), 2 * MIB));
    let from_legacy = cold.push_image(&req_legacy).await.expect("legacy push");
    assert_eq!(
        from_legacy.digest, first.digest,
        "deterministic compression"
    );
    assert_layers_byte_exact(&c, &from_legacy, &layers).await;

    // The check report, as a referrer.
    let report = br#"{"checks":{"passed":3,"failed":0,"skipped":1}}"#;
    let report_digest = again
        .attach_report(
            &base,
            &first.descriptor(),
            CHECK_REPORT_TYPE,
            report.to_vec().into(),
            &BTreeMap::new(),
        )
        .await
        .expect("attach report");
    let refs = c.referrers(&base, &first.digest, None).await.unwrap();
    assert!(refs.manifests.iter().any(
        |d| d.digest == report_digest && d.artifact_type.as_deref() == Some(CHECK_REPORT_TYPE)
    ));
    assert!(c.list_tags(&base).await.unwrap_or_default().is_empty());

    // Tags move only now.
    let tags: Vec<Tag> = ["1.0", "latest"]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
    again
        .move_tags(&base, &first.digest, &tags)
        .await
        .expect("move tags");
    let mut listed = c.list_tags(&base).await.unwrap();
    listed.sort();
    assert_eq!(listed, ["1.0", "latest"]);
    let head = c
        .head_manifest(&base, &Reference::Tag(tags[0].clone()), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.digest, Some(first.digest.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_resumes_from_reported_offset_after_kill_9() {
    let mut server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let big = layer_tar("big.bin", &pseudo_random_bytes(24 * MIB, 7));
    let layers = vec![big, layer_tar("small.txt", b"small layer")];
    let archive = docker_save(dir.path(), "image.tar", &layers, false);
    let c = client(&server);
    let chunk = MIB;

    // The registry is killed (SIGKILL) right after the 8th chunk of layer 0 is accepted.
    let pid = server.pid();
    let killed_at = Arc::new(AtomicU64::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let (notify_tx, notify_rx) = tokio::sync::oneshot::channel::<()>();
    let notify = Mutex::new(Some(notify_tx));
    let events: Events = Arc::default();
    let (sink, at, flag) = (events.clone(), killed_at.clone(), killed.clone());
    let progress = PushProgress::new(move |blob, e| {
        sink.lock().unwrap().push((blob, e.clone()));
        if let (BlobKind::Layer(0), LayerEvent::Uploaded { sent, .. }) = (blob, e) {
            if *sent >= 8 * chunk as u64 && !flag.swap(true, Ordering::SeqCst) {
                // SAFETY: sending a signal to our own child process.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                at.store(*sent, Ordering::SeqCst);
                if let Some(tx) = notify.lock().unwrap().take() {
                    let _ = tx.send(());
                }
            }
        }
    });
    let mut req = PushRequest::new(&archive, repo("team/resume"));
    req.progress = progress;
    let pusher = Pusher::new(c.clone(), options(dir.path(), chunk));
    let push = tokio::spawn(async move { pusher.push_image(&req).await });

    notify_rx.await.expect("the upload reached the kill point");
    tokio::task::block_in_place(|| {
        server.kill9();
        server.restart();
    });
    let started = Instant::now();
    let image = push
        .await
        .unwrap()
        .expect("push completes after the restart");
    eprintln!("completed {:?} after the restart", started.elapsed());
    assert!(image.verified);

    let killed_at = killed_at.load(Ordering::SeqCst);
    let events = events.lock().unwrap().clone();
    let layer0: Vec<&LayerEvent> = events
        .iter()
        .filter(|(b, _)| *b == BlobKind::Layer(0))
        .map(|(_, e)| e)
        .collect();
    let resume = layer0
        .iter()
        .position(|e| matches!(e, LayerEvent::Resumed { .. }))
        .expect("a Resumed event");
    let LayerEvent::Resumed { offset, .. } = layer0[resume] else {
        unreachable!()
    };
    assert!(
        *offset >= killed_at && *offset > 0,
        "resumed at {offset}, {killed_at} acknowledged before the kill"
    );
    assert!(
        !layer0
            .iter()
            .any(|e| matches!(e, LayerEvent::Restarted { .. })),
        "the blob must not start over: {layer0:?}"
    );
    // Every chunk accepted after the resumption starts at or after the reported offset.
    let first_after = layer0[resume..]
        .iter()
        .find_map(|e| match e {
            LayerEvent::Uploaded { chunk_start, .. } => Some(*chunk_start),
            _ => None,
        })
        .expect("chunks after the resumption");
    assert_eq!(
        first_after, *offset,
        "the upload goes on at the reported offset"
    );
    for e in &layer0[resume..] {
        if let LayerEvent::Uploaded { chunk_start, .. } = e {
            assert!(
                *chunk_start >= *offset,
                "re-sent bytes before {offset}: {e:?}"
            );
        }
    }
    let BlobOutcome::Uploaded {
        bytes_sent,
        resumes,
        restarts,
    } = &image.layers[0].outcome
    else {
        panic!("layer 0 was uploaded: {:?}", image.layers[0]);
    };
    assert!(*resumes >= 1 && *restarts == 0);
    let size = image.layers[0].size;
    assert!(
        *bytes_sent <= size + chunk as u64,
        "{bytes_sent} bytes sent for a {size}-byte blob: more than one chunk re-sent"
    );
    let c = client(&server);
    assert_layers_byte_exact(&c, &image, &layers).await;
    assert!(c
        .list_tags(&image.repo)
        .await
        .unwrap_or_default()
        .is_empty());
}

/// A TCP relay to `upstream` that cuts its connections once, after `limit` bytes went
/// from clients to the server (TLS passes through untouched).
async fn cutting_proxy(upstream: std::net::SocketAddr, limit: u64) -> (String, Arc<AtomicBool>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let cut = Arc::new(AtomicBool::new(false));
    let tripped = cut.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                continue;
            };
            let (sent, cut) = (sent.clone(), cut.clone());
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let down = tokio::spawn(async move { tokio::io::copy(&mut sr, &mut cw).await });
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let total = sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                    if total > limit && !cut.swap(true, Ordering::SeqCst) {
                        break; // drop both directions mid-request
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                down.abort();
            });
        }
    });
    (format!("https://{addr}"), tripped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_resumes_after_a_dropped_connection() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let layers = vec![layer_tar("big.bin", &pseudo_random_bytes(12 * MIB, 9))];
    let archive = docker_save(dir.path(), "image.tar", &layers, false);
    let chunk = MIB;
    let (url, cut) = cutting_proxy(server.addr(), (5 * MIB + MIB / 2) as u64).await;
    let via_proxy = Client::builder(url)
        .ca_file(server.ca_path())
        .build()
        .unwrap();
    let (progress, events) = recording();
    let mut req = PushRequest::new(&archive, repo("team/dropped"));
    req.progress = progress;
    let image = Pusher::new(via_proxy, options(dir.path(), chunk))
        .push_image(&req)
        .await
        .expect("push completes after the dropped connection");
    assert!(cut.load(Ordering::SeqCst), "the connection was cut");
    let BlobOutcome::Uploaded {
        bytes_sent,
        resumes,
        restarts,
    } = image.layers[0].outcome
    else {
        panic!("uploaded: {:?}", image.layers[0]);
    };
    assert!(resumes >= 1 && restarts == 0, "{:?}", image.layers[0]);
    assert!(
        bytes_sent <= image.layers[0].size + chunk as u64,
        "{bytes_sent}"
    );
    let resumed: Vec<u64> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, e)| match e {
            LayerEvent::Resumed { offset, .. } => Some(*offset),
            _ => None,
        })
        .collect();
    assert!(
        resumed.iter().all(|o| *o >= 4 * chunk as u64),
        "resumed from the registry's offset, not from 0: {resumed:?}"
    );
    assert_layers_byte_exact(&client(&server), &image, &layers).await;
}
