//! Crash safety and restart durability of `imgflow serve`: what the registry acknowledged
//! survives `kill -9`; an interrupted upload leaves either the complete blob or nothing
//! (never a partial or corrupt blob file); upload sessions survive restarts and resume
//! after aborted chunks.
//!
//! The large-upload test kills the server at random points; the seed is printed and can
//! be fixed with `IMGFLOW_CRASH_SEED=<n>` to replay a failure.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::oneshot;

use common::oci_api::{
    content_range, image_manifest, range_offset, verify_blob_files, Api, OCI_INDEX, OCI_MANIFEST,
};
use common::raw_http::{request_head, RawConn};
use common::{pseudo_random_bytes, sha256_digest, Server};

const REPO: &str = "crash/restart";

/// Size of the blob the kill loop uploads (smaller in unoptimised builds).
const BIG: usize = if cfg!(debug_assertions) {
    16 << 20
} else {
    64 << 20
};
/// Size of its chunks.
const CHUNK: usize = BIG / 4;
/// Pieces a chunk body is streamed in.
const PIECE: usize = 256 << 10;

/// Everything a round pushed, to be found again after restarts.
#[derive(Default)]
struct Pushed {
    blobs: Vec<(String, String, Vec<u8>)>,
    manifests: Vec<(String, String, Vec<u8>)>,
}

impl Pushed {
    async fn verify(&self, api: &Api, ctx: &str) {
        for (repo, digest, data) in &self.blobs {
            api.assert_blob(repo, digest, data, ctx).await;
            let h = api
                .send(
                    "HEAD",
                    &format!("/v2/{repo}/blobs/{digest}"),
                    &[],
                    Vec::new(),
                )
                .await;
            assert_eq!(h.status, 200, "{ctx}: HEAD {repo}@{digest}");
            assert_eq!(
                h.header("content-length"),
                Some(data.len().to_string()),
                "{ctx}: HEAD size of {digest}"
            );
        }
        for (repo, tag, body) in &self.manifests {
            let digest = sha256_digest(body);
            for reference in [tag.as_str(), digest.as_str()] {
                let r = api.get(&format!("/v2/{repo}/manifests/{reference}")).await;
                assert_eq!(r.status, 200, "{ctx}: GET manifest {repo}:{reference}");
                assert!(
                    r.body == *body,
                    "{ctx}: manifest {repo}:{reference} is not byte-identical"
                );
                assert_eq!(r.header("docker-content-digest"), Some(digest.clone()));
            }
            assert!(
                api.tags(repo).await.contains(tag),
                "{ctx}: tag {tag} missing from {repo}"
            );
        }
    }
}

