//! Races between requests, each run many times over HTTPS (HTTP/2, so the two requests
//! of a round really are in flight together on one connection), asserting the
//! registry's invariants rather than one interleaving: every 201 reads back byte for
//! byte, every accepted manifest's blobs stay readable, a loser gets the spec's error.

mod common;

use std::collections::HashMap;

use common::oci_api::{
    content_range, image_manifest, range_offset, verify_blob_files, Api, OCI_MANIFEST,
};
use common::{pseudo_random_bytes, sha256_digest, Server};

/// Rounds per race (each a few milliseconds on loopback).
const ROUNDS: u64 = 150;

fn blob(round: u64, salt: u64) -> Vec<u8> {
    pseudo_random_bytes(2000 + (round as usize * 131) % 70_000, round * 1000 + salt)
}

/// Closing `PUT ?digest=` racing `DELETE` of the same session: either the blob is
/// committed (201, and it reads back whole) and the DELETE finds no session, or the
/// session is cancelled (204) and the PUT finds none; never a 201 for a broken blob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_put_racing_delete_of_its_session() {
    let server = Server::start();
    let api = Api::new(&server);
    let repo = "race/put-delete";
    let (mut committed, mut cancelled) = (0, 0);
    for round in 0..ROUNDS {
        let data = blob(round, 1);
        let digest = sha256_digest(&data);
        let loc = api.start_upload(repo).await;
        let half = data.len() / 2;
        let r = api.patch(&loc, 0, &data[..half]).await;
        assert_eq!(r.status, 202, "round {round}: PATCH: {r:?}");
        let (put, del) = tokio::join!(
            api.finish(&loc, &digest, &data[half..]),
            api.send("DELETE", &loc, &[], Vec::new())
        );
        let path = format!("/v2/{repo}/blobs/{digest}");
        match (put.status, del.status) {
            (201, 404) => {
                api.assert_blob(repo, &digest, &data, &format!("round {round}"))
                    .await;
                committed += 1;
            }
            (404, 204) => {
                assert_eq!(api.head_status(&path).await, 404, "round {round}");
                cancelled += 1;
            }
            (p, d) => panic!("round {round}: PUT {p} ({put:?}), DELETE {d} ({del:?})"),
        }
    }
    println!("committed {committed}, cancelled {cancelled}");
    verify_blob_files(server.data_dir(), &mut HashMap::new());
    let staged = std::fs::read_dir(server.data_dir().join("uploads"))
        .unwrap()
        .count();
    assert_eq!(staged, 0, "no staging file is left behind");
}

/// Two PATCHes for the same offset of one session: exactly one is acknowledged, the
/// other gets 416 with the session's new `Range`, and the blob is exactly what the
/// acknowledgements say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_patches_on_one_session() {
    let server = Server::start();
    let api = Api::new(&server);
    let repo = "race/patches";
    for round in 0..ROUNDS {
        let a = blob(round, 2);
        let b = blob(round, 3);
        let loc = api.start_upload(repo).await;
        let (ra, rb) = tokio::join!(api.patch(&loc, 0, &a), api.patch(&loc, 0, &b));
        let winner = match (ra.status, rb.status) {
            (202, 416) => {
                assert_eq!(range_offset(&rb), a.len() as u64, "round {round}: {rb:?}");
                &a
            }
            (416, 202) => {
                assert_eq!(range_offset(&ra), b.len() as u64, "round {round}: {ra:?}");
                &b
            }
            (x, y) => panic!("round {round}: PATCHes answered {x} and {y}: {ra:?} {rb:?}"),
        };
        let digest = sha256_digest(winner);
        let r = api.finish(&loc, &digest, &[]).await;
        assert_eq!(r.status, 201, "round {round}: PUT: {r:?}");
        api.assert_blob(repo, &digest, winner, &format!("round {round}"))
            .await;
    }
    verify_blob_files(server.data_dir(), &mut HashMap::new());
}

