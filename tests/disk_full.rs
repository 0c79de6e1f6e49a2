//! A full disk: the registry's data directory is a small tmpfs that the test fills.
//!
//! Writes that run out of space (blob bytes: `ENOSPC`; metadata: SQLite's `SQLITE_FULL`)
//! answer 507 with OCI code `UNKNOWN` and a message saying the storage is full, leave
//! nothing of the failed upload in `uploads/` or `blobs/` (a chunked session keeps exactly
//! its acknowledged bytes), reads of earlier content keep working, and pushes succeed
//! again once space is freed.
//!
//! Needs root (`mount -t tmpfs`).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::oci_api::{
    assert_error, content_range, image_manifest, range_offset, verify_blob_files, Api, OCI_CONFIG,
    OCI_LAYER, OCI_MANIFEST,
};
use common::{pseudo_random_bytes, require_root, require_tool, sha256_digest, Server};

const REPO: &str = "full/disk";
const MIB: usize = 1 << 20;
/// Size of the tmpfs holding the data directory.
const TMPFS_MIB: usize = 24;
/// Free space left by the partial fill; every failing blob is larger than this.
const LEFT_FREE: u64 = 2 << 20;
/// Size of the blobs that do not fit.
const TOO_BIG: usize = 4 * MIB;

/// A tmpfs of `size` mounted on a fresh directory; unmounted (lazily if busy) on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size_mib: usize) -> Tmpfs {
        require_root("mounting a tmpfs");
        require_tool("mount");
        let dir = tempfile::Builder::new()
            .prefix("imgflow-full-")
            .tempdir_in("/tmp")
            .expect("creating the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m,mode=0700")])
            .arg("tmpfs")
            .arg(dir.path())
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mount -t tmpfs on {} failed: {}",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// A file that takes the tmpfs' free space.
struct Filler {
    path: PathBuf,
}

impl Filler {
    /// Writes until the file system says `ENOSPC`, then gives back `leave` bytes.
    fn fill(path: PathBuf, leave: u64) -> Filler {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("creating the filler file");
        let block = vec![0xa5u8; 256 << 10];
        loop {
            match file.write_all(&block) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        let len = file.metadata().expect("filler metadata").len();
        file.set_len(len.saturating_sub(leave))
            .expect("shrinking the filler");
        Filler { path }
    }

    /// Deletes the filler (frees the space).
    fn remove(self) {
        std::fs::remove_file(&self.path).expect("removing the filler");
    }
}

/// Names and sizes of the files directly in `dir`.
fn files_in(dir: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| {
            let e = e.expect("directory entry");
            let len = e.metadata().expect("metadata").len();
            (e.file_name().to_string_lossy().into_owned(), len)
        })
        .collect();
    out.sort();
    out
}

/// Asserts a 507 storage-full answer.
fn assert_full(resp: &common::HttpResponse, ctx: &str) {
    assert_error(resp, 507, &["UNKNOWN"], ctx);
    let message = resp.json()["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("storage is full"),
        "{ctx}: the 507 message should say the storage is full: {message:?}"
    );
}

/// Content pushed while there was space, which must stay readable.
struct Old {
    config: (String, Vec<u8>),
    layer: (String, Vec<u8>),
    manifest: (String, Vec<u8>),
}

impl Old {
    async fn push(api: &Api) -> Old {
        let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
        let layer = pseudo_random_bytes(MIB + 17, 0xf011);
        let config_digest = api.push_blob(REPO, &config).await;
        let layer_digest = api.push_blob(REPO, &layer).await;
        let manifest = image_manifest(
            (&config_digest, config.len()),
            &[(&layer_digest, layer.len())],
        );
        let r = api.put_manifest(REPO, "v1", OCI_MANIFEST, &manifest).await;
        assert_eq!(r.status, 201, "manifest v1: {r:?}");
        Old {
            config: (config_digest, config),
            layer: (layer_digest, layer),
            manifest: (sha256_digest(&manifest), manifest),
        }
    }

