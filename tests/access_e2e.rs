//! End-to-end access control (issue 6): real clients (docker, curl, skopeo, openssl) over
//! verified TLS, from real and different source addresses.
//!
//! Topology. The registry runs in the root network namespace, listening on `0.0.0.0`.
//! Each test creates three client namespaces, each joined to the root namespace by its
//! own veth /30 from `198.51.100.128/25` ([`NetNs::create_client`]): `vlan` (the team
//! VLAN), `cluster` and `outsider`. A client inside a namespace connects to the root side
//! of its own link and the registry sees the namespace side as the source address.
//!
//! dockerd runs in the root namespace. A root-namespace process connecting to one of the
//! machine's own addresses uses that address as its source, so dockerd talking to
//! `<vlan root side>:PORT` is seen coming from the vlan link's root side, and through
//! `<cluster root side>:PORT` from the cluster link's root side. The configuration
//! therefore names both ends of each link in its network (`team_vlan`, `cluster`); the
//! outsider's link is in no network. The generated server certificate names the three
//! root-side addresses (`--tls-name`); docker only skips verification on loopback, so it
//! verifies it against `/etc/docker/certs.d/IP:PORT/ca.crt` ([`DockerCertsGuard`]), and
//! curl, skopeo and openssl are given the CA explicitly.
//!
//! The rules only grant, so "everyone signed in on the VLAN pushes `team/**`, interns only
//! `interns/**`" is written by naming the developers: signed-in VLAN users pull
//! everything and list the catalog, `@developers` (carol, dave) push `team/**`,
//! `@interns` (alice) push `interns/**`, `@admins` (dave) delete anything, and the cluster
//! pulls anonymously. Token authentication is on; `max_failed_logins = 3`. Client
//! certificates signed by the test's client CA (`[tls] client_ca`) sign their Common
//! Name in (cluster node `node1`).
//!
//! Every guard (namespaces, the server, dockerd, certs.d entries) is dropped also on
//! panic, in reverse order of creation.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine;
use common::mtls::ClientCa;
use common::oci_layout::{OciLayout, TarEntry};
use common::process::{output_with_timeout, poll, wait_timeout};
use common::server::add_user;
use common::{require_tool, sha256_digest, DockerCertsGuard, Dockerd, NetNs, Server, Skopeo};
use serde_json::Value;

/// A developer: pushes `team/**`.
const CAROL: (&str, &str) = ("carol", "carol-pw-Q7vX2mK4");
/// A developer and admin: pushes `team/**`, deletes anything.
const DAVE: (&str, &str) = ("dave", "dave-pw-R4kT9zL1");
/// An intern: pushes only `interns/**`.
const ALICE: (&str, &str) = ("alice", "alice-pw-H8nW3cP6");
/// A wrong password (must never reach the audit log either).
const WRONG: &str = "wrong-pw-Z1yU6bE3";

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

// ---------------------------------------------------------------------------------------
// Topology and server

/// The three client networks.
struct Nets {
    vlan: NetNs,
    cluster: NetNs,
    outsider: NetNs,
}

impl Nets {
    fn create() -> Nets {
        Nets {
            vlan: NetNs::create_client("vlan"),
            cluster: NetNs::create_client("cluster"),
            outsider: NetNs::create_client("outsider"),
        }
    }
}

/// The registry with the team's rules for `nets`, its users and its audit file.
struct Team {
    server: Server,
    /// Issues client certificates the registry trusts (`[tls] client_ca`).
    clients: ClientCa,
    dir: tempfile::TempDir,
    port: u16,
}