/// Monolithic, chunked, empty, mounted blobs and a manifest plus an index, pushed
/// quickly one after the other, then `kill -9` right after the last 201.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_pushes_survive_kill_9() {
    let mut server = Server::start();
    let mut pushed = Pushed::default();
    let mut known = HashMap::new();
    for round in 0..3u64 {
        let api = Api::new(&server);
        let small = pseudo_random_bytes(1 + round as usize * 7, round);
        let medium = pseudo_random_bytes(3 << 20, 100 + round);
        let chunked = pseudo_random_bytes((5 << 20) + 17, 200 + round);
        let config = format!(r#"{{"round":{round},"os":"linux"}}"#).into_bytes();
        let mounted = pseudo_random_bytes(4096, 300 + round);

        let d_small = api.push_blob(REPO, &small).await;
        let d_medium = api.push_blob(REPO, &medium).await;
        let d_empty = api.push_blob(REPO, b"").await;
        let d_config = api.push_blob(REPO, &config).await;
        // Chunked: three PATCHes, the last bytes in the PUT.
        let d_chunked = sha256_digest(&chunked);
        let loc = api.start_upload(REPO).await;
        let mut off = 0;
        for part in chunked[..5 << 20].chunks(2 << 20) {
            let r = api.patch(&loc, off, part).await;
            assert_eq!(r.status, 202, "PATCH at {off}: {r:?}");
            off += part.len() as u64;
        }
        let r = api.finish(&loc, &d_chunked, &chunked[5 << 20..]).await;
        assert_eq!(r.status, 201, "chunked PUT: {r:?}");
        // Cross-repository mount.
        let d_mounted = api.push_blob("crash/source", &mounted).await;
        let r = api
            .send(
                "POST",
                &format!("/v2/{REPO}/blobs/uploads/?mount={d_mounted}&from=crash/source"),
                &[],
                Vec::new(),
            )
            .await;
        assert_eq!(r.status, 201, "mount: {r:?}");
        // A manifest by tag and an index pointing at it.
        let manifest = image_manifest(
            (&d_config, config.len()),
            &[
                (&d_small, small.len()),
                (&d_medium, medium.len()),
                (&d_chunked, chunked.len()),
                (&d_mounted, mounted.len()),
            ],
        );
        let tag = format!("round{round}");
        let r = api.put_manifest(REPO, &tag, OCI_MANIFEST, &manifest).await;
        assert_eq!(r.status, 201, "manifest: {r:?}");
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256_digest(&manifest),
                           "size": manifest.len(),
                           "platform": {"architecture": "amd64", "os": "linux"}}],
        }))
        .expect("json");
        let itag = format!("index{round}");
        let r = api.put_manifest(REPO, &itag, OCI_INDEX, &index).await;
        assert_eq!(r.status, 201, "index: {r:?}");
        server.kill9();

        for (repo, d, data) in [
            (REPO, d_small, small),
            (REPO, d_medium, medium),
            (REPO, d_empty, Vec::new()),
            (REPO, d_config, config),
            (REPO, d_chunked, chunked),
            (REPO, d_mounted.clone(), mounted.clone()),
            ("crash/source", d_mounted, mounted),
        ] {
            pushed.blobs.push((repo.to_string(), d, data));
        }
        pushed.manifests.push((REPO.to_string(), tag, manifest));
        pushed.manifests.push((REPO.to_string(), itag, index));

        server.restart();
        let api = Api::new(&server);
        pushed
            .verify(&api, &format!("after kill -9 in round {round}"))
            .await;
        let on_disk = verify_blob_files(server.data_dir(), &mut known);
        let mut expected: Vec<String> = pushed.blobs.iter().map(|b| b.1.clone()).collect();
        expected.sort();
        expected.dedup();
        assert_eq!(on_disk, expected, "blob files after round {round}");
    }
    assert!(
        !server.log().contains("internal error"),
        "internal errors logged:\n{}",
        server.log()
    );
}

/// Where in the upload the server is killed.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// While a PATCH body is streaming.
    InPatch,
    /// While the final PUT carries the last chunk (or right after its last byte).
    InPutBody,
    /// Right after a body-less final PUT is sent (the server verifies and commits).
    AtPutCommit,
}

/// Fires once when the byte counter reaches `at`.
struct Trigger {
    at: u64,
    sent: AtomicU64,
    tx: Mutex<Option<oneshot::Sender<()>>>,
}

impl Trigger {
    fn add(&self, n: usize) {
        let total = self.sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
        if total >= self.at {
            self.fire();
        }
    }

    fn fire(&self) {
        if let Some(tx) = self.tx.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tx.send(());
        }
    }
}

/// A streamed request body (no Content-Length) that counts what it hands over.
fn counted(data: Bytes, trigger: Arc<Trigger>) -> reqwest::Body {
    let pieces: Vec<Bytes> = (0..data.len())
        .step_by(PIECE)
        .map(|s| data.slice(s..(s + PIECE).min(data.len())))
        .collect();
    let stream = futures::stream::iter(pieces).map(move |p| {
        trigger.add(p.len());
        Ok::<_, std::io::Error>(p)
    });
    reqwest::Body::wrap_stream(stream)
}

/// What the client saw acknowledged before the crash.
#[derive(Default)]
struct Acks {
    offset: AtomicU64,
    put: AtomicBool,
}

