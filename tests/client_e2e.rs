//! The OCI client (`imgflow::client`) end to end against `imgflow serve` and against CNCF
//! Distribution 2.8: file uploads in chunks with progress, streamed and monolithic uploads,
//! ranged and streamed downloads, manifests, tags with `Link` pagination, mounts, the
//! catalog, referrers, deletes, and typed errors.

mod common;

use bytes::Bytes;
use common::{pseudo_random_bytes, Distribution, Registry, Server};
use imgflow::client::{
    ByteRange, Client, ClientError, MountOutcome, Progress, UploadOptions, MANIFEST_ACCEPT,
};
use imgflow::oci::{self, Digest, Reference, RepoName};
use std::sync::{Arc, Mutex};

/// What the registry under test implements beyond Distribution 2.8.
#[derive(Clone, Copy, PartialEq)]
enum Level {
    /// distribution-spec v1.1: sorted, paginated tags, referrers, tag deletion.
    V11,
    /// Distribution 2.8.
    Legacy,
}

fn repo(name: &str) -> RepoName {
    name.parse().expect("valid repository name")
}

fn image_manifest(config: &Digest, config_len: usize, layer: &Digest, layer_len: u64) -> Bytes {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "config": { "mediaType": oci::OCI_CONFIG, "digest": config, "size": config_len },
        "layers": [ { "mediaType": oci::OCI_LAYER_TAR_GZIP, "digest": layer, "size": layer_len } ]
    }))
    .expect("manifest JSON")
    .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_against_imgflow() {
    let server = Server::start();
    workflow(&server, Level::V11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_against_distribution() {
    let registry = Distribution::start();
    workflow(&registry, Level::Legacy).await;
}

async fn workflow(reg: &dyn Registry, level: Level) {
    let client = Client::builder(reg.url())
        .ca_file(reg.ca_path())
        .build()
        .expect("client");
    assert_eq!(
        client.ping().await.expect("ping").as_deref(),
        Some("registry/2.0")
    );
    let app = repo("client/app");
    let dir = tempfile::tempdir().expect("temp dir");

    // A 5 MiB file in 1 MiB chunks, with progress events.
    let data = pseudo_random_bytes(5 * 1024 * 1024 + 3, 7);
    let path = dir.path().join("layer.bin");
    std::fs::write(&path, &data).expect("writing the layer file");
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let opts = UploadOptions {
        chunk_size: 1024 * 1024,
        progress: Some(Progress::new(move |e| seen.lock().unwrap().push(e))),
        ..Default::default()
    };
    let layer = client
        .push_blob_file(&app, &path, &opts)
        .await
        .expect("file upload");
    assert_eq!(layer.digest, Digest::sha256(&data));
    assert_eq!(layer.size, data.len() as u64);
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 6, "one progress event per chunk: {events:?}");
    assert!(events.windows(2).all(|w| w[0].done < w[1].done));
    assert_eq!(
        events.last().map(|e| (e.done, e.total)),
        Some((layer.size, Some(layer.size)))
    );

    // Reads: HEAD, streamed GET into a file (verified), ranges.
    assert_eq!(
        client.blob_size(&app, &layer.digest).await.unwrap(),
        Some(layer.size)
    );
    let unknown = Digest::sha256(b"never pushed");
    assert_eq!(client.blob_size(&app, &unknown).await.unwrap(), None);
    let out_path = dir.path().join("download.bin");
    let mut out = tokio::fs::File::create(&out_path)
        .await
        .expect("download file");
    let written = client
        .get_blob_to(&app, &layer.digest, None, &mut out, None)
        .await
        .expect("streamed download");
    assert_eq!(written, layer.size);
    assert!(
        std::fs::read(&out_path).unwrap() == data,
        "downloaded bytes differ"
    );
    let range = ByteRange {
        start: 100,
        end: Some(199),
    };
    let part = client
        .get_blob_range(&app, &layer.digest, range)
        .await
        .unwrap();
    assert_eq!(&part[..], &data[100..200]);
    let err = client.get_blob(&app, &unknown).await.unwrap_err();
    assert!(err.is_not_found() && err.has_code("BLOB_UNKNOWN"), "{err}");

    // Streamed upload with a wrong expected digest fails and is cancelled.
    let streamed = pseudo_random_bytes(300_000, 9);
    let wrong = UploadOptions {
        expected: Some(unknown.clone()),
        ..Default::default()
    };
    let err = client
        .push_blob_streamed(&app, std::io::Cursor::new(streamed.clone()), &wrong)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::DigestMismatch { .. }), "{err}");
    let ok = client
        .push_blob_streamed(
            &app,
            std::io::Cursor::new(streamed.clone()),
            &Default::default(),
        )
        .await
        .expect("streamed upload");
    assert_eq!(ok.digest, Digest::sha256(&streamed));

    // Monolithic and single-POST uploads, and a session driven by hand.
    let config = Bytes::from_static(b"{\"architecture\":\"amd64\",\"os\":\"linux\"}");
    let config_digest = Digest::sha256(&config);
    client
        .push_blob(&app, &config_digest, config.clone())
        .await
        .expect("monolithic upload");
    let small = Bytes::from(pseudo_random_bytes(999, 11));
    client
        .push_blob_single_post(&app, &Digest::sha256(&small), small.clone())
        .await
        .expect("single POST upload");
    let session = client.start_upload(&app).await.unwrap();
    let session = client
        .upload_chunk(session, small.slice(..500))
        .await
        .unwrap();
    assert_eq!(client.upload_status(&session).await.unwrap().offset(), 500);
    let done = client
        .finish_upload(session, &Digest::sha256(&small), Some(small.slice(500..)))
        .await
        .expect("PUT with the final chunk");
    assert_eq!(done.size, 999);

    manifests_and_tags(
        &client,
        &app,
        &config_digest,
        config.len(),
        &layer.digest,
        layer.size,
        level,
    )
    .await;
}