impl Team {
    /// Writes the configuration (tokens living `ttl_secs`), adds the users with the real
    /// CLI, and starts `imgflow serve` on `0.0.0.0`.
    fn start(nets: &Nets, ttl_secs: u64) -> Team {
        let dir = tempfile::Builder::new()
            .prefix("imgflow-access-")
            .tempdir()
            .expect("creating the config dir");
        let (vlan, cluster) = (&nets.vlan, &nets.cluster);
        let config = format!(
            r#"# Written by tests/access_e2e.rs. Each network names both ends of its veth
# link: the namespace side (curl, skopeo inside it) and the root side (dockerd,
# which connects to that address from the root namespace).
[access]
htpasswd = "htpasswd"
trusted_proxies = []
max_failed_logins = 3

[access.networks]
team_vlan = ["{vn}", "{vh}"]
cluster = ["{cn}", "{ch}"]

[access.groups]
developers = ["carol", "dave"]
interns = ["alice"]
admins = ["dave"]

[[access.rule]]
from = ["team_vlan"]
who = ["*"]
allow = ["pull", "catalog"]
repos = ["**"]

[[access.rule]]
from = ["team_vlan"]
who = ["@developers"]
allow = ["push"]
repos = ["team/**"]

[[access.rule]]
from = ["team_vlan"]
who = ["@interns"]
allow = ["push"]
repos = ["interns/**"]

[[access.rule]]
from = ["team_vlan"]
who = ["@admins"]
allow = ["delete"]
repos = ["**"]

[[access.rule]]
from = ["cluster"]
who = ["anonymous"]
allow = ["pull"]
repos = ["**"]

[access.token]
enabled = true
ttl_secs = {ttl_secs}
key = "token.key"

[audit]
path = "audit.log"

[tls]
client_ca = "clients-ca.crt"
"#,
            vn = vlan.ns_ip(),
            vh = vlan.host_ip(),
            cn = cluster.ns_ip(),
            ch = cluster.host_ip(),
        );
        let config_path = dir.path().join("registry.toml");
        std::fs::write(&config_path, config).expect("writing registry.toml");
        for (user, password) in [CAROL, DAVE, ALICE] {
            add_user(&config_path, user, password);
        }
        let clients = ClientCa::generate(dir.path(), "clients");
        let (data, certs) = (dir.path().join("data"), dir.path().join("certs"));
        let mut builder = Server::builder()
            .without_default_args()
            .data_dir(&data)
            .certs_dir(&certs)
            .arg("--config")
            .arg(&config_path)
            .args(["--listen", "0.0.0.0:0"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--certs-dir")
            .arg(&certs);
        for ns in [&nets.vlan, &nets.cluster, &nets.outsider] {
            builder = builder.args(["--tls-name".to_string(), ns.host_ip().to_string()]);
        }
        let server = builder.start();
        let port = server.addr().port();
        Team {
            server,
            clients,
            dir,
            port,
        }
    }

    /// `IP:PORT` of the registry as seen from `ns` (the root side of its link).
    fn host_port(&self, ns: &NetNs) -> String {
        format!("{}:{}", ns.host_ip(), self.port)
    }

    /// `https://IP:PORT` as seen from `ns`.
    fn url(&self, ns: &NetNs) -> String {
        format!("https://{}", self.host_port(ns))
    }

    fn ca(&self) -> PathBuf {
        self.server.ca_path()
    }

    fn audit_path(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    /// Every audit line so far, parsed.
    fn audit_lines(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.audit_path()).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?}: {e}")))
            .collect()
    }

    /// Waits (the log is written by a background thread) for an audit line with all the
    /// `fields`, and returns it.
    fn audit_line(&self, fields: &[(&str, &str)]) -> Value {
        let found = poll(Duration::from_secs(10), || {
            self.audit_lines()
                .into_iter()
                .find(|l| fields.iter().all(|(k, v)| l[*k] == *v))
        });
        found.unwrap_or_else(|| {
            panic!(
                "no audit line with {fields:?} in:\n{}",
                std::fs::read_to_string(self.audit_path()).unwrap_or_default()
            )
        })
    }
}

// ---------------------------------------------------------------------------------------
// curl

/// A parsed curl response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The first OCI error code of the body.
    fn error_code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Panics unless the status is `status`, showing the response.
    fn expect(self, status: u16, what: &str) -> Reply {
        assert_eq!(
            self.status,
            status,
            "{what}: headers {:?}, body {}",
            self.headers,
            self.text()
        );
        self
    }

    /// Panics unless this is `403 DENIED`.
    fn expect_denied(self, what: &str) -> Reply {
        let r = self.expect(403, what);
        assert_eq!(r.error_code(), "DENIED", "{what}: {}", r.text());
        r
    }
}

/// A curl request: run from `from` (a namespace, or the root namespace when `None`),
/// trusting only the registry CA.
struct Curl<'a> {
    from: Option<&'a NetNs>,
    ca: PathBuf,
    method: &'a str,
    url: String,
    args: Vec<String>,
    /// Request bodies, deleted with the request.
    files: Vec<tempfile::NamedTempFile>,
}

fn curl<'a>(from: Option<&'a NetNs>, team: &Team, method: &'a str, url: String) -> Curl<'a> {
    Curl {
        from,
        ca: team.ca(),
        method,
        url,
        args: Vec::new(),
        files: Vec::new(),
    }
}

impl<'a> Curl<'a> {
    fn user(mut self, (user, password): (&str, &str)) -> Self {
        self.args.push("-u".into());
        self.args.push(format!("{user}:{password}"));
        self
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.args.push("-H".into());
        self.args.push(format!("{name}: {value}"));
        self
    }