    /// Pulls everything back (manifest by tag and digest, both blobs, HEADs).
    async fn assert_readable(&self, api: &Api, ctx: &str) {
        for reference in ["v1", self.manifest.0.as_str()] {
            let r = api
                .send(
                    "GET",
                    &format!("/v2/{REPO}/manifests/{reference}"),
                    &[("Accept", OCI_MANIFEST)],
                    Vec::new(),
                )
                .await;
            assert_eq!(r.status, 200, "{ctx}: GET manifest {reference}: {r:?}");
            assert!(r.body == self.manifest.1, "{ctx}: manifest bytes differ");
        }
        for (digest, data) in [&self.config, &self.layer] {
            api.assert_blob(REPO, digest, data, ctx).await;
            let status = api.head_status(&format!("/v2/{REPO}/blobs/{digest}")).await;
            assert_eq!(status, 200, "{ctx}: HEAD blob {digest}");
        }
    }
}

/// A manifest referencing the old blobs, padded with an annotation to `pad` bytes: it
/// lives only in the metadata database, so storing it needs database space.
fn padded_manifest(old: &Old, pad: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": old.config.0, "size": old.config.1.len()},
        "layers": [{"mediaType": OCI_LAYER, "digest": old.layer.0, "size": old.layer.1.len()}],
        "annotations": {"org.example.padding": "p".repeat(pad)},
    }))
    .expect("serialising a manifest")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_answers_507_leaves_nothing_keeps_serving_and_recovers() {
    let tmpfs = Tmpfs::mount(TMPFS_MIB);
    let data = tmpfs.path().join("data");
    let server = Server::builder().data_dir(&data).start();
    let api = Api::new(&server);
    let uploads = data.join("uploads");

    let old = Old::push(&api).await;
    let mut known = std::collections::HashMap::new();
    let old_blobs = {
        let mut v = vec![old.config.0.clone(), old.layer.0.clone()];
        v.sort();
        v
    };
    assert_eq!(verify_blob_files(&data, &mut known), old_blobs);

    // A chunked session holding one acknowledged chunk before the disk fills.
    let first = pseudo_random_bytes(MIB, 0xc4a1);
    let rest = pseudo_random_bytes(TOO_BIG, 0xc4a2);
    let whole = [first.as_slice(), rest.as_slice()].concat();
    let session = api.start_upload(REPO).await;
    let r = api.patch(&session, 0, &first).await;
    assert_eq!(r.status, 202, "first chunk: {r:?}");
    let session_file = files_in(&uploads);
    assert_eq!(session_file.len(), 1, "one staging file: {session_file:?}");
    let session_file = uploads.join(&session_file[0].0);

    let filler = Filler::fill(tmpfs.path().join("filler"), LEFT_FREE);

    // 1. Monolithic push of a blob larger than the free space: POST ?digest=, over
    //    HTTP/2 and over HTTP/1.1 (where the refused body must be drained for the client
    //    to see the answer).
    let big = pseudo_random_bytes(TOO_BIG, 0xb16);
    let big_digest = sha256_digest(&big);
    let http1 = Api {
        client: http1_client(&server.ca_path()),
        base: api.base.clone(),
    };
    for (proto, client) in [("HTTP/2", &api), ("HTTP/1.1", &http1)] {
        let r = client
            .send(
                "POST",
                &format!("/v2/{REPO}/blobs/uploads/?digest={big_digest}"),
                &[("Content-Type", "application/octet-stream")],
                big.clone(),
            )
            .await;
        let ctx = format!("monolithic POST ?digest= over {proto}");
        assert_full(&r, &ctx);
        assert_eq!(
            files_in(&uploads),
            [(session_file_name(&session_file), MIB as u64)],
            "{ctx}: only the earlier session's staging file may remain, unchanged"
        );
        assert_eq!(verify_blob_files(&data, &mut known), old_blobs, "{ctx}");
        let status = api
            .head_status(&format!("/v2/{REPO}/blobs/{big_digest}"))
            .await;
        assert_eq!(status, 404, "{ctx}: the failed blob must not exist");
    }

    // 2. The chunked session: a chunk that does not fit is rolled back; the session keeps
    //    exactly its acknowledged bytes.
    let r = api.patch(&session, MIB as u64, &rest).await;
    assert_full(&r, "chunked PATCH");
    assert_eq!(api.upload_offset(&session).await, Some(MIB as u64));
    assert!(
        std::fs::read(&session_file).expect("staging file") == first,
        "after the failed PATCH the staging file must hold exactly the first chunk"
    );
    assert_eq!(verify_blob_files(&data, &mut known), old_blobs);

    // 3. A session closed by a PUT carrying a last chunk that does not fit.
    let put_session = api.start_upload(REPO).await;
    let r = api
        .send(
            "PUT",
            &format!("{put_session}?digest={big_digest}"),
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", &content_range(0, big.len() as u64)),
            ],
            big.clone(),
        )
        .await;
    assert_full(&r, "closing PUT with a chunk");
    assert_eq!(api.upload_offset(&put_session).await, Some(0));
    let r = api.send("DELETE", &put_session, &[], Vec::new()).await;
    assert_eq!(r.status, 204, "cancel the failed session: {r:?}");
    assert_eq!(
        files_in(&uploads),
        [(session_file_name(&session_file), MIB as u64)],
        "closing PUT: nothing of the failed session may remain"
    );
    assert_eq!(verify_blob_files(&data, &mut known), old_blobs);

    // 4. Reads keep working while the disk is full.
    old.assert_readable(&api, "disk full").await;
    assert_eq!(api.tags(REPO).await, ["v1"], "tags while the disk is full");

    // 5. The metadata database runs out too: a manifest larger than the free space.
    let fat = padded_manifest(&old, 3 * MIB);
    let fat_digest = sha256_digest(&fat);
    let r = api.put_manifest(REPO, "fat", OCI_MANIFEST, &fat).await;
    assert_full(&r, "manifest PUT (SQLITE_FULL)");
    let r = api.get(&format!("/v2/{REPO}/manifests/{fat_digest}")).await;
    assert_error(&r, 404, &["MANIFEST_UNKNOWN"], "failed manifest");
    old.assert_readable(&api, "after SQLITE_FULL").await;

    // 6. Free the space: every kind of push works again.
    filler.remove();
    let digest = api.push_blob(REPO, &big).await;
    assert_eq!(digest, big_digest);
    api.assert_blob(REPO, &big_digest, &big, "after freeing")
        .await;
    let r = api.patch(&session, MIB as u64, &rest).await;
    assert_eq!(r.status, 202, "resumed chunk: {r:?}");
    assert_eq!(range_offset(&r), whole.len() as u64);
    let whole_digest = sha256_digest(&whole);
    let r = api.finish(&session, &whole_digest, &[]).await;
    assert_eq!(r.status, 201, "closing the resumed session: {r:?}");
    api.assert_blob(REPO, &whole_digest, &whole, "resumed session")
        .await;
    let r = api.put_manifest(REPO, "fat", OCI_MANIFEST, &fat).await;
    assert_eq!(r.status, 201, "manifest PUT after freeing: {r:?}");
    let manifest = image_manifest(
        (&old.config.0, old.config.1.len()),
        &[(&big_digest, big.len()), (&whole_digest, whole.len())],
    );
    let r = api.put_manifest(REPO, "v2", OCI_MANIFEST, &manifest).await;
    assert_eq!(r.status, 201, "manifest v2: {r:?}");
    assert_eq!(api.tags(REPO).await, ["fat", "v1", "v2"]);
    old.assert_readable(&api, "after freeing").await;
    assert!(
        files_in(&uploads).is_empty(),
        "no staging file is left after every session closed: {:?}",
        files_in(&uploads)
    );
    let mut all = old_blobs.clone();
    all.extend([big_digest, whole_digest]);
    all.sort();
    assert_eq!(verify_blob_files(&data, &mut known), all);
    drop(server);
    drop(tmpfs);
}

