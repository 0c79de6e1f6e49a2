//! End-to-end: the real docker CLI and a private dockerd push, pull (by tag and by digest)
//! and run a multi-layer image through `imgflow serve` over HTTPS.
//!
//! The same workflow also runs against CNCF Distribution, the reference implementation,
//! so a failure that happens only with imgflow points at imgflow.
//!
//! dockerd treats `127.0.0.0/8` as an insecure registry and does not verify certificates
//! there, so one more test puts the registry in a network namespace on a TEST-NET address
//! reached over a veth pair, where dockerd verifies the certificate against
//! `/etc/docker/certs.d/HOST:PORT/ca.crt`.

mod common;

use std::path::Path;

use common::{
    https_get, https_request, pseudo_random_bytes, sha256_digest, Distribution, DockerCertsGuard,
    Dockerd, NetNs, Registry, Server,
};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

#[test]
fn docker_push_pull_run_against_imgflow() {
    let mut server = Server::start();
    docker_workflow(&mut server);
}

#[test]
fn docker_push_pull_run_against_distribution() {
    let mut registry = Distribution::start();
    docker_workflow(&mut registry);
}

#[test]
fn docker_verifies_the_registry_ca_on_a_non_loopback_address() {
    // Guards drop in reverse order: certs.d entry, dockerd, server, then the namespace.
    let ns = NetNs::create();
    // Docker and curl reach the server from the root side of the link, a TEST-NET address
    // the default policy would close at accept: admit it.
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("access.toml");
    std::fs::write(
        &cfg,
        format!(
            "[access.networks]\nroot_side = [\"{}/32\"]\n\n[[access.rule]]\n\
             from = [\"root_side\"]\nallow = [\"pull\", \"push\", \"delete\", \"catalog\"]\n",
            ns.host_ip()
        ),
    )
    .unwrap();
    let server = Server::builder()
        .netns(&ns)
        .arg("--config")
        .arg(&cfg)
        .start();
    let host_port = server.host_port();
    assert_eq!(server.addr().ip(), ns.ns_ip(), "server address");
    assert!(!server.addr().ip().is_loopback());
    assert_ne!(
        std::fs::read_link(format!("/proc/{}/ns/net", server.pid())).ok(),
        std::fs::read_link("/proc/self/ns/net").ok(),
        "the server must run inside the test's network namespace"
    );
    let certs_dir = Path::new("/etc/docker/certs.d").join(&host_port);
    assert!(
        !certs_dir.exists(),
        "{} exists before the test installed it",
        certs_dir.display()
    );

    // Reachable over the veth, and its generated certificate names the address (the
    // harness passes no --tls-name here): a client trusting the CA verifies it, one
    // trusting nothing refuses it.
    let v2 = format!("{}/v2/", server.url());
    let resp = https_get(&v2, &server.ca_path()).unwrap_or_else(|e| panic!("GET {v2}: {e}"));
    assert_eq!(resp.status, 200, "GET {v2}");
    let curl = std::process::Command::new(common::require_tool("curl"))
        .args(["-sS", "--max-time", "30", "--noproxy", "*", &v2])
        .env_remove("CURL_CA_BUNDLE")
        .output()
        .expect("running curl");
    assert_eq!(
        curl.status.code(),
        Some(60),
        "curl without the CA must fail verification: {}",
        String::from_utf8_lossy(&curl.stderr)
    );

    let docker = Dockerd::start();
    let base = "imgflow-e2e/busybox-netns:base";
    docker.import_busybox(base);
    let ctx = docker.work_dir().join("ctx-verified");
    let message = format!("verified over {host_port}\n");
    write_context(
        &ctx,
        &format!("FROM {base}\nCOPY msg.txt /msg.txt\nCMD [\"cat\", \"/msg.txt\"]\n"),
        &[("msg.txt", message.as_bytes())],
    );
    let tag = format!("{host_port}/team/verified:1");
    docker.docker(&["build", "--network", "none", "-t", &tag, &path_str(&ctx)]);
    let built_id = image_id(&docker, &tag);

    // Without the CA in certs.d dockerd refuses the certificate, and nothing arrives.
    let refused = docker.docker_fails(&["push", &tag]);
    assert!(
        refused.contains("certificate signed by unknown authority"),
        "push without the CA must fail certificate verification:\n{refused}"
    );
    let catalog = curl_json(&server, "/v2/_catalog");
    assert_eq!(
        catalog["repositories"],
        serde_json::json!([]),
        "nothing may be pushed over an unverified connection"
    );

    // With the CA installed for exactly HOST:PORT, push, pull back and run.
    let certs = DockerCertsGuard::install(&host_port, &server.ca_path());
    assert_eq!(certs.dir(), certs_dir);
    let push = docker.docker(&["push", &tag]);
    let digest = push_digest(&push);
    check_manifest_and_blobs(&server, "team/verified", "1", &digest, 2);
    docker.docker(&["rmi", &tag, base]);
    let pull = docker.docker(&["pull", &tag]);
    assert!(pull.contains(&format!("Digest: {digest}")), "{pull}");
    assert_eq!(image_id(&docker, &tag), built_id, "image id changed");
    let out = docker.docker(&["run", "--rm", "--network", "none", &tag]);
    assert_eq!(out, message);
}

