//! The network front of access control with real clients: mTLS handshakes (curl with a
//! certificate the client CA signed, without one, and with one from another CA), HSTS,
//! the plain-HTTP redirect listener, and addresses no rule admits closed at accept,
//! before any TLS byte, seen from network namespaces.
//!
//! The namespaces take their /30s from 203.0.113.64/26 (TEST-NET-3), which no other test
//! file uses.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::mtls::{curl_get, ClientCa};
use common::netns::Range;
use common::{free_port, https_get, require_tool, NetNs, Server};

/// This file's addresses: 203.0.113.64/26.
const OUR_NETS: Range = Range {
    prefix: [203, 0, 113],
    first: 64,
    blocks: 16,
};

/// Writes `text` as `config.toml` in `dir`; returns its path.
fn config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn client_certificates_signed_by_the_client_ca_are_accepted_others_fail_the_handshake() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = ClientCa::generate(tmp.path(), "cluster");
    let stranger = ClientCa::generate(tmp.path(), "stranger");
    let cfg = config(
        tmp.path(),
        &format!("[tls]\nclient_ca = {:?}\n", cluster.ca_path()),
    );
    let server = Server::builder()
        .arg("--config")
        .arg(&cfg)
        .env("RUST_LOG", "info,imgflow::server=debug")
        .start();
    let url = format!("{}/v2/", server.url());
    let ca = server.ca_path();

    let node1 = cluster.issue("node1");
    let with_cert = curl_get(&url, &ca, Some(&node1));
    assert_eq!(
        (with_cert.code, with_cert.status),
        (Some(0), 200),
        "{with_cert:?}"
    );
    assert!(
        server.log().contains("client_cert=node1"),
        "the Common Name must be read from the verified certificate"
    );

    let without = curl_get(&url, &ca, None);
    assert_eq!(
        (without.code, without.status),
        (Some(0), 200),
        "{without:?}"
    );

    let anonymous = curl_get(&url, &ca, Some(&cluster.issue("anonymous")));
    assert_eq!(anonymous.status, 200, "{anonymous:?}");
    assert!(!server.log().contains("client_cert=anonymous"));

    let foreign = curl_get(&url, &ca, Some(&stranger.issue("node1")));
    assert_ne!(
        foreign.code,
        Some(0),
        "another CA's certificate must fail: {foreign:?}"
    );
    assert_eq!(
        foreign.status, 0,
        "no response for another CA's certificate"
    );
    assert!(server.log().contains("TLS handshake failed"));
}

/// Sends `head` to `addr` over plain TCP and returns the response head.
fn plain_http(addr: SocketAddr, head: &str) -> String {
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(head.as_bytes()).unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).unwrap();
    out
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn https_responses_carry_hsts_and_plain_http_is_redirected() {
    let tmp = tempfile::tempdir().unwrap();
    let http_port = free_port(Ipv4Addr::LOCALHOST);
    let cfg = config(
        tmp.path(),
        &format!("[server]\nhttp_redirect_listen = \"127.0.0.1:{http_port}\"\n"),
    );
    let server = Server::builder().arg("--config").arg(&cfg).start();
    let port = server.addr().port();

    let resp = https_get(&format!("{}/v2/", server.url()), &server.ca_path()).unwrap();
    assert_eq!(
        resp.header("strict-transport-security").as_deref(),
        Some("max-age=31536000")
    );
    let missing = https_get(
        &format!("{}/v2/nope/tags/list", server.url()),
        &server.ca_path(),
    );
    assert!(missing
        .unwrap()
        .header("strict-transport-security")
        .is_some());

    let redirect = SocketAddr::from((Ipv4Addr::LOCALHOST, http_port));
    let named = plain_http(
        redirect,
        "GET /v2/team/app/tags/list?n=2 HTTP/1.1\r\nHost: registry.example:80\r\n\r\n",
    );
    assert!(named.starts_with("HTTP/1.1 308"), "{named}");
    assert_eq!(
        header(&named, "location"),
        Some(format!("https://registry.example:{port}/v2/team/app/tags/list?n=2").as_str())
    );
    let bare = plain_http(redirect, "GET /v2/ HTTP/1.0\r\n\r\n");
    assert!(bare.starts_with("HTTP/1.0 308"), "{bare}");
    assert_eq!(
        header(&bare, "location"),
        Some(format!("https://127.0.0.1:{port}/v2/").as_str())
    );

    // With public_url the redirect goes there; HSTS can be turned off.
    let cfg = config(
        tmp.path(),
        &format!(
            "[server]\nhttp_redirect_listen = \"127.0.0.1:{http_port}\"\n\
             public_url = \"https://registry.example:7443\"\nhsts_max_age_secs = 0\n"
        ),
    );
    drop(server);
    let server = Server::builder().arg("--config").arg(&cfg).start();
    let resp = https_get(&format!("{}/v2/", server.url()), &server.ca_path()).unwrap();
    assert_eq!(resp.header("strict-transport-security"), None);
    let via_public = plain_http(redirect, "GET /v2/x HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(
        header(&via_public, "location"),
        Some("https://registry.example:7443/v2/x")
    );
}