/// An HTTPS client trusting only `ca` that speaks HTTP/1.1 only.
fn http1_client(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("reading the CA");
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA PEM"))
        .http1_only()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .expect("building an HTTP/1.1 client")
}

fn session_file_name(path: &Path) -> String {
    path.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

/// A fresh registry on a fresh tmpfs holding the old content, then filled to the last
/// byte (so the metadata database cannot grow either).
async fn full_registry() -> (Tmpfs, Server, Api, Old, Filler) {
    let tmpfs = Tmpfs::mount(TMPFS_MIB);
    let server = Server::builder()
        .data_dir(tmpfs.path().join("data"))
        .start();
    let api = Api::new(&server);
    let old = Old::push(&api).await;
    let filler = Filler::fill(tmpfs.path().join("filler"), 0);
    (tmpfs, server, api, old, filler)
}

/// When the database is full, a refused upload start leaves no staging file.
///
/// Ignored on this branch: the storage here (`Storage::start_upload`, src/storage/mod.rs)
/// creates `uploads/<id>` before inserting the session row and leaves it when the insert
/// fails. The storage rewrite on main (3087a9a) passes it; un-ignore after the merge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upload_start_leaves_no_staging_file() {
    let (tmpfs, server, api, old, filler) = full_registry().await;
    let uploads = server.data_dir().join("uploads");
    for attempt in 0..3 {
        let r = api
            .send(
                "POST",
                &format!("/v2/{REPO}/blobs/uploads/"),
                &[],
                Vec::new(),
            )
            .await;
        assert_full(&r, &format!("POST #{attempt} with the database full"));
        assert_eq!(files_in(&uploads), [], "after refused POST #{attempt}");
    }
    old.assert_readable(&api, "database full").await;
    filler.remove();
    api.start_upload(REPO).await;
    drop(server);
    drop(tmpfs);
}