/// Files baked into the test image, with their expected contents.
struct ImageFiles {
    notebook: String,
    big: Vec<u8>,
}

fn docker_workflow(reg: &mut dyn Registry) {
    let _certs = DockerCertsGuard::install(&reg.host_port(), &reg.ca_path());
    let docker = Dockerd::start();
    let kind = reg.kind();
    let repo = format!("{}/team/spark-notebook", reg.host_port());

    // 1. A four-layer image: busybox base, two COPY layers (one 4 MiB), one RUN layer.
    let base = format!("imgflow-e2e/busybox-{kind}:base");
    docker.import_busybox(&base);
    let files = ImageFiles {
        notebook: format!("spark-notebook 3.5 for {kind}\n"),
        big: pseudo_random_bytes(4 * 1024 * 1024 + 123, 0x5eed),
    };
    let ctx = docker.work_dir().join("ctx-notebook");
    write_context(
        &ctx,
        &format!(
            "FROM {base}\n\
             COPY notebook.txt /opt/notebook/notebook.txt\n\
             COPY big.bin /opt/notebook/big.bin\n\
             RUN echo built-by-run > /opt/notebook/run.txt\n\
             ENV NOTEBOOK_HOME=/opt/notebook\n\
             CMD [\"cat\", \"/opt/notebook/notebook.txt\"]\n"
        ),
        &[
            ("notebook.txt", files.notebook.as_bytes()),
            ("big.bin", &files.big),
        ],
    );
    let local = format!("imgflow-e2e/spark-notebook-{kind}:3.5");
    docker.docker(&["build", "--network", "none", "-t", &local, &path_str(&ctx)]);
    let tag = format!("{repo}:3.5");
    docker.docker(&["tag", &local, &tag]);
    let pushed_id = image_id(&docker, &tag);

    // 2. Push; the digest from the push output must match the daemon's RepoDigests and
    //    what the registry serves.
    let push = docker.docker(&["push", &tag]);
    let digest = push_digest(&push);
    assert!(
        !push.contains("already exists") && push.matches("Pushed").count() >= 4,
        "first push to an empty registry should upload all 4 layers:\n{push}"
    );
    let repo_digests = docker.docker(&["inspect", "--format", "{{json .RepoDigests}}", &tag]);
    assert!(
        repo_digests.contains(&format!("{repo}@{digest}")),
        "RepoDigests {repo_digests} does not contain {repo}@{digest}"
    );
    check_manifest_and_blobs(reg, "team/spark-notebook", "3.5", &digest, 4);

    // A crash right after the client saw success must not lose the image.
    reg.kill9_restart();
    check_manifest_and_blobs(reg, "team/spark-notebook", "3.5", &digest, 4);

    // 3. Remove everything locally, then pull by tag: all layers come from the registry.
    docker.docker(&["rmi", &tag, &local, &base]);
    let left = docker.docker(&["images", "-q"]);
    assert!(left.trim().is_empty(), "images left after rmi: {left}");
    let pull = docker.docker(&["pull", &tag]);
    assert!(
        pull.contains(&format!("Digest: {digest}")),
        "pull by tag reported another digest (expected {digest}):\n{pull}"
    );
    assert_eq!(
        image_id(&docker, &tag),
        pushed_id,
        "image id changed by push/pull"
    );
    check_image_contents(&docker, &tag, &files);

    // 4. Pull by digest after dropping the tag.
    docker.docker(&["rmi", &tag]);
    let by_digest = format!("{repo}@{digest}");
    let pull = docker.docker(&["pull", &by_digest]);
    assert!(pull.contains(&digest), "pull by digest output:\n{pull}");
    assert_eq!(image_id(&docker, &by_digest), pushed_id);
    check_image_contents(&docker, &by_digest, &files);

    // 5. A second tag: an image derived from the first; shared layers are not re-sent.
    let ctx_gpu = docker.work_dir().join("ctx-gpu");
    write_context(
        &ctx_gpu,
        &format!("FROM {by_digest}\nCOPY gpu.txt /opt/notebook/gpu.txt\n"),
        &[("gpu.txt", b"cuda enabled\n")],
    );
    let gpu_tag = format!("{repo}:3.5-gpu");
    docker.docker(&[
        "build",
        "--network",
        "none",
        "-t",
        &gpu_tag,
        &path_str(&ctx_gpu),
    ]);
    let gpu_id = image_id(&docker, &gpu_tag);
    let push = docker.docker(&["push", &gpu_tag]);
    let gpu_digest = push_digest(&push);
    assert!(
        push.matches("Layer already exists").count() >= 4 && push.matches("Pushed").count() == 1,
        "second push should upload only the new layer:\n{push}"
    );
    check_manifest_and_blobs(reg, "team/spark-notebook", "3.5-gpu", &gpu_digest, 5);

    docker.docker(&["rmi", &gpu_tag, &by_digest]);
    let pull = docker.docker(&["pull", &gpu_tag]);
    assert!(pull.contains(&format!("Digest: {gpu_digest}")), "{pull}");
    assert_eq!(image_id(&docker, &gpu_tag), gpu_id);
    let out = docker.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        &gpu_tag,
        "cat",
        "/opt/notebook/gpu.txt",
    ]);
    assert_eq!(out, "cuda enabled\n");
    check_image_contents(&docker, &gpu_tag, &files);

    // 6. The tag list (read with curl, trusting only the registry CA) has both tags.
    let tags = curl_json(reg, "/v2/team/spark-notebook/tags/list");
    assert_eq!(tags["name"], "team/spark-notebook", "tags/list: {tags}");
    let mut names: Vec<&str> = tags["tags"]
        .as_array()
        .unwrap_or_else(|| panic!("tags/list without tags array: {tags}"))
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["3.5", "3.5-gpu"], "tags/list: {tags}");

    // 7. Cross-repository push: the daemon mounts the blobs it pulled from the first repo.
    let copy = format!("{}/team/spark-notebook-copy:gpu", reg.host_port());
    docker.docker(&["tag", &gpu_tag, &copy]);
    let push = docker.docker(&["push", &copy]);
    assert_eq!(
        push_digest(&push),
        gpu_digest,
        "same manifest, same digest:\n{push}"
    );
    assert!(
        push.contains("Mounted from team/spark-notebook"),
        "layers should be mounted across repositories:\n{push}"
    );
    check_manifest_and_blobs(reg, "team/spark-notebook-copy", "gpu", &gpu_digest, 5);
    let catalog = curl_json(reg, "/v2/_catalog");
    let repos = catalog["repositories"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for name in ["team/spark-notebook", "team/spark-notebook-copy"] {
        assert!(
            repos.iter().any(|r| r == name),
            "{name} missing from catalog {catalog}"
        );
    }

    // 8. TLS is real: curl without the registry CA refuses the server certificate.
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "60",
            "--noproxy",
            "*",
            &format!("{}/v2/", reg.url()),
        ])
        .env_remove("CURL_CA_BUNDLE")
        .output()
        .expect("running curl");
    assert_eq!(
        out.status.code(),
        Some(60),
        "curl without the CA must fail certificate verification (exit 60): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Writes a build context directory with a Dockerfile and files.
fn write_context(dir: &Path, dockerfile: &str, files: &[(&str, &[u8])]) {
    std::fs::create_dir_all(dir).expect("creating build context");
    std::fs::write(dir.join("Dockerfile"), dockerfile).expect("writing Dockerfile");
    for (name, data) in files {
        std::fs::write(dir.join(name), data).expect("writing context file");
    }
}

fn image_id(docker: &Dockerd, reference: &str) -> String {
    let id = docker.docker(&["image", "inspect", "--format", "{{.Id}}", reference]);
    let id = id.trim().to_string();
    assert!(id.starts_with("sha256:"), "unexpected image id {id:?}");
    id
}

/// Extracts the manifest digest from `docker push` output (`TAG: digest: sha256:... size: N`).
fn push_digest(push_output: &str) -> String {
    let start = push_output
        .find("digest: sha256:")
        .unwrap_or_else(|| panic!("no digest in push output:\n{push_output}"))
        + "digest: ".len();
    let digest: String = push_output[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    assert_eq!(digest.len(), 71, "malformed digest {digest:?}");
    digest
}

/// Runs commands in the image (no network) and checks the baked-in files.
fn check_image_contents(docker: &Dockerd, image: &str, files: &ImageFiles) {
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "--network", "none", image];
        all.extend_from_slice(args);
        docker.docker(&all)
    };
    assert_eq!(run(&[]), files.notebook, "default CMD output");
    assert_eq!(run(&["cat", "/opt/notebook/run.txt"]), "built-by-run\n");
    let sum = run(&["sha256sum", "/opt/notebook/big.bin"]);
    let expected = sha256_digest(&files.big);
    assert_eq!(
        sum.split_whitespace().next(),
        Some(&expected["sha256:".len()..]),
        "big.bin corrupted through the registry"
    );
}

