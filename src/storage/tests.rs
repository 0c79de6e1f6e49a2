//! Storage-level tests: the guarantees the HTTP layer relies on.

use super::*;
use crate::oci::{Algorithm, Digest, Reference, RepoName};
use bytes::Bytes;
use futures::{stream, Stream};

pub(super) fn chunks(
    data: &[u8],
    size: usize,
) -> impl Stream<Item = std::io::Result<Bytes>> + Unpin + Send + 'static {
    let parts: Vec<std::io::Result<Bytes>> = data
        .chunks(size.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(parts)
}

pub(super) fn options(dir: &std::path::Path) -> StorageOptions {
    StorageOptions {
        data_dir: dir.to_path_buf(),
        max_manifest_bytes: 4 << 20,
        upload_expiry: Duration::from_secs(3600),
        upload_limits: UploadLimits {
            max_sessions: 100,
            max_sessions_per_client: 10,
        },
        cache_bytes: 1 << 20,
        read_ahead_bytes: 4 << 20,
    }
}

pub(super) async fn open(dir: &std::path::Path) -> Storage {
    Storage::open(options(dir)).await.unwrap()
}

pub(super) fn repo(s: &str) -> RepoName {
    s.parse().unwrap()
}

/// Open an upload session in `r` and return its id.
pub(super) async fn new_session(s: &Storage, r: &RepoName) -> String {
    s.start_upload(r, Algorithm::Sha256, None).await.unwrap().id
}

pub(super) async fn read_all(s: &Storage, r: &RepoName, d: &Digest) -> Vec<u8> {
    use futures::TryStreamExt;
    let read = s.read_blob(r, d, None).await.unwrap();
    let parts: Vec<Bytes> = read.body.try_collect().await.unwrap();
    parts.concat()
}

fn blob_files(dir: &std::path::Path) -> usize {
    fn walk(p: &std::path::Path) -> usize {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| {
                        if e.path().is_dir() {
                            walk(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&dir.join("blobs"))
}

#[tokio::test]
async fn chunked_upload_is_hashed_verified_and_shared() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let digest = Digest::sha256(&data);
    let (a, b) = (repo("team/a"), repo("team/b"));
    let up = s.start_upload(&a, Algorithm::Sha256, None).await.unwrap();
    let st = s
        .append_upload(
            &a,
            &up.id,
            (Some(0), None, chunks(&data[..1_000_000], 4096)),
        )
        .await
        .unwrap();
    assert_eq!(st.size, 1_000_000);
    // A chunk that does not start at the current offset is refused and changes nothing.
    let err = s
        .append_upload(&a, &up.id, (Some(5), None, chunks(&data[5..10], 5)))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StorageError::RangeMismatch {
            current: 1_000_000,
            got: 5
        }
    ));
    let size = s
        .finish_upload(
            &a,
            &up.id,
            &digest,
            Some((None, None, chunks(&data[1_000_000..], 65536))),
        )
        .await
        .unwrap();
    assert_eq!(size, data.len() as u64);
    assert_eq!(read_all(&s, &a, &digest).await, data);
    // Not visible in another repository until mounted; then one copy on disk.
    assert!(matches!(
        s.blob_size(&b, &digest).await,
        Err(StorageError::BlobUnknown(_))
    ));
    assert!(s.mount_blob(&b, &digest, Some(&a)).await.unwrap());
    assert_eq!(blob_files(dir.path()), 1);
    // Deleting from one repository keeps it for the other; the last delete removes data.
    s.delete_blob(&a, &digest).await.unwrap();
    assert_eq!(read_all(&s, &b, &digest).await, data);
    s.delete_blob(&b, &digest).await.unwrap();
    assert_eq!(blob_files(dir.path()), 0);
    // The session is gone once finished.
    assert!(matches!(
        s.upload_status(&a, &up.id).await,
        Err(StorageError::UploadUnknown(_))
    ));
}

#[tokio::test]
async fn bad_uploads_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    let r = repo("x");
    let wrong = Digest::sha256(b"something else");
    let err = s
        .put_blob(&r, &wrong, None, chunks(b"hello", 2), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::DigestMismatch { .. }));
    // Announced length longer than the body: rejected.
    let d = Digest::sha256(b"hello");
    let err = s
        .put_blob(&r, &d, Some(9), chunks(b"hello", 2), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::SizeInvalid(_)));
    // A body that breaks off half-way.
    let broken = stream::iter(vec![
        Ok(Bytes::from_static(b"hel")),
        Err(std::io::Error::other("connection reset")),
    ]);
    let err = s.put_blob(&r, &d, None, broken, None).await.unwrap_err();
    assert!(matches!(err, StorageError::BodyFailed(_)));
    assert_eq!(blob_files(dir.path()), 0);
    assert!(s.blob_size(&r, &d).await.is_err());
    let staged = std::fs::read_dir(dir.path().join("uploads"))
        .unwrap()
        .count();
    assert_eq!(
        staged, 0,
        "failed monolithic uploads leave no staging files"
    );
}