async fn manifests_and_tags(
    client: &Client,
    app: &RepoName,
    config: &Digest,
    config_len: usize,
    layer: &Digest,
    layer_len: u64,
    level: Level,
) {
    let body = image_manifest(config, config_len, layer, layer_len);
    let v1: Reference = "v1".parse().unwrap();
    let pushed = client
        .put_manifest(app, &v1, oci::OCI_MANIFEST, body.clone())
        .await
        .unwrap();
    assert_eq!(pushed.digest, Digest::sha256(&body));
    let by_digest = Reference::Digest(pushed.digest.clone());
    let got = client.get_manifest(app, &v1, &[]).await.unwrap();
    assert_eq!(
        (got.body.clone(), got.media_type.as_str()),
        (body.clone(), oci::OCI_MANIFEST)
    );
    let head = client
        .head_manifest(app, &by_digest, &MANIFEST_ACCEPT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (head.digest, head.size),
        (Some(pushed.digest.clone()), Some(body.len() as u64))
    );
    let err = client
        .get_manifest(app, &"nope".parse().unwrap(), &[])
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404), "{err}");
    assert!(err.has_code("MANIFEST_UNKNOWN"), "{err}");

    // 25 more tags; listing follows Link headers where the registry paginates.
    let mut want: Vec<String> = (0..25).map(|i| format!("t{i:02}")).collect();
    for t in &want {
        client
            .put_manifest(app, &t.parse().unwrap(), oci::OCI_MANIFEST, body.clone())
            .await
            .unwrap();
    }
    want.push("v1".to_string());
    let mut all = client.list_tags(app).await.expect("tags");
    if level == Level::V11 {
        let page = client.list_tags_page(app, Some(10), None).await.unwrap();
        assert_eq!(page.tags, want[..10].to_vec());
        let next = page.next.expect("a Link to the next page");
        assert_eq!(
            client.tags_page_at(next).await.unwrap().tags,
            want[10..20].to_vec()
        );
        assert_eq!(all, want, "tags are listed in lexical order");
    }
    all.sort();
    assert_eq!(all, want);

    // Mounts and the catalog.
    let other = repo("client/other");
    let mounted = client.mount_blob(&other, layer, Some(app)).await.unwrap();
    assert!(matches!(mounted, MountOutcome::Mounted(_)), "{mounted:?}");
    assert_eq!(
        client.blob_size(&other, layer).await.unwrap(),
        Some(layer_len)
    );
    match client
        .mount_blob(&other, &Digest::sha256(b"absent"), Some(app))
        .await
        .unwrap()
    {
        MountOutcome::Upload(session) => client.cancel_upload(session).await.expect("cancel"),
        m => panic!("mounting an absent blob: {m:?}"),
    }
    // Whether a repository holding only blobs is listed is not specified; one with
    // manifests is.
    let catalog = client.catalog().await.expect("catalog");
    assert!(catalog.contains(&app.to_string()), "{catalog:?}");

    if level == Level::V11 {
        referrers_and_tag_delete(client, app, &pushed.digest, body.len()).await;
    }
    client
        .delete_manifest(app, &by_digest)
        .await
        .expect("manifest delete");
    assert!(client.head_manifest(app, &v1, &[]).await.unwrap().is_none());
    client.delete_blob(app, layer).await.expect("blob delete");
    assert_eq!(client.blob_size(app, layer).await.unwrap(), None);
}

async fn referrers_and_tag_delete(client: &Client, app: &RepoName, subject: &Digest, size: usize) {
    let empty = Bytes::from_static(b"{}");
    client
        .push_blob(app, &Digest::sha256(&empty), empty)
        .await
        .unwrap();
    let artifact: Bytes = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": { "mediaType": oci::OCI_EMPTY, "digest": Digest::sha256(b"{}"), "size": 2 },
        "layers": [],
        "subject": { "mediaType": oci::OCI_MANIFEST, "digest": subject, "size": size }
    }))
    .unwrap()
    .into();
    let reference = Reference::Digest(Digest::sha256(&artifact));
    let pushed = client
        .put_manifest(app, &reference, oci::OCI_MANIFEST, artifact)
        .await
        .unwrap();
    assert_eq!(pushed.subject.as_ref(), Some(subject));
    let found = client
        .referrers(app, subject, Some("application/vnd.example.sbom"))
        .await
        .unwrap();
    assert_eq!(found.manifests.len(), 1);
    assert_eq!(found.manifests[0].digest, pushed.digest);
    assert_eq!(found.filters_applied, vec!["artifactType".to_string()]);
    let none = client
        .referrers(app, subject, Some("application/other"))
        .await
        .unwrap();
    assert!(none.manifests.is_empty());

    client
        .delete_manifest(app, &"t00".parse().unwrap())
        .await
        .expect("tag delete");
    assert!(!client
        .list_tags(app)
        .await
        .unwrap()
        .contains(&"t00".to_string()));
    assert!(client
        .head_manifest(app, &"t01".parse().unwrap(), &[])
        .await
        .unwrap()
        .is_some());
}