/// Uploads `data` in [`CHUNK`]s to `loc`; the last chunk goes in the PUT for
/// `InPutBody`. Stops at the first failure (the server was killed).
async fn upload(
    api: Api,
    loc: String,
    data: Bytes,
    point: KillPoint,
    trigger: Arc<Trigger>,
    acks: Arc<Acks>,
) {
    let digest = sha256_digest(&data);
    let patched = match point {
        KillPoint::InPutBody => data.len() - CHUNK,
        _ => data.len(),
    };
    let mut off = 0;
    while off < patched {
        let end = (off + CHUNK).min(patched);
        let range = content_range(off as u64, (end - off) as u64);
        let body = counted(data.slice(off..end), trigger.clone());
        let Ok(r) = api
            .try_send("PATCH", &loc, &[("Content-Range", &range)], body)
            .await
        else {
            return;
        };
        assert_eq!(r.status, 202, "PATCH {range}: {r:?}");
        assert_eq!(range_offset(&r), end as u64, "PATCH {range}: Range");
        acks.offset.store(end as u64, Ordering::SeqCst);
        off = end;
    }
    if matches!(point, KillPoint::AtPutCommit) {
        trigger.fire();
    }
    let (headers, body): (Vec<(&str, String)>, reqwest::Body) = if off < data.len() {
        let range = content_range(off as u64, (data.len() - off) as u64);
        (
            vec![("Content-Range", range)],
            counted(data.slice(off..), trigger.clone()),
        )
    } else {
        (Vec::new(), reqwest::Body::from(Vec::new()))
    };
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if let Ok(r) = api
        .try_send("PUT", &format!("{loc}?digest={digest}"), &headers, body)
        .await
    {
        assert_eq!(r.status, 201, "final PUT: {r:?}");
        acks.put.store(true, Ordering::SeqCst);
    }
}