    fn bearer(self, token: &str) -> Self {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    /// Sends `body` (through a temporary file: `--data-binary @FILE`).
    fn body(mut self, body: &[u8]) -> Self {
        let file = tempfile::NamedTempFile::new().expect("temp body file");
        std::fs::write(file.path(), body).expect("writing body file");
        self.args.push("--data-binary".into());
        self.args.push(format!("@{}", file.path().display()));
        self.files.push(file);
        self
    }

    fn command(&self) -> Command {
        let curl = require_tool("curl");
        let mut cmd = match self.from {
            Some(ns) => ns.command(&curl),
            None => Command::new(&curl),
        };
        cmd.args([
            "-sS",
            "-i",
            "--max-time",
            "60",
            "--noproxy",
            "*",
            "--cacert",
        ])
        .arg(&self.ca)
        .args(["-X", self.method])
        .args(&self.args)
        .arg(&self.url);
        cmd
    }

    /// Runs curl; `Err` is its output when it failed (no HTTP response).
    fn try_send(self) -> Result<Reply, Output> {
        let out = output_with_timeout(&mut self.command(), Duration::from_secs(90));
        if !out.status.success() {
            return Err(out);
        }
        Ok(parse_reply(&out.stdout))
    }

    fn send(self) -> Reply {
        let what = format!("curl -X {} {}", self.method, self.url);
        self.try_send().unwrap_or_else(|out| {
            panic!(
                "{what} failed with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

/// Splits `curl -i` output into status, headers and body, skipping `1xx` responses.
fn parse_reply(mut out: &[u8]) -> Reply {
    loop {
        let end = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no header block in {}", String::from_utf8_lossy(out)));
        let head = String::from_utf8_lossy(&out[..end]).into_owned();
        let body = &out[end + 4..];
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {head:?}"));
        if (100..200).contains(&status) {
            out = body;
            continue;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        return Reply {
            status,
            headers,
            body: body.to_vec(),
        };
    }
}

/// A tiny image (one layer) pushed blob by blob and then by manifest with curl from
/// `from` as `user`; returns the manifest digest.
fn push_image(
    team: &Team,
    from: &NetNs,
    user: (&str, &str),
    repo: &str,
    tag: &str,
    seed: u8,
) -> String {
    let (manifest, blobs) = tiny_image(seed);
    let base = team.url(from);
    for blob in &blobs {
        let digest = sha256_digest(blob);
        curl(
            Some(from),
            team,
            "POST",
            format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"),
        )
        .user(user)
        .header("Content-Type", "application/octet-stream")
        .body(blob)
        .send()
        .expect(201, &format!("blob upload to {repo}"));
    }
    let digest = sha256_digest(&manifest);
    let r = curl(
        Some(from),
        team,
        "PUT",
        format!("{base}/v2/{repo}/manifests/{tag}"),
    )
    .user(user)
    .header("Content-Type", OCI_MANIFEST)
    .body(&manifest)
    .send()
    .expect(201, &format!("manifest push to {repo}:{tag}"));
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    digest
}

/// The manifest and the blobs (config, layer) of a one-layer image varied by `seed`.
fn tiny_image(seed: u8) -> (Vec<u8>, Vec<Vec<u8>>) {
    let layer = common::oci_layout::gzip(&common::oci_layout::tar(&[TarEntry::file(
        "hello.txt",
        format!("hello {seed}\n").into_bytes(),
        0o644,
    )]));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .expect("config JSON");
    let manifest = common::oci_api::image_manifest(
        (&sha256_digest(&config), config.len()),
        &[(&sha256_digest(&layer), layer.len())],
    );
    (manifest, vec![config, layer])
}

/// `GET /token` from `from`, with `user`'s Basic credentials (or none), for `scopes`.
fn get_token(
    team: &Team,
    from: &NetNs,
    user: Option<(&str, &str)>,
    scopes: &[&str],
) -> (Reply, String) {
    let mut url = format!("{}/token?service=imgflow", team.url(from));
    for s in scopes {
        url.push_str(&format!("&scope={s}"));
    }
    let mut req = curl(Some(from), team, "GET", url);
    if let Some(user) = user {
        req = req.user(user);
    }
    let r = req.send().expect(200, "GET /token");
    let body = r.json();
    let token = body["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {body}"))
        .to_string();
    assert_eq!(
        body["access_token"].as_str(),
        Some(token.as_str()),
        "access_token must equal token: {body}"
    );
    (r, token)
}

/// The claims of a JWT (not verified: the registry does that).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

// ---------------------------------------------------------------------------------------
// docker

/// Runs `docker ARGS` with the client configuration (credentials) in `config`.
fn docker_as(docker: &Dockerd, config: &Path, args: &[&str]) -> Output {
    let mut cmd = docker.command();
    cmd.env("DOCKER_CONFIG", config).args(args);
    output_with_timeout(&mut cmd, Duration::from_secs(300))
}

/// What a finished command printed, stdout then stderr.
fn printed(out: &Output) -> String {
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    String::from_utf8_lossy(stdout).into_owned() + &String::from_utf8_lossy(stderr)
}

/// What `out` printed; panics unless it succeeded.
fn ok(out: &Output, what: &str) -> String {
    let text = printed(out);
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

/// What `out` printed; panics if it succeeded.
fn fails(out: &Output, what: &str) -> String {
    let text = printed(out);
    assert!(!out.status.success(), "{what} succeeded:\n{text}");
    text
}

/// `docker login HOST -u USER --password-stdin` with the client configuration in `config`.
fn docker_login(docker: &Dockerd, config: &Path, host: &str, user: &str, pw: &str) -> Output {
    let mut child = docker
        .command()
        .env("DOCKER_CONFIG", config)
        .args(["login", "-u", user, "--password-stdin", host])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning docker login");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(pw.as_bytes()).expect("writing password");
    drop(stdin);
    let Some(status) = wait_timeout(&mut child, Duration::from_secs(120)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("docker login {host} did not finish within 120 s");
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let _ = child.stdout.take().map(|mut p| p.read_to_end(&mut stdout));
    let _ = child.stderr.take().map(|mut p| p.read_to_end(&mut stderr));
    Output {
        status,
        stdout,
        stderr,
    }
}

/// The manifest digest `docker push` reports.
fn push_digest(output: &str) -> String {
    let start = output
        .find("digest: sha256:")
        .unwrap_or_else(|| panic!("no digest in push output:\n{output}"))
        + "digest: ".len();
    output[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect()
}

/// docker login with right and wrong passwords, a push with tokens by a developer, an
/// anonymous pull from the cluster, a refused push from the cluster, and an intern who
/// may push only under `interns/`.
#[test]
fn docker_login_push_pull_and_denials() {
    let nets = Nets::create();
    let team = Team::start(&nets, 300);
    let vlan = team.host_port(&nets.vlan);
    let cluster = team.host_port(&nets.cluster);
    let _vlan_ca = DockerCertsGuard::install(&vlan, &team.ca());
    let _cluster_ca = DockerCertsGuard::install(&cluster, &team.ca());
    let docker = Dockerd::start();
    let configs = tempfile::tempdir().expect("docker client configs");
    let (carol_cfg, alice_cfg, anon_cfg) = (
        configs.path().join("carol"),
        configs.path().join("alice"),
        configs.path().join("anonymous"),
    );
    for dir in [&carol_cfg, &alice_cfg, &anon_cfg] {
        std::fs::create_dir_all(dir).expect("creating a docker config dir");
    }

    // docker login verifies the password at /token.
    let wrong = docker_login(&docker, &carol_cfg, &vlan, CAROL.0, WRONG);
    let text = fails(&wrong, "docker login with a wrong password");
    assert!(
        text.to_lowercase().contains("unauthorized") || text.contains("incorrect"),
        "{text}"
    );
    let right = docker_login(&docker, &carol_cfg, &vlan, CAROL.0, CAROL.1);
    let text = ok(&right, "docker login with the right password");
    assert!(text.contains("Login Succeeded"), "{text}");

    // A developer pushes under team/ from the VLAN address, with tokens.
    let base = "imgflow-access/busybox:base";
    docker.import_busybox(base);
    let team_tag = format!("{vlan}/team/app:1");
    docker.docker(&["tag", base, &team_tag]);
    let push = ok(
        &docker_as(&docker, &carol_cfg, &["push", &team_tag]),
        "docker push by carol",
    );
    let digest = push_digest(&push);
    team.audit_line(&[
        ("action", "token"),
        ("identity", "carol"),
        ("client", &nets.vlan.host_ip().to_string()),
        ("outcome", "ok"),
    ]);

    // The cluster pulls anonymously, without logging in (an empty client config).
    docker.docker(&["rmi", &team_tag, base]);
    let cluster_tag = format!("{cluster}/team/app:1");
    let pull = ok(
        &docker_as(&docker, &anon_cfg, &["pull", &cluster_tag]),
        "anonymous docker pull from the cluster",
    );
    assert!(pull.contains(&format!("Digest: {digest}")), "{pull}");

    // ... but may not push, not even a tag of what it just pulled.
    let cluster_push_tag = format!("{cluster}/team/from-cluster:1");
    docker.docker(&["tag", &cluster_tag, &cluster_push_tag]);
    let denied = fails(
        &docker_as(&docker, &anon_cfg, &["push", &cluster_push_tag]),
        "docker push from the cluster",
    );
    assert!(denied.to_lowercase().contains("denied"), "{denied}");

    // An intern is signed in but may push only under interns/.
    let text = ok(
        &docker_login(&docker, &alice_cfg, &vlan, ALICE.0, ALICE.1),
        "docker login as alice",
    );
    assert!(text.contains("Login Succeeded"), "{text}");
    let outside = format!("{vlan}/team/x:1");
    let inside = format!("{vlan}/interns/x:1");
    docker.docker(&["tag", &cluster_tag, &outside]);
    docker.docker(&["tag", &cluster_tag, &inside]);
    let denied = fails(
        &docker_as(&docker, &alice_cfg, &["push", &outside]),
        "alice pushing to team/x",
    );
    assert!(denied.to_lowercase().contains("denied"), "{denied}");
    let push = ok(
        &docker_as(&docker, &alice_cfg, &["push", &inside]),
        "alice pushing to interns/x",
    );
    assert_eq!(push_digest(&push), digest, "same image, same digest");

    // Nothing of the refused pushes arrived.
    let catalog = curl(
        Some(&nets.vlan),
        &team,
        "GET",
        format!("{}/v2/_catalog", team.url(&nets.vlan)),
    )
    .user(CAROL)
    .send()
    .expect(200, "catalog")
    .json();
    assert_eq!(
        catalog["repositories"],
        serde_json::json!(["interns/x", "team/app"]),
        "{catalog}"
    );
}

/// What each network may do, with curl from inside each namespace; the outsider's TCP
/// connection is closed before any TLS.
#[test]
fn curl_from_each_network_gets_what_the_rules_say() {
    let nets = Nets::create();
    let team = Team::start(&nets, 300);
    let (vlan, cluster) = (&nets.vlan, &nets.cluster);
    let digest = push_image(&team, vlan, CAROL, "team/app", "1", 1);
    let v = team.url(vlan);
    let c = team.url(cluster);

    // VLAN, anonymous: asked to sign in, with a Bearer challenge naming the token realm.
    let r = curl(Some(vlan), &team, "GET", format!("{v}/v2/"))
        .send()
        .expect(401, "anonymous /v2/ from the VLAN");
    let challenge = r.header("www-authenticate").expect("a challenge");
    assert!(
        challenge.starts_with(&format!(
            "Bearer realm=\"https://{}/token\",service=\"imgflow\"",
            team.host_port(vlan)
        )),
        "{challenge}"
    );
    assert_eq!(r.error_code(), "UNAUTHORIZED");
    let r = curl(
        Some(vlan),
        &team,
        "GET",
        format!("{v}/v2/team/app/manifests/1"),
    )
    .send()
    .expect(401, "anonymous pull from the VLAN");
    let challenge = r.header("www-authenticate").expect("a challenge");
    assert!(
        challenge.contains("scope=\"repository:team/app:pull\""),
        "{challenge}"
    );

    // The same answer for a repository that does not exist: nothing is learnt.
    let absent = curl(
        Some(vlan),
        &team,
        "GET",
        format!("{v}/v2/team/nope/manifests/1"),
    )
    .send()
    .expect(401, "anonymous pull of an absent repository from the VLAN");
    assert_eq!(absent.error_code(), r.error_code());
    // Pushing anonymously: asked to sign in for pull and push.
    let r = curl(
        Some(vlan),
        &team,
        "POST",
        format!("{v}/v2/team/app/blobs/uploads/"),
    )
    .send()
    .expect(401, "anonymous push from the VLAN");
    let challenge = r.header("www-authenticate").expect("a challenge");
    assert!(
        challenge.contains("scope=\"repository:team/app:pull,push\""),
        "{challenge}"
    );

    // VLAN, signed in: pull and catalog for everyone, push by the rules, delete for admins.
    let r = curl(
        Some(vlan),
        &team,
        "GET",
        format!("{v}/v2/team/app/manifests/1"),
    )
    .user(ALICE)
    .header("Accept", OCI_MANIFEST)
    .send()
    .expect(200, "alice pulls from the VLAN");
    assert_eq!(sha256_digest(&r.body), digest);
    let catalog = curl(Some(vlan), &team, "GET", format!("{v}/v2/_catalog"))
        .user(ALICE)
        .send()
        .expect(200, "catalog from the VLAN")
        .json();
    assert_eq!(catalog["repositories"], serde_json::json!(["team/app"]));
    curl(
        Some(vlan),
        &team,
        "POST",
        format!("{v}/v2/team/app/blobs/uploads/"),
    )
    .user(ALICE)
    .send()
    .expect_denied("alice starting an upload to team/app");
    curl(
        Some(vlan),
        &team,
        "DELETE",
        format!("{v}/v2/team/app/manifests/{digest}"),
    )
    .user(CAROL)
    .send()
    .expect_denied("carol (not an admin) deleting");

    // Cluster, anonymous: pulls, and nothing else.
    let r = curl(
        Some(cluster),
        &team,
        "GET",
        format!("{c}/v2/team/app/manifests/1"),
    )
    .header("Accept", OCI_MANIFEST)
    .send()
    .expect(200, "anonymous pull from the cluster");
    assert_eq!(sha256_digest(&r.body), digest);
    let manifest = r.json();
    let layer = manifest["layers"][0]["digest"].as_str().expect("a layer");
    curl(
        Some(cluster),
        &team,
        "GET",
        format!("{c}/v2/team/app/blobs/{layer}"),
    )
    .send()
    .expect(200, "anonymous blob pull from the cluster");
    curl(
        Some(cluster),
        &team,
        "POST",
        format!("{c}/v2/team/app/blobs/uploads/"),
    )
    .send()
    .expect_denied("anonymous push from the cluster");
    curl(
        Some(cluster),
        &team,
        "PUT",
        format!("{c}/v2/team/app/manifests/2"),
    )
    .header("Content-Type", OCI_MANIFEST)
    .body(&tiny_image(1).0)
    .send()
    .expect_denied("anonymous manifest push from the cluster");
    curl(
        Some(cluster),
        &team,
        "DELETE",
        format!("{c}/v2/team/app/manifests/{digest}"),
    )
    .send()
    .expect_denied("anonymous delete from the cluster");
    curl(Some(cluster), &team, "GET", format!("{c}/v2/_catalog"))
        .send()
        .expect_denied("catalog from the cluster");

    // The admin deletes (after the refusals above, the manifest was still there).
    curl(
        Some(vlan),
        &team,
        "DELETE",
        format!("{v}/v2/team/app/manifests/{digest}"),
    )
    .user(DAVE)
    .send()
    .expect(202, "dave (admin) deleting");

    // The outsider's TCP connection is closed at accept, before the TLS handshake: the
    // server sends no byte, so no certificate. The VLAN, for contrast, sees one.
    let outsider = &nets.outsider;
    let seen = s_client(&team, vlan);
    assert!(
        seen.contains("BEGIN CERTIFICATE"),
        "the VLAN must see the certificate:\n{seen}"
    );
    let out = curl(
        Some(outsider),
        &team,
        "GET",
        format!("{}/v2/", team.url(outsider)),
    )
    .try_send();
    let out = match out {
        Ok(reply) => panic!(
            "the outsider got an HTTP answer ({} {}); its connection must be closed before TLS",
            reply.status,
            reply.text()
        ),
        Err(out) => out,
    };
    assert!(
        matches!(out.status.code(), Some(7 | 35 | 52 | 56)),
        "curl from the outsider: want a connection or TLS failure (7, 35, 52 or 56), got {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = s_client(&team, outsider);
    assert!(
        !seen.contains("BEGIN CERTIFICATE")
            && (seen.contains("has read 0 bytes") || seen.contains("connect:errno")),
        "the outsider must get no TLS byte from the server:\n{seen}"
    );
}

/// `openssl s_client` from `ns` to the registry: what it printed (stdout and stderr).
fn s_client(team: &Team, ns: &NetNs) -> String {
    let mut cmd = ns.command(require_tool("openssl"));
    // No SNI: the registry is addressed by IP.
    cmd.args(["s_client", "-noservername", "-connect", &team.host_port(ns)])
        .arg("-CAfile")
        .arg(team.ca());
    printed(&output_with_timeout(&mut cmd, Duration::from_secs(30)))
}

/// `/token` answers `token` and `access_token` granting the intersection of the scopes
/// asked for and the rules; expired, tampered and wrong-scope tokens are refused.
#[test]
fn tokens_are_scoped_short_lived_and_tamper_proof() {
    let nets = Nets::create();
    let team = Team::start(&nets, 300);
    let vlan = &nets.vlan;
    let v = team.url(vlan);
    push_image(&team, vlan, CAROL, "team/a", "1", 1);
    push_image(&team, vlan, CAROL, "team/b", "1", 2);

    let (_, token) = get_token(&team, vlan, Some(CAROL), &["repository:team/a:pull,push"]);
    let c = claims(&token);
    assert_eq!(c["sub"], "carol");
    assert_eq!(
        c["access"],
        serde_json::json!([{"type": "repository", "name": "team/a", "actions": ["pull", "push"]}]),
        "{c}"
    );
    let upload = |repo: &str, token: &str| {
        curl(
            Some(vlan),
            &team,
            "POST",
            format!("{v}/v2/{repo}/blobs/uploads/"),
        )
        .bearer(token)
        .send()
    };
    upload("team/a", &token).expect(202, "push with a team/a token");
    curl(
        Some(vlan),
        &team,
        "GET",
        format!("{v}/v2/team/a/manifests/1"),
    )
    .bearer(&token)
    .send()
    .expect(200, "pull with a team/a token");

    // A token is no ticket out of the rules' networks: replayed from the cluster, where
    // no rule lets carol push, it pushes nothing.
    curl(
        Some(&nets.cluster),
        &team,
        "POST",
        format!("{}/v2/team/a/blobs/uploads/", team.url(&nets.cluster)),
    )
    .bearer(&token)
    .send()
    .expect_denied("a VLAN token replayed from the cluster");

    // Wrong scope: another repository, another action.
    upload("team/b", &token).expect_denied("push to team/b with a team/a token");
    curl(
        Some(vlan),
        &team,
        "GET",
        format!("{v}/v2/team/b/manifests/1"),
    )
    .bearer(&token)
    .send()
    .expect_denied("pull of team/b with a team/a token");
    let (_, pull_only) = get_token(&team, vlan, Some(CAROL), &["repository:team/a:pull"]);
    upload("team/a", &pull_only).expect_denied("push with a pull-only token");
    // An intern asking for push on team/ gets only what the rules allow: pull.
    let (_, intern) = get_token(&team, vlan, Some(ALICE), &["repository:team/a:pull,push"]);
    assert_eq!(
        claims(&intern)["access"][0]["actions"],
        serde_json::json!(["pull"]),
        "{}",
        claims(&intern)
    );
    upload("team/a", &intern).expect_denied("push with alice's token");
    // Anonymous from the VLAN: a token carrying nothing.
    let (_, anon) = get_token(&team, vlan, None, &["repository:team/a:pull"]);
    assert_eq!(claims(&anon)["access"], serde_json::json!([]));

    // Tampered: one character of the payload changed; the signature no longer matches.
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut payload = parts[1].clone().into_bytes();
    let i = payload.len() / 2;
    payload[i] = if payload[i] == b'A' { b'B' } else { b'A' };
    parts[1] = String::from_utf8(payload).expect("ASCII");
    let tampered = parts.join(".");
    let r = upload("team/a", &tampered).expect(401, "push with a tampered token");
    let challenge = r.header("www-authenticate").expect("a challenge");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    // A token signed by another registry's key.
    let other = Team::start(&nets, 300);
    let (_, foreign) = get_token(&other, vlan, Some(CAROL), &["repository:team/a:pull,push"]);
    let r = upload("team/a", &foreign).expect(401, "push with another registry's token");
    assert!(r
        .header("www-authenticate")
        .is_some_and(|c| c.contains("error=\"invalid_token\"")));
    drop(other);

    // Expired: a registry issuing 1-second tokens; verification allows 5 s of skew.
    let short = Team::start(&nets, 1);
    let sv = short.url(vlan);
    let (_, brief) = get_token(&short, vlan, Some(CAROL), &["repository:team/a:pull,push"]);
    let c = claims(&brief);
    assert_eq!(c["exp"].as_u64(), c["iat"].as_u64().map(|t| t + 1), "{c}");
    let short_upload = |token: &str| {
        curl(
            Some(vlan),
            &short,
            "POST",
            format!("{sv}/v2/team/a/blobs/uploads/"),
        )
        .bearer(token)
        .send()
    };
    short_upload(&brief).expect(202, "push with a fresh token");
    std::thread::sleep(Duration::from_secs(8));
    let r = short_upload(&brief).expect(401, "push with an expired token");
    let challenge = r.header("www-authenticate").expect("a challenge");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

/// `X-Forwarded-For` from a peer that is not a trusted proxy is ignored: the cluster
/// claiming to forward for a VLAN address is still the cluster.
#[test]
fn spoofed_forwarded_for_is_ignored() {
    let nets = Nets::create();
    let team = Team::start(&nets, 300);
    let (vlan, cluster) = (&nets.vlan, &nets.cluster);
    let (v, c) = (team.url(vlan), team.url(cluster));
    push_image(&team, vlan, CAROL, "team/app", "1", 1);
    let vlan_ip = vlan.ns_ip().to_string();
    let cluster_ip = cluster.ns_ip().to_string();

    // carol's credentials are good, but from the cluster they grant nothing more than
    // anonymous has there: pull.
    curl(
        Some(cluster),
        &team,
        "POST",
        format!("{c}/v2/team/app/blobs/uploads/"),
    )
    .user(CAROL)
    .header("X-Forwarded-For", &vlan_ip)
    .send()
    .expect_denied("carol pushing from the cluster, claiming the VLAN");
    let deny = team.audit_line(&[
        ("action", "deny"),
        ("identity", "carol"),
        ("repository", "team/app"),
    ]);
    assert_eq!(deny["client"], cluster_ip, "{deny}");
    let (_, token) = get_token(&team, cluster, Some(CAROL), &["repository:team/app:push"]);
    assert_eq!(claims(&token)["access"], serde_json::json!([]));

    // The other way: the VLAN claiming to forward for the cluster gets no anonymous pull.
    curl(
        Some(vlan),
        &team,
        "GET",
        format!("{v}/v2/team/app/manifests/1"),
    )
    .header("X-Forwarded-For", &cluster_ip)
    .send()
    .expect(401, "anonymous VLAN pull claiming the cluster");

    // Control: from the VLAN itself the same push starts.
    curl(
        Some(vlan),
        &team,
        "POST",
        format!("{v}/v2/team/app/blobs/uploads/"),
    )
    .user(CAROL)
    .header("X-Forwarded-For", &cluster_ip)
    .send()
    .expect(202, "carol pushing from the VLAN");
}

/// Three wrong passwords from one address, and the fourth attempt from it, even with the
/// right password, gets 429 with Retry-After; another address is unaffected.
#[test]
fn failed_logins_are_rate_limited_per_address() {
    let nets = Nets::create();
    let team = Team::start(&nets, 300);
    let vlan = &nets.vlan;
    let v = team.url(vlan);
    let base = || curl(Some(vlan), &team, "GET", format!("{v}/v2/"));
    base().user(CAROL).send().expect(200, "right password");
    for i in 1..=3 {
        let r = base()
            .user((CAROL.0, WRONG))
            .send()
            .expect(401, &format!("wrong password #{i}"));
        assert_eq!(r.error_code(), "UNAUTHORIZED");
    }
    for attempt in [base().user(CAROL), base().user((CAROL.0, WRONG))] {
        let r = attempt.send().expect(429, "a sign-in after 3 failures");
        assert_eq!(r.error_code(), "TOOMANYREQUESTS");
        let retry: u64 = r
            .header("retry-after")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("Retry-After: {:?}", r.headers));
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
    }
    let r = curl(
        Some(vlan),
        &team,
        "GET",
        format!("{v}/token?service=imgflow"),
    )
    .user(CAROL)
    .send()
    .expect(429, "/token after 3 failures");
    assert!(r.header("retry-after").is_some());
    team.audit_line(&[
        ("action", "login"),
        ("outcome", "denied"),
        ("client", &vlan.ns_ip().to_string()),
    ]);

    // Another address of the same VLAN (dockerd's side of the link, from the root
    // namespace) still signs in.
    curl(None, &team, "GET", format!("{v}/v2/"))
        .user(CAROL)
        .send()
        .expect(200, "the same user from another address");
    curl(None, &team, "GET", format!("{v}/token?service=imgflow"))
        .user(CAROL)
        .send()
        .expect(200, "/token from another address");
}

/// skopeo copies in and inspects with `--creds` from the VLAN; the cluster inspects and
/// copies out anonymously but may not push.
#[test]
fn skopeo_from_the_vlan_and_the_cluster() {
    let nets = Nets::create();
    let team = Team::start(&nets, 300);
    let (vlan, cluster) = (&nets.vlan, &nets.cluster);
    let skopeo = Skopeo::new();
    let certs = skopeo.cert_dir(&team.ca());
    let certs = certs.to_string_lossy().into_owned();
    let work = skopeo.work_dir();
    let mut layout = OciLayout::create(&work.join("src"));
    let image = layout.add_image(
        "amd64",
        &[vec![TarEntry::file(
            "opt/hello.txt",
            b"hello from skopeo\n".to_vec(),
            0o644,
        )]],
        "access e2e",
    );
    layout.tag("v1", &image.manifest);
    let src = format!("oci:{}:v1", work.join("src").display());
    let at_vlan = format!("docker://{}/team/skopeo:1", team.host_port(vlan));
    let at_cluster = format!("docker://{}/team/skopeo:1", team.host_port(cluster));
    let carol = format!("{}:{}", CAROL.0, CAROL.1);

    let run = |ns: &NetNs, args: &[&str]| skopeo.output_in(ns, args);
    ok(
        &run(
            vlan,
            &[
                "copy",
                "--dest-creds",
                &carol,
                "--dest-cert-dir",
                &certs,
                &src,
                &at_vlan,
            ],
        ),
        "skopeo copy to the VLAN address",
    );
    let inspect = |ns: &NetNs, extra: &[&str], target: &str| {
        let mut args = vec!["inspect", "--raw", "--cert-dir", &certs];
        args.extend_from_slice(extra);
        args.push(target);
        run(ns, &args)
    };
    let out = inspect(vlan, &["--creds", &carol], &at_vlan);
    ok(&out, "skopeo inspect --creds from the VLAN");
    assert_eq!(sha256_digest(&out.stdout), image.manifest.digest);
    fails(
        &inspect(vlan, &[], &at_vlan),
        "anonymous skopeo inspect from the VLAN",
    );

    let out = inspect(cluster, &[], &at_cluster);
    ok(&out, "anonymous skopeo inspect from the cluster");
    assert_eq!(sha256_digest(&out.stdout), image.manifest.digest);
    let dest = format!("oci:{}:copy", work.join("pulled").display());
    ok(
        &run(
            cluster,
            &["copy", "--src-cert-dir", &certs, &at_cluster, &dest],
        ),
        "anonymous skopeo copy out of the cluster address",
    );
    let denied = fails(
        &run(
            cluster,
            &[
                "copy",
                "--dest-cert-dir",
                &certs,
                &src,
                &format!("docker://{}/team/from-cluster:1", team.host_port(cluster)),
            ],
        ),
        "skopeo copy to the cluster address",
    );
    assert!(denied.to_lowercase().contains("denied"), "{denied}");
}

/// A client certificate signed by `[tls] client_ca` signs its Common Name in: skopeo with
/// node1's certificate and no password pulls from the VLAN, where anonymous gets nothing,
/// and is node1 (not anonymous) when it tries to push from the cluster.
#[test]
fn skopeo_with_a_client_certificate_needs_no_password() {
    let nets = Nets::create();
    let team = Team::start(&nets, 300);
    let (vlan, cluster) = (&nets.vlan, &nets.cluster);
    let digest = push_image(&team, vlan, CAROL, "team/app", "1", 3);
    let skopeo = Skopeo::new();
    // skopeo's --cert-dir: *.crt are CAs, NAME.cert with NAME.key the client pair.
    let plain = skopeo.cert_dir(&team.ca());
    let with_cert = skopeo.cert_dir(&team.ca());
    let node1 = team.clients.issue("node1");
    std::fs::copy(&node1.cert, with_cert.join("node1.cert")).expect("copying the cert");
    std::fs::copy(&node1.key, with_cert.join("node1.key")).expect("copying the key");
    let (plain, with_cert) = (
        plain.to_string_lossy().into_owned(),
        with_cert.to_string_lossy().into_owned(),
    );
    let at = |ns: &NetNs, repo: &str| format!("docker://{}/{repo}", team.host_port(ns));

    let vlan_app = at(vlan, "team/app:1");
    fails(
        &skopeo.output_in(vlan, &["inspect", "--raw", "--cert-dir", &plain, &vlan_app]),
        "anonymous skopeo inspect from the VLAN",
    );
    let out = skopeo.output_in(
        vlan,
        &["inspect", "--raw", "--cert-dir", &with_cert, &vlan_app],
    );
    ok(
        &out,
        "skopeo inspect from the VLAN with node1's certificate",
    );
    assert_eq!(sha256_digest(&out.stdout), digest);

    let denied = fails(
        &skopeo.output_in(
            cluster,
            &[
                "copy",
                "--src-cert-dir",
                &plain,
                "--dest-cert-dir",
                &with_cert,
                &at(cluster, "team/app:1"),
                &at(cluster, "team/node:1"),
            ],
        ),
        "skopeo push from the cluster with node1's certificate",
    );
    assert!(denied.to_lowercase().contains("denied"), "{denied}");
    team.audit_line(&[
        ("action", "deny"),
        ("identity", "node1"),
        ("client", &cluster.ns_ip().to_string()),
        ("repository", "team/node"),
    ]);
}

/// One audit line for each login (ok, failed), token, push, tag, delete and denial, with
/// every field; never a password or a token.
#[test]
fn audit_lines_for_each_event_and_no_secrets() {
    let nets = Nets::create();
    let team = Team::start(&nets, 300);
    let (vlan, cluster) = (&nets.vlan, &nets.cluster);
    let (v, c) = (team.url(vlan), team.url(cluster));
    let vlan_ip = vlan.ns_ip().to_string();

    let (_, token) = get_token(&team, vlan, Some(CAROL), &["repository:team/audit:pull"]);
    curl(Some(vlan), &team, "GET", format!("{v}/v2/"))
        .user((CAROL.0, WRONG))
        .send()
        .expect(401, "wrong password");
    let digest = push_image(&team, vlan, DAVE, "team/audit", "v1", 7);
    curl(
        Some(cluster),
        &team,
        "DELETE",
        format!("{c}/v2/team/audit/manifests/v1"),
    )
    .send()
    .expect_denied("delete from the cluster");
    curl(
        Some(vlan),
        &team,
        "DELETE",
        format!("{v}/v2/team/audit/manifests/{digest}"),
    )
    .user(DAVE)
    .send()
    .expect(202, "delete by the admin");

    let expect = |fields: &[(&str, &str)]| {
        let line = team.audit_line(fields);
        for key in [
            "time",
            "client",
            "identity",
            "method",
            "action",
            "repository",
            "reference",
            "outcome",
        ] {
            assert!(line.get(key).is_some(), "no {key} in {line}");
        }
        let time = line["time"].as_str().unwrap_or_default();
        assert!(
            time.len() >= 20 && time.ends_with('Z') && time.contains('T'),
            "time {time:?} is not RFC 3339 UTC"
        );
        line
    };
    let ip = vlan_ip.as_str();
    expect(&[
        ("action", "login"),
        ("outcome", "ok"),
        ("identity", "carol"),
        ("client", ip),
        ("method", "GET"),
    ]);
    expect(&[
        ("action", "login"),
        ("outcome", "failed"),
        ("identity", "carol"),
        ("client", ip),
    ]);
    let t = expect(&[
        ("action", "token"),
        ("outcome", "ok"),
        ("identity", "carol"),
        ("client", ip),
    ]);
    assert!(
        t["detail"]
            .as_str()
            .is_some_and(|d| d.contains("team/audit")),
        "{t}"
    );
    expect(&[
        ("action", "push"),
        ("outcome", "ok"),
        ("identity", "dave"),
        ("method", "PUT"),
        ("repository", "team/audit"),
        ("reference", &digest),
    ]);
    expect(&[
        ("action", "tag"),
        ("outcome", "ok"),
        ("identity", "dave"),
        ("repository", "team/audit"),
        ("reference", "v1"),
    ]);
    expect(&[
        ("action", "delete"),
        ("outcome", "ok"),
        ("identity", "dave"),
        ("method", "DELETE"),
        ("repository", "team/audit"),
        ("reference", &digest),
    ]);
    expect(&[
        ("action", "deny"),
        ("outcome", "denied"),
        ("identity", "anonymous"),
        ("client", &cluster.ns_ip().to_string()),
        ("method", "DELETE"),
        ("repository", "team/audit"),
    ]);

    let log = std::fs::read_to_string(team.audit_path()).expect("reading the audit log");
    let signature = token.rsplit('.').next().expect("a JWT signature");
    for secret in [CAROL.1, DAVE.1, ALICE.1, WRONG, &token, signature] {
        assert!(
            !log.contains(secret),
            "the audit log contains a secret ({}...):\n{log}",
            &secret[..6]
        );
    }
    // Basic credentials as sent on the wire must not appear either.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", DAVE.0, DAVE.1));
    assert!(!log.contains(&basic), "{log}");
}
