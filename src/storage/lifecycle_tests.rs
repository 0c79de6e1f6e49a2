//! Storage tests of the upload-session lifecycle, reference integrity and the sweep.

use super::tests::{chunks, new_session, open, options, read_all, repo};
use super::*;
use crate::oci::{Algorithm, Digest, Reference, RepoName};
use bytes::Bytes;
use futures::stream;
use std::net::IpAddr;

type Sent = std::io::Result<Bytes>;

/// A body fed by the test through a channel.
fn channel_body() -> (
    tokio::sync::mpsc::UnboundedSender<Sent>,
    impl futures::Stream<Item = Sent> + Unpin + Send + 'static,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (tx, tokio_stream_from(rx))
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Sent>,
) -> impl futures::Stream<Item = Sent> + Unpin + Send + 'static {
    Box::pin(stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

fn staged(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir.join("uploads"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn a_restart_cuts_bytes_that_were_never_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo("x");
    let id = {
        let s = open(dir.path()).await;
        let id = new_session(&s, &r).await;
        s.append_upload(&r, &id, (None, None, chunks(b"abc", 2)))
            .await
            .unwrap();
        id
    };
    // A crash in the middle of the next chunk left bytes that were never acknowledged.
    use std::io::Write;
    let path = dir.path().join("uploads").join(&id);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"PARTIAL")
        .unwrap();
    let s = open(dir.path()).await;
    assert_eq!(s.upload_status(&r, &id).await.unwrap().size, 3);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 3);
    let d = Digest::sha256(b"abcdef");
    s.finish_upload(&r, &id, &d, Some((Some(3), None, chunks(b"def", 1))))
        .await
        .unwrap();
    assert_eq!(read_all(&s, &r, &d).await, b"abcdef");
}

#[tokio::test]
async fn a_session_that_ended_answers_unknown_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    let r = repo("x");
    let id = new_session(&s, &r).await;
    s.cancel_upload(&r, &id).await.unwrap();
    let unknown = |e: StorageError| assert!(matches!(e, StorageError::UploadUnknown(_)), "{e}");
    unknown(s.upload_status(&r, &id).await.unwrap_err());
    unknown(
        s.append_upload(&r, &id, (None, None, chunks(b"abc", 1)))
            .await
            .unwrap_err(),
    );
    let d = Digest::sha256(b"abc");
    unknown(
        s.finish_upload(&r, &id, &d, Some((None, None, chunks(b"abc", 1))))
            .await
            .unwrap_err(),
    );
    unknown(s.cancel_upload(&r, &id).await.unwrap_err());
    assert!(staged(dir.path()).is_empty(), "no staging file re-created");
    assert!(s.blob_size(&r, &d).await.is_err());
    // Another repository cannot use a session it does not own.
    let id = new_session(&s, &r).await;
    unknown(s.upload_status(&repo("y"), &id).await.unwrap_err());
}

#[tokio::test]
async fn a_dropped_request_rolls_back_before_the_next_one_runs() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    let r = repo("x");
    let id = new_session(&s, &r).await;
    s.append_upload(&r, &id, (None, None, chunks(b"abc", 3)))
        .await
        .unwrap();
    let (tx, body) = channel_body();
    tx.send(Ok(Bytes::from_static(b"zzzz"))).unwrap();
    // The request is dropped (client gone) while its chunk is half-way.
    let first = s.append_upload(&r, &id, (Some(3), None, body));
    assert!(tokio::time::timeout(Duration::from_millis(200), first)
        .await
        .is_err());
    // The next request waits for the dropped one's work to end...
    let s2 = s.clone();
    let id2 = id.clone();
    let r2 = r.clone();
    let next = tokio::spawn(async move {
        s2.append_upload(&r2, &id2, (Some(3), Some(3), chunks(b"def", 1)))
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!next.is_finished());
    // ...which breaks off and is rolled back; then the next chunk lands at offset 3.
    tx.send(Err(std::io::Error::other("reset"))).unwrap();
    assert_eq!(next.await.unwrap().unwrap().size, 6);
    let d = Digest::sha256(b"abcdef");
    s.finish_upload(&r, &id, &d, None::<Chunk<stream::Empty<Sent>>>)
        .await
        .unwrap();
    assert_eq!(read_all(&s, &r, &d).await, b"abcdef");
}