/// Fetches the manifest for `reference` as Docker schema 2 and checks its digest header,
/// its content digest and every blob it references.
fn check_manifest_and_blobs(
    reg: &dyn Registry,
    name: &str,
    reference: &str,
    digest: &str,
    layers: usize,
) {
    let url = format!("{}/v2/{name}/manifests/{reference}", reg.url());
    let resp = https_request(
        reqwest::Method::GET,
        &url,
        &reg.ca_path(),
        &[("Accept", DOCKER_MANIFEST)],
    )
    .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(
        resp.status,
        200,
        "GET {url}: {}",
        String::from_utf8_lossy(&resp.body)
    );
    assert_eq!(
        resp.header("docker-content-digest").as_deref(),
        Some(digest),
        "GET {url}"
    );
    assert_eq!(
        sha256_digest(&resp.body),
        digest,
        "manifest bytes differ from digest"
    );
    let manifest = resp.json();
    assert_eq!(manifest["mediaType"], DOCKER_MANIFEST, "{manifest}");
    let layer_list = manifest["layers"].as_array().expect("layers array");
    assert_eq!(layer_list.len(), layers, "layer count in {manifest}");
    let blobs = layer_list
        .iter()
        .chain(std::iter::once(&manifest["config"]))
        .map(|d| d["digest"].as_str().expect("descriptor digest").to_string());
    for blob in blobs {
        let url = format!("{}/v2/{name}/blobs/{blob}", reg.url());
        let resp = https_get(&url, &reg.ca_path()).unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(resp.status, 200, "GET {url}");
        assert_eq!(sha256_digest(&resp.body), blob, "blob content of {url}");
    }
}

