//! Upload sessions are bounded per client address and in total: past either limit,
//! starting one answers 429 TOOMANYREQUESTS with Retry-After and creates nothing;
//! ending a session frees its place. Clients come from different loopback addresses.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::oci_api::{assert_error, Api};
use common::Server;

/// A client of `server` whose connections come from `local`.
fn client_from(server: &Server, local: &str) -> Api {
    let pem = std::fs::read(server.ca_path()).unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .no_proxy()
        .local_address(local.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    Api {
        client,
        base: server.url(),
    }
}

#[tokio::test]
async fn sessions_are_limited_per_client_address_and_in_total() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("limits.toml");
    std::fs::write(
        &cfg,
        "[storage]\nmax_upload_sessions = 3\nmax_upload_sessions_per_client = 2\n",
    )
    .unwrap();
    let server = Server::builder().arg("--config").arg(&cfg).start();
    let a = client_from(&server, "127.0.0.2");
    let b = client_from(&server, "127.0.0.3");
    let c = client_from(&server, "127.0.0.4");
    let post = |api: &Api| {
        let api = api.clone();
        async move {
            api.send("POST", "/v2/limits/blobs/uploads/", &[], Vec::new())
                .await
        }
    };
    let first = post(&a).await;
    assert_eq!(first.status, 202, "{first:?}");
    assert_eq!(post(&a).await.status, 202);
    let refused = post(&a).await;
    assert_error(
        &refused,
        429,
        &["TOOMANYREQUESTS"],
        "third session of one client",
    );
    assert!(refused.header("retry-after").is_some(), "{refused:?}");
    // Another address still has room, until the registry's total is reached.
    assert_eq!(post(&b).await.status, 202);
    assert_error(&post(&c).await, 429, &["TOOMANYREQUESTS"], "past the total");
    // A monolithic push needs a session too, and is refused the same way.
    let data = b"refused blob";
    let digest = common::sha256_digest(data);
    let r = c
        .send(
            "POST",
            &format!("/v2/limits/blobs/uploads/?digest={digest}"),
            &[],
            data.to_vec(),
        )
        .await;
    assert_error(
        &r,
        429,
        &["TOOMANYREQUESTS"],
        "monolithic push past the total",
    );
    let staged = std::fs::read_dir(server.data_dir().join("uploads"))
        .unwrap()
        .count();
    assert_eq!(staged, 3, "refused sessions leave no staging file");
    // Ending a session frees its place.
    let loc = first.header("location").unwrap();
    assert_eq!(a.send("DELETE", &loc, &[], Vec::new()).await.status, 204);
    assert_eq!(c.push_blob("limits", data).await, digest);
    assert_eq!(post(&a).await.status, 202);
}