/// A small xorshift generator for kill points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn seed() -> u64 {
    std::env::var("IMGFLOW_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
        | 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_large_upload_is_all_or_nothing() {
    let seed = seed();
    eprintln!("kill loop seed: IMGFLOW_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let mut server = Server::start();
    let mut known = HashMap::new();
    let points = [
        KillPoint::InPatch,
        KillPoint::InPutBody,
        KillPoint::AtPutCommit,
        KillPoint::InPatch,
        KillPoint::InPutBody,
        KillPoint::InPatch,
    ];
    for (i, point) in points.into_iter().enumerate() {
        let data = Bytes::from(pseudo_random_bytes(BIG, seed.wrapping_add(i as u64)));
        let digest = sha256_digest(&data);
        let kill_at = match point {
            KillPoint::InPatch => rng.below((BIG - CHUNK) as u64),
            // Anywhere in the last chunk, including after its last byte.
            KillPoint::InPutBody => (BIG - CHUNK) as u64 + 1 + rng.below(CHUNK as u64),
            KillPoint::AtPutCommit => u64::MAX,
        };
        let ctx = format!("iteration {i} ({point:?}, kill at byte {kill_at}, seed {seed})");
        let api = Api::new(&server);
        let loc = api.start_upload(REPO).await;
        let (tx, rx) = oneshot::channel();
        let trigger = Arc::new(Trigger {
            at: kill_at,
            sent: AtomicU64::new(0),
            tx: Mutex::new(Some(tx)),
        });
        let acks = Arc::new(Acks::default());
        let task = tokio::spawn(upload(
            api.clone(),
            loc.clone(),
            data.clone(),
            point,
            trigger,
            acks.clone(),
        ));
        tokio::time::timeout(Duration::from_secs(60), rx)
            .await
            .unwrap_or_else(|_| panic!("{ctx}: the kill point was never reached"))
            .unwrap_or_else(|_| panic!("{ctx}: the upload ended before the kill point"));
        let delay = rng.below(match point {
            KillPoint::AtPutCommit => 20,
            _ => 3,
        });
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill9();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .unwrap_or_else(|_| panic!("{ctx}: client did not notice the crash"))
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let acked = acks.offset.load(Ordering::SeqCst);
        let put_acked = acks.put.load(Ordering::SeqCst);
        eprintln!("{ctx}: acknowledged offset {acked}, PUT acknowledged: {put_acked}");

        server.restart();
        let api = Api::new(&server);
        // No blob file is ever partial or corrupt.
        verify_blob_files(server.data_dir(), &mut known);
        let head = api.head_status(&format!("/v2/{REPO}/blobs/{digest}")).await;
        if put_acked {
            assert_eq!(head, 200, "{ctx}: acknowledged blob missing after restart");
        }
        if head == 404 {
            // The session survived with at least every acknowledged byte; resuming from
            // the offset it reports completes the upload with the right digest.
            let off = api.upload_offset(&loc).await.unwrap_or_else(|| {
                panic!("{ctx}: neither the blob nor the upload session survived")
            });
            eprintln!("{ctx}: after restart: no blob, session at {off}");
            assert!(
                off >= acked && off <= BIG as u64,
                "{ctx}: session offset {off} after restart, {acked} were acknowledged"
            );
            let mut pos = off as usize;
            while pos < BIG {
                let end = (pos + CHUNK).min(BIG);
                let r = api.patch(&loc, pos as u64, &data[pos..end]).await;
                assert_eq!(r.status, 202, "{ctx}: resuming PATCH at {pos}: {r:?}");
                pos = end;
            }
            let r = api.finish(&loc, &digest, b"").await;
            assert_eq!(r.status, 201, "{ctx}: PUT after resuming at {off}: {r:?}");
        } else {
            assert_eq!(head, 200, "{ctx}: HEAD blob");
            eprintln!("{ctx}: after restart: blob present");
        }
        api.assert_blob(REPO, &digest, &data, &ctx).await;
        let on_disk = verify_blob_files(server.data_dir(), &mut known);
        assert!(on_disk.contains(&digest), "{ctx}: blob file missing");
    }
}

/// Pushes `n` chunks of `size` bytes of `data` to a new session; returns its Location.
async fn partial_session(api: &Api, repo: &str, data: &[u8], n: usize, size: usize) -> String {
    let loc = api.start_upload(repo).await;
    for i in 0..n {
        let r = api
            .patch(&loc, (i * size) as u64, &data[i * size..(i + 1) * size])
            .await;
        assert_eq!(r.status, 202, "PATCH {i}: {r:?}");
    }
    loc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_sessions_survive_restart() {
    let mut server = Server::start();
    const MIB: usize = 1 << 20;
    for (round, sigkill) in [(0u64, false), (1, true)] {
        let how = if sigkill { "kill -9" } else { "SIGTERM" };
        let api = Api::new(&server);
        let data = pseudo_random_bytes(4 * MIB + MIB / 2, 40 + round);
        let digest = sha256_digest(&data);
        let loc = partial_session(&api, REPO, &data, 3, MIB).await;
        let empty = api.start_upload("crash/other").await;
        if sigkill {
            server.kill9();
        } else {
            let status = server.stop();
            assert!(status.success(), "SIGTERM exit status: {status}");
        }
        server.restart();
        let api = Api::new(&server);

        let r = api.get(&loc).await;
        assert_eq!(r.status, 204, "{how}: GET session: {r:?}");
        assert_eq!(
            r.header("range").as_deref(),
            Some("0-3145727"),
            "{how}: Range"
        );
        assert_eq!(
            r.header("location").as_deref(),
            Some(loc.as_str()),
            "{how}: Location"
        );
        let id = loc.rsplit('/').next().expect("id");
        assert_eq!(
            r.header("docker-upload-uuid").as_deref(),
            Some(id),
            "{how}: uuid"
        );
        assert_eq!(
            api.upload_offset(&empty).await,
            Some(0),
            "{how}: empty session"
        );
        // The persisted offset is enforced: a chunk at the wrong place is refused.
        let r = api
            .patch(&loc, 2 * MIB as u64, &data[2 * MIB..3 * MIB])
            .await;
        assert_eq!(r.status, 416, "{how}: PATCH at a stale offset: {r:?}");
        assert_eq!(r.header("range").as_deref(), Some("0-3145727"));

        let r = api
            .patch(&loc, 3 * MIB as u64, &data[3 * MIB..4 * MIB])
            .await;
        assert_eq!(r.status, 202, "{how}: PATCH after restart: {r:?}");
        assert_eq!(r.header("range").as_deref(), Some("0-4194303"));
        let r = api.finish(&loc, &digest, &data[4 * MIB..]).await;
        assert_eq!(r.status, 201, "{how}: PUT after restart: {r:?}");
        assert_eq!(r.header("docker-content-digest"), Some(digest.clone()));
        api.assert_blob(REPO, &digest, &data, how).await;

        let small = b"finished after a restart";
        let r = api.patch(&empty, 0, small).await;
        assert_eq!(r.status, 202, "{how}: PATCH the empty session: {r:?}");
        let r = api.finish(&empty, &sha256_digest(small), b"").await;
        assert_eq!(r.status, 201, "{how}: PUT the empty session: {r:?}");
    }
    verify_blob_files(server.data_dir(), &mut HashMap::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_resumes_after_aborted_patch() {
    let server = Server::start();
    let api = Api::new(&server);
    const MIB: usize = 1 << 20;
    let data = pseudo_random_bytes(4 * MIB, 77);
    let digest = sha256_digest(&data);
    let loc = partial_session(&api, REPO, &data, 1, MIB).await;

    // HTTP/1.1: 2 MiB announced, 1 MiB sent, connection dropped.
    let mut conn = RawConn::connect(server.addr(), &server.ca_path()).await;
    let range = content_range(MIB as u64, 2 * MIB as u64);
    let len = (2 * MIB).to_string();
    let head = request_head(
        "PATCH",
        &loc,
        &server.host_port(),
        &[("Content-Length", &len), ("Content-Range", &range)],
    );
    conn.send(head.as_bytes()).await.expect("headers");
    conn.send(&data[MIB..2 * MIB]).await.expect("half the body");
    drop(conn);
    assert_offset_settles(&api, &loc, MIB as u64, "dropped HTTP/1.1 PATCH").await;

    // HTTP/2: the body stream fails half-way (the client resets the stream).
    let half: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::copy_from_slice(&data[MIB..MIB + MIB / 2])),
        Err(std::io::Error::other("client gives up")),
    ];
    let r = api
        .try_send(
            "PATCH",
            &loc,
            &[("Content-Range", &range)],
            reqwest::Body::wrap_stream(futures::stream::iter(half)),
        )
        .await;
    assert!(
        r.is_err(),
        "a failing body stream must fail the request: {r:?}"
    );
    assert_offset_settles(&api, &loc, MIB as u64, "reset HTTP/2 PATCH").await;

    // HTTP/2: the body stalls and the client times out.
    let stalled = futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::copy_from_slice(
        &data[MIB..MIB + 256 * 1024],
    ))])
    .chain(futures::stream::pending());
    let r = api
        .client
        .patch(api.url(&loc))
        .header("Content-Range", &range)
        .timeout(Duration::from_millis(800))
        .body(reqwest::Body::wrap_stream(stalled))
        .send()
        .await;
    assert!(r.is_err(), "a stalled body must time out: {r:?}");
    assert_offset_settles(&api, &loc, MIB as u64, "timed-out HTTP/2 PATCH").await;

    // The session continues from where it was.
    let r = api.patch(&loc, MIB as u64, &data[MIB..3 * MIB]).await;
    assert_eq!(r.status, 202, "PATCH after aborts: {r:?}");
    assert_eq!(range_offset(&r), 3 * MIB as u64);
    let r = api.finish(&loc, &digest, &data[3 * MIB..]).await;
    assert_eq!(r.status, 201, "PUT after aborts: {r:?}");
    api.assert_blob(REPO, &digest, &data, "after aborted PATCHes")
        .await;
    verify_blob_files(server.data_dir(), &mut HashMap::new());
}

/// Polls (bounded) until the session reports `offset`.
async fn assert_offset_settles(api: &Api, loc: &str, offset: u64, ctx: &str) {
    let mut last = None;
    for _ in 0..50 {
        last = api.upload_offset(loc).await;
        if last == Some(offset) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{ctx}: session at {last:?}, expected {offset}");
}
