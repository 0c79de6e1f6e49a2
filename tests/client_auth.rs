//! The OCI client signing in to a real `imgflow serve` in token mode, on 127.0.0.1 only:
//! anonymous pulls allowed and denied by the rules, a push with user and password
//! through `/token`, a wrong password, a token reused until it expires (counted in the
//! audit log), a cross-repository mount whose token covers both repositories, and
//! credentials taken from a `config.json` (an `auths` entry and a credential helper).
//!
//! Rules: anonymous pulls `public/**`; anyone signed in pulls everything; carol pushes
//! `team/**` and `public/**`; bob pushes nothing.

mod common;

use base64::Engine;
use bytes::Bytes;
use common::server::add_user;
use common::Server;
use imgflow::client::{
    AuthFailure, Client, ClientError, CredentialLookup, Credentials, MountOutcome, Scope, Scopes,
};
use imgflow::oci::{self, Digest, Reference, RepoName};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

const CAROL: (&str, &str) = ("carol", "carol-pw-5tGq8wLm");
const BOB: (&str, &str) = ("bob", "bob-pw-J2cV7nXe");

/// The registry, its configuration directory and audit log.
struct Registry {
    server: Server,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Start `imgflow serve` with tokens living `ttl_secs`.
    fn start(ttl_secs: u64) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("imgflow-client-auth-")
            .tempdir()
            .expect("temp dir");
        let config = format!(
            r#"# Written by tests/client_auth.rs
[access]
htpasswd = "htpasswd"

[access.networks]
local = ["127.0.0.1/32"]

[[access.rule]]
from = ["local"]
who = ["anonymous"]
allow = ["pull"]
repos = ["public/**"]

[[access.rule]]
from = ["local"]
who = ["*"]
allow = ["pull"]
repos = ["**"]

[[access.rule]]
from = ["local"]
who = ["carol"]
allow = ["push"]
repos = ["team/**", "public/**"]

[access.token]
enabled = true
ttl_secs = {ttl_secs}
key = "token.key"

[audit]
path = "audit.log"
"#
        );
        let config_path = dir.path().join("registry.toml");
        std::fs::write(&config_path, config).expect("writing registry.toml");
        for (user, password) in [CAROL, BOB] {
            add_user(&config_path, user, password);
        }
        let server = Server::builder().arg("--config").arg(&config_path).start();
        Registry { server, dir }
    }

    fn host(&self) -> String {
        self.server.host_port()
    }

    fn client(&self, credentials: Option<Credentials>) -> Client {
        Client::builder(self.server.url())
            .ca_file(self.server.ca_path())
            .credentials(credentials)
            .build()
            .expect("client")
    }

    /// The audit lines of issued tokens, as JSON.
    fn tokens_issued(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["action"] == "token")
            .collect()
    }
}

fn carol() -> Option<Credentials> {
    Some(Credentials::basic(CAROL.0, CAROL.1))
}

fn repo(name: &str) -> RepoName {
    name.parse().expect("repository name")
}

fn tag(name: &str) -> Reference {
    name.parse().expect("tag")
}

fn failure(err: &ClientError) -> &AuthFailure {
    err.auth_failure()
        .unwrap_or_else(|| panic!("expected an Auth error, got {err}"))
}

