//! A push-and-pull load generator: many independent clients (each with its own
//! connection, half over HTTP/2 and half over HTTP/1.1) loop over "push a blob, push a
//! manifest naming it, pull the manifest, pull the blob" against any registry for a set
//! time. Used by `tests/resources.rs` to bound the server's memory and by
//! `bench/rss.sh` (through that test binary) for the side-by-side RSS benchmark.

use std::path::Path;
use std::time::{Duration, Instant};

use super::oci_api::{image_manifest, OCI_MANIFEST};

/// What to run.
#[derive(Debug, Clone)]
pub struct Load {
    /// `https://HOST:PORT`.
    pub base: String,
    /// Concurrent clients, each with its own connection.
    pub clients: usize,
    /// How long the clients keep going (a round in progress is finished).
    pub duration: Duration,
    /// Size of each client's blob.
    pub blob_size: usize,
}

/// What happened.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Requests answered with the expected status.
    pub ok: u64,
    /// Requests that failed (transport error or unexpected status).
    pub failed: u64,
    /// The first few failures, for messages.
    pub first_failures: Vec<String>,
    /// Wall time of the whole run.
    pub took: Duration,
}

/// A client trusting `ca_pem` only; `http1` forces HTTP/1.1 (otherwise ALPN picks h2).
fn client(ca_pem: &Path, http1: bool) -> reqwest::Client {
    let pem = std::fs::read(ca_pem).expect("reading the CA certificate");
    let cert = reqwest::Certificate::from_pem(&pem).expect("parsing the CA certificate");
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(cert)
        .no_proxy()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(60));
    if http1 {
        b = b.http1_only();
    }
    b.build().expect("building a load client")
}

/// One request; Ok when it got `want` (the body is read to its end).
async fn call(req: reqwest::RequestBuilder, want: u16, what: &str) -> Result<usize, String> {
    let resp = req.send().await.map_err(|e| format!("{what}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("{what}: body: {e}"))?;
    if status != want {
        return Err(format!(
            "{what}: HTTP {status}, wanted {want}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    }
    Ok(body.len())
}

/// One round: push the blob (`POST`, then `PUT ?digest=` with the body, which every
/// registry supports), push the manifest, pull both. Requests ok, or those and the error.
async fn round(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    blob: &[u8],
    digest: &str,
    manifest: &[u8],
) -> Result<u64, (u64, String)> {
    let mut ok = 0;
    let fail = |ok, e| (ok, e);
    let start = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .map_err(|e| fail(ok, format!("start upload: {e}")))?;
    let status = start.status().as_u16();
    let location = start
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let _ = start.bytes().await;
    let location = match (status, location) {
        (202, Some(l)) => l,
        _ => return Err(fail(ok, format!("start upload: HTTP {status}"))),
    };
    ok += 1;
    let location = if location.starts_with("https://") {
        location
    } else {
        format!("{base}{location}")
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let steps = [
        (
            c.put(format!("{location}{sep}digest={digest}"))
                .header("Content-Type", "application/octet-stream")
                .body(blob.to_vec()),
            201,
            "push blob",
        ),
        (
            c.put(format!("{base}/v2/{repo}/manifests/latest"))
                .header("Content-Type", OCI_MANIFEST)
                .body(manifest.to_vec()),
            201,
            "push manifest",
        ),
        (
            c.get(format!("{base}/v2/{repo}/manifests/latest"))
                .header("Accept", OCI_MANIFEST),
            200,
            "pull manifest",
        ),
        (
            c.get(format!("{base}/v2/{repo}/blobs/{digest}")),
            200,
            "pull blob",
        ),
    ];
    for (req, want, what) in steps {
        call(req, want, what).await.map_err(|e| fail(ok, e))?;
        ok += 1;
    }
    Ok(ok)
}

/// One client's rounds until `deadline`: (requests ok, failures).
async fn one_client(
    base: String,
    ca_pem: std::path::PathBuf,
    index: usize,
    blob_size: usize,
    deadline: Instant,
) -> (u64, Vec<String>) {
    let c = client(&ca_pem, index % 2 == 1);
    let blob = super::pseudo_random_bytes(blob_size, 1000 + index as u64);
    let digest = super::sha256_digest(&blob);
    let manifest = image_manifest((&digest, blob.len()), &[(&digest, blob.len())]);
    let repo = format!("load/c{index}");
    let (mut ok, mut failed) = (0u64, Vec::new());
    while Instant::now() < deadline {
        match round(&c, &base, &repo, &blob, &digest, &manifest).await {
            Ok(n) => ok += n,
            Err((n, e)) => {
                ok += n;
                failed.push(format!("client {index}: {e}"));
                // Back off a little so a broken server is not hammered in a tight loop.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    (ok, failed)
}

impl Load {
    /// Runs the load against `self.base`, trusting `ca_pem`.
    pub async fn run(&self, ca_pem: &Path) -> LoadReport {
        let start = Instant::now();
        let deadline = start + self.duration;
        let tasks: Vec<_> = (0..self.clients)
            .map(|i| {
                tokio::spawn(one_client(
                    self.base.clone(),
                    ca_pem.to_path_buf(),
                    i,
                    self.blob_size,
                    deadline,
                ))
            })
            .collect();
        let mut report = LoadReport::default();
        for t in tasks {
            let (ok, failed) = t.await.expect("a load client panicked");
            report.ok += ok;
            report.failed += failed.len() as u64;
            for f in failed {
                if report.first_failures.len() < 5 {
                    report.first_failures.push(f);
                }
            }
        }
        report.took = start.elapsed();
        report
    }
}

/// `VmHWM` (peak resident set) of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// `VmRSS` (current resident set) of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}