/// GET `path` with curl, trusting only the registry CA, and parse the JSON body.
fn curl_json(reg: &dyn Registry, path: &str) -> serde_json::Value {
    let url = format!("{}{path}", reg.url());
    let ca = path_str(&reg.ca_path());
    let out = std::process::Command::new(common::require_tool("curl"))
        .args([
            "-sS",
            "--fail",
            "--max-time",
            "60",
            "--noproxy",
            "*",
            "--cacert",
            &ca,
            &url,
        ])
        .output()
        .expect("running curl");
    assert!(
        out.status.success(),
        "curl {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "curl {url}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The namespace guard leaves nothing behind: no namespace, no veth, no address.
#[test]
fn netns_guard_removes_the_namespace_and_link() {
    let ns = NetNs::create();
    let (name, link, host_ip) = (
        ns.name().to_string(),
        ns.host_if().to_string(),
        ns.host_ip(),
    );
    assert!(NetNs::exists(&name) && NetNs::link_exists(&link));
    drop(ns);
    assert!(!NetNs::exists(&name), "namespace {name} left behind");
    assert!(!NetNs::link_exists(&link), "veth {link} left behind");
    let addrs = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .expect("ip addr show");
    let addrs = String::from_utf8_lossy(&addrs.stdout);
    assert!(
        !addrs.contains(&format!("{host_ip}/")),
        "{host_ip} still configured:\n{addrs}"
    );
}