/// Runs `program ARGS` inside namespace `ns`.
fn in_ns(ns: &NetNs, program: &str, args: &[&str]) -> std::process::Output {
    Command::new(require_tool("ip"))
        .args(["netns", "exec", ns.name(), program])
        .args(args)
        .env_remove("CURL_CA_BUNDLE")
        .output()
        .unwrap_or_else(|e| panic!("running {program} in {}: {e}", ns.name()))
}

/// `openssl s_client` from `ns` to `addr`; returns its standard output.
fn s_client(ns: &NetNs, addr: SocketAddr, ca: &Path) -> String {
    let out = Command::new(require_tool("ip"))
        .args(["netns", "exec", ns.name(), "timeout", "20"])
        .arg(require_tool("openssl"))
        .args(["s_client", "-connect", &addr.to_string(), "-CAfile"])
        .arg(ca)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_address_no_rule_admits_is_closed_before_any_tls_byte() {
    require_tool("openssl");
    // Guards drop in reverse order: the server first, then the namespaces.
    let outsider = NetNs::create_in(OUR_NETS);
    let cluster = NetNs::create_in(OUR_NETS);
    let tmp = tempfile::tempdir().unwrap();
    let http_port = {
        let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = config(
        tmp.path(),
        &format!(
            "[server]\nhttp_redirect_listen = \"0.0.0.0:{http_port}\"\n\n\
             [access.networks]\ncluster = [\"{}/32\"]\n\n\
             [[access.rule]]\nfrom = [\"cluster\"]\nallow = [\"pull\"]\n",
            cluster.ns_ip()
        ),
    );
    // Listening on every address of the root namespace, so each namespace reaches the
    // server over its own link, from its own address.
    let server = Server::builder()
        .without_default_args()
        .args(["--listen", "0.0.0.0:0", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .arg("--certs-dir")
        .arg(tmp.path().join("certs"))
        .args(["--tls-name", &cluster.host_ip().to_string()])
        .args(["--tls-name", &outsider.host_ip().to_string()])
        .start();
    let port = server.addr().port();
    let ca = tmp.path().join("certs/ca.crt");
    let to = |ns: &NetNs, port: u16| SocketAddr::from((ns.host_ip(), port));

    // The outsider's TCP connection is accepted, then closed before any TLS byte.
    let seen = s_client(&outsider, to(&outsider, port), &ca);
    assert!(seen.contains("CONNECTED"), "TCP must connect: {seen}");
    assert!(
        seen.contains("has read 0 bytes"),
        "nothing may be sent to an outsider: {seen}"
    );
    let url = format!("https://{}/v2/", to(&outsider, port));
    let curl = in_ns(&outsider, "curl", &["-sS", "--max-time", "20", "-k", &url]);
    assert!(!curl.status.success(), "the outsider must get no response");
    assert!(server
        .log()
        .contains("closing connections from addresses no access rule admits"));

    // The admitted network completes TLS, verifying the certificate.
    let seen = s_client(&cluster, to(&cluster, port), &ca);
    assert!(seen.contains("Verify return code: 0 (ok)"), "{seen}");
    let url = format!("https://{}/v2/", to(&cluster, port));
    let ca_arg = ca.to_str().unwrap();
    let args = [
        "-sS",
        "--max-time",
        "20",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ];
    let curl = in_ns(
        &cluster,
        "curl",
        &[&args[..], &["--cacert", ca_arg, &url]].concat(),
    );
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "200", "{curl:?}");

    // The redirect listener filters the same way.
    let plain = |ns: &NetNs| {
        let url = format!("http://{}/v2/", to(ns, http_port));
        in_ns(ns, "curl", &[&args[..], &[url.as_str()]].concat())
    };
    let admitted = plain(&cluster);
    assert_eq!(
        String::from_utf8_lossy(&admitted.stdout),
        "308",
        "{admitted:?}"
    );
    let refused = plain(&outsider);
    assert!(!refused.status.success(), "{refused:?}");
    assert_eq!(String::from_utf8_lossy(&refused.stdout), "000");
}