/// A manifest PUT racing the DELETE of a blob it references: if the manifest is
/// accepted, its blob is still there; if the blob went first, the manifest is refused
/// with MANIFEST_BLOB_UNKNOWN. A referenced blob's DELETE is refused with 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_put_racing_blob_delete() {
    let server = Server::start();
    let api = Api::new(&server);
    let repo = "race/manifest-blob";
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        let config = format!("{{\"round\":{round}}}").into_bytes();
        let layer = blob(round, 4);
        let cd = api.push_blob(repo, &config).await;
        let ld = api.push_blob(repo, &layer).await;
        let manifest = image_manifest((&cd, config.len()), &[(&ld, layer.len())]);
        let tag = format!("r{round}");
        let blob_path = format!("/v2/{repo}/blobs/{ld}");
        let (put, del) = tokio::join!(
            api.put_manifest(repo, &tag, OCI_MANIFEST, &manifest),
            api.send("DELETE", &blob_path, &[], Vec::new())
        );
        match (put.status, del.status) {
            (201, 409) => {
                let body = String::from_utf8_lossy(&del.body);
                let md = sha256_digest(&manifest);
                assert!(
                    body.contains(&md),
                    "round {round}: 409 names the manifest: {body}"
                );
                api.assert_blob(repo, &ld, &layer, &format!("round {round}"))
                    .await;
                api.assert_blob(repo, &cd, &config, &format!("round {round}"))
                    .await;
                accepted += 1;
            }
            (400, 202) => {
                let body = String::from_utf8_lossy(&put.body);
                assert!(
                    body.contains("MANIFEST_BLOB_UNKNOWN"),
                    "round {round}: {body}"
                );
                let r = api.get(&format!("/v2/{repo}/manifests/{tag}")).await;
                assert_eq!(
                    r.status, 404,
                    "round {round}: refused manifest is not stored"
                );
                refused += 1;
            }
            (p, d) => {
                panic!("round {round}: manifest PUT {p} ({put:?}), blob DELETE {d} ({del:?})")
            }
        }
    }
    println!("accepted {accepted}, refused {refused}");
}

/// The same content pushed into two repositories at once (chunked, both sessions open
/// together): both are acknowledged and both read back; one copy is on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_digest_pushed_to_two_repositories_at_once() {
    let server = Server::start();
    let api = Api::new(&server);
    for round in 0..ROUNDS {
        let data = blob(round, 5);
        let digest = sha256_digest(&data);
        let (ra, rb) = (
            format!("race/a{}", round % 7),
            format!("race/b{}", round % 5),
        );
        let push = |repo: String| {
            let (api, data, digest) = (api.clone(), data.clone(), digest.clone());
            async move {
                let loc = api.start_upload(&repo).await;
                let cut = data.len() / 3;
                let r = api.patch(&loc, 0, &data[..cut]).await;
                assert_eq!(r.status, 202, "PATCH in {repo}: {r:?}");
                api.finish(&loc, &digest, &data[cut..]).await
            }
        };
        let (a, b) = tokio::join!(push(ra.clone()), push(rb.clone()));
        assert_eq!(
            (a.status, b.status),
            (201, 201),
            "round {round}: {a:?} {b:?}"
        );
        for repo in [&ra, &rb] {
            api.assert_blob(repo, &digest, &data, &format!("round {round}"))
                .await;
        }
    }
    let found = verify_blob_files(server.data_dir(), &mut HashMap::new());
    assert_eq!(found.len() as u64, ROUNDS, "one file per distinct blob");
}

/// A chunk whose request is dropped half-way (the HTTP/2 stream reset by a client that
/// gives up) never leaves its bytes behind: the session reports the acknowledged
/// offset, and a PATCH from there completes a blob that reads back byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_chunks_are_taken_back_before_the_next_request() {
    let server = Server::start();
    let api = Api::new(&server);
    let repo = "race/dropped";
    for round in 0..20u64 {
        let data = pseudo_random_bytes(3 << 20, round);
        let digest = sha256_digest(&data);
        let loc = api.start_upload(repo).await;
        let first = 1 << 20;
        assert_eq!(api.patch(&loc, 0, &data[..first]).await.status, 202);
        // Send part of the next chunk, then drop the request mid-body.
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<bytes::Bytes, std::io::Error>>();
        tx.unbounded_send(Ok(bytes::Bytes::copy_from_slice(
            &data[first..first + 300_000],
        )))
        .unwrap();
        let range = content_range(first as u64, (2 << 20) as u64);
        let req = api
            .client
            .patch(api.url(&loc))
            .header("Content-Range", &range)
            .body(reqwest::Body::wrap_stream(rx))
            .send();
        let dropped =
            tokio::time::timeout(std::time::Duration::from_millis(50 + round * 10), req).await;
        assert!(
            dropped.is_err(),
            "round {round}: the half-sent PATCH cannot have finished"
        );
        drop(tx);
        // The next request sees only what was acknowledged, and continues from there.
        let offset = api.upload_offset(&loc).await.expect("session still open");
        assert_eq!(
            offset, first as u64,
            "round {round}: offset after a dropped chunk"
        );
        let r = api.patch(&loc, offset, &data[first..]).await;
        assert_eq!(r.status, 202, "round {round}: {r:?}");
        let r = api.finish(&loc, &digest, &[]).await;
        assert_eq!(r.status, 201, "round {round}: {r:?}");
        api.assert_blob(repo, &digest, &data, &format!("round {round}"))
            .await;
    }
}