#[tokio::test]
async fn expiry_is_by_inactivity_and_never_takes_a_session_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.upload_expiry = Duration::from_secs(0);
    let s = Storage::open(opts).await.unwrap();
    let r = repo("x");
    let idle = new_session(&s, &r).await;
    let busy = new_session(&s, &r).await;
    let (tx, body) = channel_body();
    tx.send(Ok(Bytes::from_static(b"slow"))).unwrap();
    let s2 = s.clone();
    let (r2, busy2) = (r.clone(), busy.clone());
    let in_flight =
        tokio::spawn(async move { s2.append_upload(&r2, &busy2, (None, None, body)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = s.sweep().await.unwrap();
    assert_eq!(report.uploads, 1, "only the idle session expires");
    assert!(matches!(
        s.upload_status(&r, &idle).await,
        Err(StorageError::UploadUnknown(_))
    ));
    drop(tx); // the slow body ends
    assert_eq!(in_flight.await.unwrap().unwrap().size, 4);
    assert_eq!(s.upload_status(&r, &busy).await.unwrap().size, 4);
    assert_eq!(staged(dir.path()), vec![busy]);
}

#[tokio::test]
async fn sessions_are_limited_per_client_and_in_total() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.upload_limits = UploadLimits {
        max_sessions: 3,
        max_sessions_per_client: 2,
    };
    let s = Storage::open(opts).await.unwrap();
    let r = repo("x");
    let a: IpAddr = "127.0.0.2".parse().unwrap();
    let b: IpAddr = "127.0.0.3".parse().unwrap();
    let first = s
        .start_upload(&r, Algorithm::Sha256, Some(a))
        .await
        .unwrap();
    s.start_upload(&r, Algorithm::Sha256, Some(a))
        .await
        .unwrap();
    let too_many = |res: Result<UploadStatus>| {
        assert!(matches!(res, Err(StorageError::TooManyUploads(_))));
    };
    too_many(s.start_upload(&r, Algorithm::Sha256, Some(a)).await);
    s.start_upload(&r, Algorithm::Sha256, Some(b))
        .await
        .unwrap();
    too_many(s.start_upload(&r, Algorithm::Sha256, Some(b)).await);
    s.cancel_upload(&r, &first.id).await.unwrap();
    s.start_upload(&r, Algorithm::Sha256, Some(a))
        .await
        .unwrap();
    assert_eq!(s.open_uploads(), 3);
}

/// Push a blob and an image manifest referencing it; returns (blob, manifest) digests.
async fn push_image(s: &Storage, r: &RepoName, content: &[u8], tag: &str) -> (Digest, Digest) {
    let blob = Digest::sha256(content);
    s.put_blob(r, &blob, None, chunks(content, 7), None)
        .await
        .unwrap();
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{blob}","size":{}}},"layers":[]}}"#,
        crate::oci::OCI_MANIFEST,
        crate::oci::OCI_CONFIG,
        content.len()
    );
    let put = s
        .put_manifest(r, &tag.parse().unwrap(), &[], None, body.as_bytes())
        .await
        .unwrap();
    (blob, put.digest)
}

#[tokio::test]
async fn referenced_content_cannot_be_deleted_until_its_manifest_goes() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    let r = repo("team/img");
    let (blob, manifest) = push_image(&s, &r, b"{\"a\":1}", "v1").await;
    let err = s.delete_blob(&r, &blob).await.unwrap_err();
    match &err {
        StorageError::InUse { target, by } => {
            assert_eq!((target, by), (&blob, &manifest));
            assert!(err.to_string().contains(manifest.as_str()));
        }
        other => panic!("expected InUse, got {other}"),
    }
    assert_eq!(read_all(&s, &r, &blob).await, b"{\"a\":1}");
    // An index that lists the manifest protects it the same way.
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{manifest}","size":{}}}]}}"#,
        crate::oci::OCI_INDEX,
        crate::oci::OCI_MANIFEST,
        s.get_manifest(&r, &Reference::Digest(manifest.clone()))
            .await
            .unwrap()
            .content
            .len()
    );
    let idx = s
        .put_manifest(&r, &"multi".parse().unwrap(), &[], None, index.as_bytes())
        .await
        .unwrap()
        .digest;
    let by_digest = Reference::Digest(manifest.clone());
    assert!(matches!(
        s.delete_manifest(&r, &by_digest).await,
        Err(StorageError::InUse { .. })
    ));
    s.delete_manifest(&r, &Reference::Digest(idx))
        .await
        .unwrap();
    s.delete_manifest(&r, &by_digest).await.unwrap();
    s.delete_blob(&r, &blob).await.unwrap();
    assert!(s.blob_size(&r, &blob).await.is_err());
}