/// Push a one-layer image to `repo:1.0` as publish does (signing in ahead for the
/// repository); returns the layer's digest.
async fn push_image(client: &Client, repo: &RepoName, seed: &str) -> Digest {
    let push = Scopes::new().with(Scope::repository(repo.as_str(), &["pull", "push"]));
    client
        .authorize(&push)
        .await
        .expect("signing in for the push");
    let config = Bytes::from(format!(
        r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#
    ));
    let layer = Bytes::from(format!("layer of {seed}").repeat(100));
    let (config_digest, layer_digest) = (Digest::sha256(&config), Digest::sha256(&layer));
    for (digest, data) in [(&config_digest, &config), (&layer_digest, &layer)] {
        if client
            .blob_size(repo, digest)
            .await
            .expect("HEAD")
            .is_none()
        {
            client
                .push_blob(repo, digest, data.clone())
                .await
                .expect("blob push");
        }
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "config": { "mediaType": oci::OCI_CONFIG, "digest": config_digest, "size": config.len() },
        "layers": [ { "mediaType": oci::OCI_LAYER_TAR_GZIP, "digest": layer_digest, "size": layer.len() } ]
    });
    client
        .put_manifest(
            repo,
            &tag("1.0"),
            oci::OCI_MANIFEST,
            serde_json::to_vec(&manifest).unwrap().into(),
        )
        .await
        .expect("manifest push");
    layer_digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_through_the_token_flow() {
    let reg = Registry::start(300);
    let carol_client = reg.client(carol());

    // A whole push (HEADs, uploads, manifest) on one repository takes one token.
    push_image(&carol_client, &repo("team/app"), "app").await;
    let issued = reg.tokens_issued();
    assert_eq!(issued.len(), 1, "one token for the whole push: {issued:?}");
    assert_eq!(issued[0]["identity"], "carol");
    assert!(
        issued[0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("repository:team/app:pull,push"),
        "{issued:?}"
    );
    push_image(&carol_client, &repo("public/tool"), "tool").await;
    // Pulls on the same repositories reuse the tokens.
    carol_client
        .get_manifest(&repo("team/app"), &tag("1.0"), &[])
        .await
        .expect("carol pulls");
    assert_eq!(reg.tokens_issued().len(), 2);

    // Anonymous: public/** is pulled without a token; team/** needs signing in.
    let anonymous = reg.client(None);
    anonymous
        .get_manifest(&repo("public/tool"), &tag("1.0"), &[])
        .await
        .expect("anonymous pull of public/tool");
    let err = anonymous
        .get_manifest(&repo("team/app"), &tag("1.0"), &[])
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(401), "{err}");
    assert!(
        matches!(failure(&err), AuthFailure::SignInRequired { .. }),
        "anonymous may not pull team/app"
    );
    // An anonymous push is refused, clearly.
    let err = anonymous
        .start_upload(&repo("public/tool"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sign-in required"), "{err}");

    // Bob is signed in but may not push: denied, naming him.
    let bob = reg.client(Some(Credentials::basic(BOB.0, BOB.1)));
    bob.get_manifest(&repo("team/app"), &tag("1.0"), &[])
        .await
        .expect("bob pulls");
    let err = bob.start_upload(&repo("team/app")).await.unwrap_err();
    let text = err.to_string();
    match failure(&err) {
        AuthFailure::Denied { identity, .. } | AuthFailure::Unauthorized { identity, .. } => {
            assert_eq!(identity, "bob", "{text}")
        }
        other => panic!("bob's push: {other}"),
    }

    // A wrong password is named as such.
    let wrong = reg.client(Some(Credentials::basic(CAROL.0, "not-her-password")));
    let err = wrong
        .get_manifest(&repo("team/app"), &tag("1.0"), &[])
        .await
        .unwrap_err();
    let text = err.to_string();
    match failure(&err) {
        AuthFailure::WrongCredentials { user, at } => {
            assert_eq!(user, "carol");
            assert!(at.contains("/token"), "{text}");
        }
        other => panic!("wrong password: {other}"),
    }
    assert!(text.contains("wrong credentials"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_repository_mount_with_one_token_for_both() {
    let reg = Registry::start(300);
    let layer = push_image(&reg.client(carol()), &repo("team/base"), "base").await;
    // A fresh client: its first request is the mount, its one token covers both.
    let before = reg.tokens_issued().len();
    let client = reg.client(carol());
    let outcome = client
        .mount_blob(&repo("team/app"), &layer, Some(&repo("team/base")))
        .await
        .expect("mount");
    assert!(
        matches!(outcome, MountOutcome::Mounted(_)),
        "mounted, not an upload: {outcome:?}"
    );
    let issued = reg.tokens_issued();
    assert_eq!(issued.len(), before + 1);
    let detail = issued.last().unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.contains("repository:team/app:pull,push")
            && detail.contains("repository:team/base:pull"),
        "{detail}"
    );
    assert!(client
        .blob_size(&repo("team/app"), &layer)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_reused_until_they_expire() {
    let reg = Registry::start(2);
    let client = reg.client(carol());
    let r = repo("team/app");
    let d = Digest::sha256(b"absent");
    client.blob_size(&r, &d).await.expect("HEAD");
    client.blob_size(&r, &d).await.expect("HEAD");
    client.blob_size(&r, &d).await.expect("HEAD");
    assert_eq!(reg.tokens_issued().len(), 1, "reused while valid");
    // Usable for 1.8 s of its 2 s.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    client.blob_size(&r, &d).await.expect("HEAD");
    assert_eq!(reg.tokens_issued().len(), 2, "renewed after expiry");
}

/// A Docker configuration directory with `config.json` and a `bin/` for helpers.
fn docker_config(config: &serde_json::Value) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("config.json"), config.to_string()).expect("config.json");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin dir");
    (dir, bin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_docker_config() {
    let reg = Registry::start(300);
    let host = reg.host();
    let ca = reg.server.ca_path();

    // An `auths` entry under the URL form docker login may write.
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", CAROL.0, CAROL.1));
    let (dir, _) = docker_config(&serde_json::json!({
        "auths": { format!("https://{host}/v2/"): { "auth": auth } }
    }));
    let client = Client::docker_builder(&host, &CredentialLookup::new(dir.path()), Some(&ca))
        .expect("builder")
        .build()
        .expect("client");
    push_image(&client, &repo("team/from-auths"), "auths").await;

    // A credential helper for this registry only, found in an explicit search path.
    let (dir, bin) = docker_config(&serde_json::json!({
        "credHelpers": { &host: "imgflowtest" },
        "auths": { &host: {} }
    }));
    let helper = bin.join("docker-credential-imgflowtest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread host\n[ \"$host\" = \"{host}\" ] || {{ echo \"credentials not found in native keychain\"; exit 1; }}\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{}\",\"Secret\":\"{}\"}}' \"$host\"\n",
            CAROL.0, CAROL.1
        ),
    )
    .expect("helper");
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let lookup = CredentialLookup::new(dir.path()).helper_path(&bin);
    assert_eq!(
        lookup.find(&host).expect("helper answer"),
        Some(Credentials::basic(CAROL.0, CAROL.1))
    );
    let client = Client::docker_builder(&host, &lookup, Some(&ca))
        .expect("builder")
        .build()
        .expect("client");
    push_image(&client, &repo("team/from-helper"), "helper").await;

    // The helper missing from the search path is an error naming it.
    let err = Client::docker_builder(
        &host,
        &CredentialLookup::new(dir.path()).helper_path("/nonexistent"),
        Some(&ca),
    )
    .map(|_| ())
    .unwrap_err();
    assert!(
        err.to_string().contains("docker-credential-imgflowtest"),
        "{err}"
    );
}
