//! Cross-repository mounts under access rules: a blob is mounted only from a repository
//! the caller may pull; otherwise the registry starts an ordinary upload (202), so a
//! caller cannot borrow, or learn of, a blob it could not read.
//!
//! Two loopback source addresses stand for two teams (curl `--interface`): 127.0.0.2
//! may use `secret/**`, 127.0.0.3 only `open/**`.

mod common;

use common::Server;
use std::process::Command;

struct Curl<'a> {
    server: &'a Server,
    from: &'static str,
}

impl Curl<'_> {
    /// `curl -X METHOD` from this client's address; returns (status, headers).
    fn call(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, String) {
        let dir = tempfile::tempdir().unwrap();
        let headers = dir.path().join("h");
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(self.server.ca_path())
            .args(["--interface", self.from, "-X", method, "-D"])
            .arg(&headers);
        if let Some(b) = body {
            let f = dir.path().join("body");
            std::fs::write(&f, b).unwrap();
            cmd.arg("-H")
                .arg("Content-Type: application/octet-stream")
                .arg("--data-binary")
                .arg(format!("@{}", f.display()));
        }
        let out = cmd
            .arg(format!("{}{path}", self.server.url()))
            .output()
            .unwrap();
        let code = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        (code, std::fs::read_to_string(headers).unwrap_or_default())
    }
}

fn digest(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

#[test]
fn mounts_take_blobs_only_from_repositories_the_caller_may_pull() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("registry.toml");
    std::fs::write(
        &config,
        r#"
[audit]
path = ""
[access.networks]
team_a = ["127.0.0.2/32"]
team_b = ["127.0.0.3/32"]
[[access.rule]]
from = ["team_a"]
allow = ["pull", "push"]
repos = ["secret/**"]
[[access.rule]]
from = ["team_b"]
allow = ["pull", "push"]
repos = ["open/**"]
"#,
    )
    .unwrap();
    let server = Server::builder().arg("--config").arg(&config).start();
    let a = Curl {
        server: &server,
        from: "127.0.0.2",
    };
    let b = Curl {
        server: &server,
        from: "127.0.0.3",
    };
    let blob = b"only team a may read this".as_slice();
    let d = digest(blob);
    let (code, _) = a.call(
        "POST",
        &format!("/v2/secret/app/blobs/uploads/?digest={d}"),
        Some(blob),
    );
    assert_eq!(code, 201, "team a pushes its blob");

    // Team b names the source repository, or none: either way an upload starts instead.
    for query in [format!("mount={d}&from=secret/app"), format!("mount={d}")] {
        let (code, headers) = b.call("POST", &format!("/v2/open/x/blobs/uploads/?{query}"), None);
        assert_eq!(
            code, 202,
            "{query}: an ordinary upload, not a mount\n{headers}"
        );
        assert!(
            headers
                .to_ascii_lowercase()
                .contains("location: /v2/open/x/blobs/uploads/"),
            "{headers}"
        );
        let (code, _) = b.call("HEAD", &format!("/v2/open/x/blobs/{d}"), None);
        assert_eq!(code, 404, "{query}: the blob was not linked into open/x");
    }
    // Team b cannot read the source either (the mount was not a way around that).
    let (code, _) = b.call("HEAD", &format!("/v2/secret/app/blobs/{d}"), None);
    assert_eq!(code, 403);

    // Team a may pull secret/app: its mounts work, with and without `from`.
    for (repo, query) in [
        ("secret/b", format!("mount={d}&from=secret/app")),
        ("secret/c", format!("mount={d}")),
    ] {
        let (code, headers) = a.call("POST", &format!("/v2/{repo}/blobs/uploads/?{query}"), None);
        assert_eq!(code, 201, "{repo}: mounted\n{headers}");
        let (code, _) = a.call("HEAD", &format!("/v2/{repo}/blobs/{d}"), None);
        assert_eq!(code, 200);
    }
}