#[tokio::test]
async fn orphan_blob_files_are_swept_and_linked_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo("x");
    let kept = {
        let s = open(dir.path()).await;
        push_image(&s, &r, b"{}", "v1").await.0
    };
    // A crash between the rename and the metadata insert left a blob file.
    let orphan = Digest::sha256(b"orphan");
    let hex = orphan.hex();
    let path = dir.path().join(format!("blobs/sha256/{}/{hex}", &hex[..2]));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"orphan").unwrap();
    let s = open(dir.path()).await;
    assert!(!path.exists(), "the start-up sweep removes the orphan");
    assert_eq!(read_all(&s, &r, &kept).await, b"{}");
    // A later push of the same content works as usual.
    s.put_blob(&r, &orphan, Some(6), chunks(b"orphan", 2), None)
        .await
        .unwrap();
    assert_eq!(s.sweep().await.unwrap(), SweepReport::default());
    assert_eq!(read_all(&s, &r, &orphan).await, b"orphan");
}

/// Closing PUT against DELETE of the same session, many times: a blob acknowledged
/// as committed always reads back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_racing_cancel_never_acknowledges_a_broken_blob() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    let r = repo("x");
    let (mut committed, mut cancelled) = (0, 0);
    for i in 0..200u32 {
        let data: Vec<u8> = (0..(1000 + i * 97)).map(|b| (b * 31 + i) as u8).collect();
        let d = Digest::sha256(&data);
        let id = new_session(&s, &r).await;
        s.append_upload(&r, &id, (None, None, chunks(&data[..500], 100)))
            .await
            .unwrap();
        let (s1, s2, r1, r2, id1, id2, d1) = (
            s.clone(),
            s.clone(),
            r.clone(),
            r.clone(),
            id.clone(),
            id,
            d.clone(),
        );
        let tail = data[500..].to_vec();
        let finish = tokio::spawn(async move {
            s1.finish_upload(&r1, &id1, &d1, Some((None, None, chunks(&tail, 333))))
                .await
        });
        let cancel = tokio::spawn(async move { s2.cancel_upload(&r2, &id2).await });
        let (f, c) = (finish.await.unwrap(), cancel.await.unwrap());
        match (f, c) {
            (Ok(size), Err(StorageError::UploadUnknown(_))) => {
                assert_eq!(size, data.len() as u64);
                assert_eq!(read_all(&s, &r, &d).await, data, "round {i}");
                committed += 1;
            }
            (Err(StorageError::UploadUnknown(_)), Ok(())) => {
                assert!(s.blob_size(&r, &d).await.is_err(), "round {i}");
                cancelled += 1;
            }
            (f, c) => panic!("round {i}: finish {f:?}, cancel {c:?}"),
        }
    }
    assert_eq!(committed + cancelled, 200);
    assert!(staged(dir.path()).is_empty());
}

/// PATCH racing expiry, many times: a chunk is either acknowledged (and was durable
/// while the session lived) or finds the session gone; expiry never pulls the file
/// from under a request, and nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_racing_expiry_never_loses_the_file_under_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.upload_expiry = Duration::from_secs(0);
    let s = Storage::open(opts).await.unwrap();
    let r = repo("x");
    let (mut acked, mut expired) = (0, 0);
    for i in 0..200u32 {
        let data: Vec<u8> = (0..(5000 + i * 13)).map(|b| (b ^ i) as u8).collect();
        let id = new_session(&s, &r).await;
        let (s1, r1, id1) = (s.clone(), r.clone(), id.clone());
        let patch = tokio::spawn(async move {
            s1.append_upload(&r1, &id1, (Some(0), None, chunks(&data, 1024)))
                .await
        });
        let s2 = s.clone();
        let sweep = tokio::spawn(async move { s2.sweep().await });
        sweep.await.unwrap().unwrap();
        match patch.await.unwrap() {
            Ok(st) => {
                assert_eq!(st.size, 5000 + u64::from(i) * 13, "round {i}");
                acked += 1;
            }
            Err(StorageError::UploadUnknown(_)) => expired += 1,
            Err(e) => panic!("round {i}: {e}"),
        }
        // Whatever happened, a sweep now ends the (idle) session and its file.
        s.sweep().await.unwrap();
        assert!(staged(dir.path()).is_empty(), "round {i}");
        let gone = s.upload_status(&r, &id).await;
        assert!(
            matches!(gone, Err(StorageError::UploadUnknown(_))),
            "round {i}"
        );
    }
    assert_eq!(acked + expired, 200);
}