/// When the database is full at the moment a blob is published (after the staging file
/// was renamed into `blobs/`), the blob stays invisible, every blob file is complete and
/// correct, and once space is freed the client gets the right content back, whether the
/// retried closing `PUT` succeeds or the session was ended and the blob is pushed again.
/// (A verified blob file may stay in `blobs/` without its row until the orphan sweep.)
///
/// Ignored on this branch: the storage here keeps the session after that failure, and the
/// retried `PUT` recreates an empty staging file (`StagingWriter::open` creates it) and
/// publishes it under the digest: HEAD 200 with the full size, GET 500. The storage
/// rewrite on main (3087a9a) ends the session instead and passes; un-ignore after the merge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_commit_is_retried_with_the_right_content() {
    let tmpfs = Tmpfs::mount(TMPFS_MIB);
    let server = Server::builder()
        .data_dir(tmpfs.path().join("data"))
        .start();
    let api = Api::new(&server);
    let old = Old::push(&api).await;
    let data = server.data_dir().to_path_buf();
    let chunk = pseudo_random_bytes(MIB, 0xc0317);
    let digest = sha256_digest(&chunk);
    let session = api.start_upload(REPO).await;
    let r = api.patch(&session, 0, &chunk).await;
    assert_eq!(r.status, 202, "chunk: {r:?}");
    let filler = Filler::fill(tmpfs.path().join("filler"), 0);

    let r = api.finish(&session, &digest, &[]).await;
    assert_full(&r, "closing PUT with the database full");
    let status = api.head_status(&format!("/v2/{REPO}/blobs/{digest}")).await;
    assert_eq!(
        status, 404,
        "a refused commit must not make the blob visible"
    );
    // Every file under blobs/ is complete and hashes to its name.
    let mut known = std::collections::HashMap::new();
    verify_blob_files(&data, &mut known);
    old.assert_readable(&api, "after the refused commit").await;

    filler.remove();
    let r = api.finish(&session, &digest, &[]).await;
    match r.status {
        201 => api.assert_blob(REPO, &digest, &chunk, "retried PUT").await,
        404 => {
            let again = api.push_blob(REPO, &chunk).await;
            api.assert_blob(REPO, &again, &chunk, "pushed again").await;
        }
        other => panic!("retried PUT answered {other}: {r:?}"),
    }
    let r = api
        .send(
            "HEAD",
            &format!("/v2/{REPO}/blobs/{digest}"),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(
        r.header("content-length"),
        Some(chunk.len().to_string()),
        "HEAD after recovery"
    );
    verify_blob_files(&data, &mut known);
    drop(server);
    drop(tmpfs);
}