#[tokio::test]
async fn aborted_chunk_rolls_back_and_sessions_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo("x");
    let id;
    {
        let s = open(dir.path()).await;
        id = s
            .start_upload(&r, Algorithm::Sha256, None)
            .await
            .unwrap()
            .id;
        s.append_upload(&r, &id, (None, None, chunks(b"abc", 1)))
            .await
            .unwrap();
        let broken = stream::iter(vec![
            Ok(Bytes::from_static(b"zzz")),
            Err(std::io::Error::other("client went away")),
        ]);
        assert!(s
            .append_upload(&r, &id, (None, None, broken))
            .await
            .is_err());
        assert_eq!(s.upload_status(&r, &id).await.unwrap().size, 3);
    }
    // A new process: the session is found on disk and its hash rebuilt.
    let s = open(dir.path()).await;
    assert_eq!(s.upload_status(&r, &id).await.unwrap().size, 3);
    s.append_upload(&r, &id, (Some(3), Some(3), chunks(b"def", 2)))
        .await
        .unwrap();
    let d = Digest::sha256(b"abcdef");
    s.finish_upload(
        &r,
        &id,
        &d,
        None::<Chunk<stream::Empty<std::io::Result<Bytes>>>>,
    )
    .await
    .unwrap();
    assert_eq!(read_all(&s, &r, &d).await, b"abcdef");
}

#[tokio::test]
async fn sha512_and_zero_byte_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    let r = repo("x");
    let d512 = Digest::of(Algorithm::Sha512, b"data");
    s.put_blob(&r, &d512, Some(4), chunks(b"data", 3), None)
        .await
        .unwrap();
    assert_eq!(read_all(&s, &r, &d512).await, b"data");
    // A sha512 digest named only at the end of a chunked upload.
    let up = s.start_upload(&r, Algorithm::Sha256, None).await.unwrap();
    let d2 = Digest::of(Algorithm::Sha512, b"more");
    s.finish_upload(&r, &up.id, &d2, Some((None, None, chunks(b"more", 1))))
        .await
        .unwrap();
    let empty = Digest::sha256(b"");
    s.put_blob(&r, &empty, Some(0), chunks(b"", 1), None)
        .await
        .unwrap();
    assert_eq!(s.blob_size(&r, &empty).await.unwrap(), 0);
    assert!(read_all(&s, &r, &empty).await.is_empty());
}

#[tokio::test]
async fn manifests_require_their_blobs_and_tags_delete_alone() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    let r = repo("team/img");
    let config = b"{}";
    let cd = Digest::sha256(config);
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{cd}","size":2}},"layers":[]}}"#,
        crate::oci::OCI_MANIFEST,
        crate::oci::OCI_CONFIG
    );
    let tag: Reference = "v1".parse().unwrap();
    let err = s
        .put_manifest(
            &r,
            &tag,
            &[],
            Some(crate::oci::OCI_MANIFEST),
            body.as_bytes(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::ManifestBlobUnknown(_)));
    assert!(matches!(
        s.tags(&r, 100, None).await,
        Err(StorageError::NameUnknown(_))
    ));
    assert!(s.catalog(100, None).await.unwrap().is_empty());
    s.put_blob(&r, &cd, None, chunks(config, 1), None)
        .await
        .unwrap();
    // A repository holding only blobs exists (as in Distribution), with no tags yet.
    assert_eq!(s.catalog(100, None).await.unwrap(), vec!["team/img"]);
    assert!(s.tags(&r, 100, None).await.unwrap().is_empty());
    let put = s
        .put_manifest(&r, &tag, &["v1.0".parse().unwrap()], None, body.as_bytes())
        .await
        .unwrap();
    assert_eq!(s.tags(&r, 100, None).await.unwrap(), vec!["v1", "v1.0"]);
    assert_eq!(s.tags(&r, 1, Some("v1")).await.unwrap(), vec!["v1.0"]);
    s.delete_manifest(&r, &tag).await.unwrap();
    let by_digest = Reference::Digest(put.digest.clone());
    assert_eq!(
        s.get_manifest(&r, &by_digest).await.unwrap().content,
        body.as_bytes()
    );
    s.delete_manifest(&r, &by_digest).await.unwrap();
    assert!(s.get_manifest(&r, &"v1.0".parse().unwrap()).await.is_err());
    // Too large.
    let big = vec![b' '; (4 << 20) + 1];
    assert!(matches!(
        s.put_manifest(&r, &tag, &[], None, &big).await,
        Err(StorageError::ManifestTooLarge { .. })
    ));
}
