//! A client certificate signs its Common Name in: with `[tls] client_ca` set and a rule
//! letting only `node1` pull, curl with node1's certificate may list tags (200, or 404 for
//! a repository that does not exist) while curl without a certificate is refused (401 or
//! 403).
//!
//! The server half (the verified Common Name in every request's extensions as
//! `CertIdentity`) is done; this test passes once the registry's access middleware turns
//! that into the signed-in identity.

mod common;

use common::mtls::{curl_get, ClientCa};
use common::Server;

#[test]
fn a_client_certificate_pulls_what_its_common_name_may() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = ClientCa::generate(tmp.path(), "cluster");
    let cfg = tmp.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[tls]\nclient_ca = {:?}\n\n\
             [[access.rule]]\nwho = [\"node1\"]\nallow = [\"pull\"]\nrepos = [\"**\"]\n",
            cluster.ca_path()
        ),
    )
    .unwrap();
    let server = Server::builder().arg("--config").arg(&cfg).start();
    let url = format!("{}/v2/cluster/app/tags/list", server.url());
    let ca = server.ca_path();

    let node1 = curl_get(&url, &ca, Some(&cluster.issue("node1")));
    assert_eq!(node1.code, Some(0), "{node1:?}");
    assert!(
        [200, 404].contains(&node1.status),
        "node1's certificate must be allowed to pull (got {})",
        node1.status
    );

    let anonymous = curl_get(&url, &ca, None);
    assert_eq!(anonymous.code, Some(0), "{anonymous:?}");
    assert!(
        [401, 403].contains(&anonymous.status),
        "anonymous may not pull (got {})",
        anonymous.status
    );

    let other = curl_get(&url, &ca, Some(&cluster.issue("node2")));
    assert!(
        [401, 403].contains(&other.status),
        "node2 may not pull (got {})",
        other.status
    );
}
