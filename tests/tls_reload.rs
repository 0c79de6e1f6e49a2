//! Certificate rotation while the server runs: a 1 GiB pull started before a new server
//! certificate (signed by another CA) is written completes intact, new connections see
//! the new certificate, and a broken pair is refused (logged) while the old one serves on.
//! Real clients: curl for the big transfers, reqwest (rustls) for certificate checks.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::process::no_proxy_env;
use common::{https_get, pseudo_random_bytes, require_tool, Server, TestCa};
use sha2::{Digest, Sha256};

const BLOB_BYTES: u64 = 1 << 30;
const CHUNK: usize = 8 << 20;
/// The pull's rate cap: slow enough that the rotation happens while it runs.
const PULL_RATE: &str = "48M";
/// How long the server may take to notice new files (it polls every 2 s).
const RELOAD_WAIT: Duration = Duration::from_secs(20);

/// Two certificate directories (CA, server certificate and key each) for 127.0.0.1.
fn two_pairs(root: &Path) -> (TestCa, TestCa) {
    let names = ["127.0.0.1", "localhost"];
    (
        TestCa::generate(&root.join("a"), &names),
        TestCa::generate(&root.join("b"), &names),
    )
}

/// Replace `server.crt` and `server.key` in `dir` with `cert` and `key`, each by rename.
fn install_pair(dir: &Path, cert: &Path, key: &Path) {
    for (from, name) in [(cert, "server.crt"), (key, "server.key")] {
        let tmp = dir.join(format!("{name}.new"));
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

/// Writes 1 GiB of pseudo-random bytes to `path`; returns its digest.
fn write_big_file(path: &Path) -> String {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hash = Sha256::new();
    let mut written = 0u64;
    let mut seed = 7;
    while written < BLOB_BYTES {
        let chunk = pseudo_random_bytes(CHUNK, seed);
        hash.update(&chunk);
        file.write_all(&chunk).unwrap();
        written += chunk.len() as u64;
        seed += 1;
    }
    file.flush().unwrap();
    format!("sha256:{}", hex::encode(hash.finalize()))
}

/// Size and digest of the file at `path`.
fn file_digest(path: &Path) -> (u64, String) {
    let mut file = std::fs::File::open(path).unwrap();
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        size += n as u64;
    }
    (size, format!("sha256:{}", hex::encode(hash.finalize())))
}

fn curl(ca: &Path) -> Command {
    let mut cmd = Command::new(require_tool("curl"));
    no_proxy_env(&mut cmd);
    cmd.args(["-sS", "--fail", "--noproxy", "*", "--cacert"])
        .arg(ca);
    cmd
}

/// Upload `file` as a blob of `repo` (POST, then one PUT streaming the file).
fn push_file(server: &Server, ca: &Path, repo: &str, file: &Path, digest: &str) {
    let out = curl(ca)
        .args(["-X", "POST", "-o", "/dev/null", "-D", "-"])
        .arg(format!("{}/v2/{repo}/blobs/uploads/", server.url()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "POST: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    let location = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("location")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no Location in {head}"));
    let location = if location.starts_with('/') {
        format!("{}{location}", server.url())
    } else {
        location
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let out = curl(ca)
        .args(["--max-time", "600", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["-H", "Content-Type: application/octet-stream", "-T"])
        .arg(file)
        .arg(format!("{location}{sep}digest={digest}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "PUT: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "201");
}

/// Polls until `f` holds, for at most [`RELOAD_WAIT`].
fn wait_until(what: &str, server: &Server, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < RELOAD_WAIT,
            "{what}: not within {RELOAD_WAIT:?}; log:\n{}",
            common::tail_file(server.log_path(), 40)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn verifies_with(server: &Server, ca: &Path) -> bool {
    https_get(&format!("{}/v2/", server.url()), ca).is_ok_and(|r| r.status == 200)
}

/// Kills the pull when the test fails early.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_pull_in_flight_survives_rotation_and_new_connections_get_the_new_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_pairs(tmp.path());
    let server = Server::builder().certs_dir(&a.dir).start();
    assert!(verifies_with(&server, &a.ca_path()));

    let blob = tmp.path().join("blob");
    let digest = write_big_file(&blob);
    push_file(&server, &a.ca_path(), "rotation/big", &blob, &digest);
    std::fs::remove_file(&blob).unwrap();

    // The pull starts on a connection verified with the old CA, at a capped rate.
    let out = tmp.path().join("pulled");
    let pull = curl(&a.ca_path())
        .args(["--max-time", "600", "--limit-rate", PULL_RATE, "-o"])
        .arg(&out)
        .arg(format!("{}/v2/rotation/big/blobs/{digest}", server.url()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pull = KillOnDrop(pull);
    wait_until("the pull started", &server, || {
        std::fs::metadata(&out).is_ok_and(|m| m.len() >= 32 << 20)
    });

    install_pair(&a.dir, &b.cert_path(), &b.key_path());
    wait_until("new connections verify with the new CA", &server, || {
        verifies_with(&server, &b.ca_path())
    });
    assert!(
        !verifies_with(&server, &a.ca_path()),
        "a new connection must no longer present the old certificate"
    );
    assert!(
        pull.0.try_wait().unwrap().is_none(),
        "the pull ended before the rotation; it proves nothing (raise BLOB_BYTES or lower PULL_RATE)"
    );
    assert!(server.log().contains("reloaded TLS certificate"));

    let status = pull.0.wait().unwrap();
    let mut stderr = String::new();
    if let Some(mut e) = pull.0.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(
        status.success(),
        "the pull failed after the rotation: {stderr}"
    );
    assert_eq!(file_digest(&out), (BLOB_BYTES, digest), "pulled bytes");
}

#[test]
fn a_broken_pair_is_refused_and_the_old_certificate_serves_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_pairs(tmp.path());
    let server = Server::builder().certs_dir(&a.dir).start();
    assert!(verifies_with(&server, &a.ca_path()));

    // The new certificate with the old key: they do not belong together.
    install_pair(&a.dir, &b.cert_path(), &a.key_path());
    wait_until("the refusal is logged", &server, || {
        server
            .log()
            .contains("refused the changed TLS certificate and key")
    });
    assert!(
        verifies_with(&server, &a.ca_path()),
        "the old pair must serve on"
    );
    assert!(!verifies_with(&server, &b.ca_path()));
    assert!(!server.log().contains("reloaded TLS certificate"));

    // Unparsable files: refused as well.
    let garbage = tmp.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnope\n").unwrap();
    install_pair(&a.dir, &garbage, &garbage);
    wait_until("the second refusal is logged", &server, || {
        server
            .log()
            .matches("refused the changed TLS certificate and key")
            .count()
            >= 2
    });
    assert!(
        verifies_with(&server, &a.ca_path()),
        "the old pair must serve on"
    );
}
