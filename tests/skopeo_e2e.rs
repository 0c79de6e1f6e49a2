//! End-to-end: skopeo copies images into and out of `imgflow serve` over verified TLS.
//!
//! Covers an OCI image layout pushed as is (OCI manifest), a push converted to Docker
//! schema 2 (`--format v2s2`), a registry-to-registry conversion back to OCI, the `dir:`
//! transport, a multi-architecture image index (`--all`), and TLS verification failures
//! without (or with the wrong) CA. The workflow also runs against CNCF Distribution.

mod common;

use std::path::Path;

use common::oci_layout::{media, read_blob, read_ref, BuiltImage, OciLayout, TarEntry};
use common::{
    https_get, pseudo_random_bytes, sha256_digest, Distribution, Registry, Server, Skopeo, TestCa,
};

const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

#[test]
fn skopeo_copy_against_imgflow() {
    let mut server = Server::start();
    skopeo_workflow(&mut server);
}

#[test]
fn skopeo_copy_against_distribution() {
    let mut registry = Distribution::start();
    skopeo_workflow(&mut registry);
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The source layout: an amd64 image (3 layers), an arm64 image and an index over both.
struct Source {
    dir: std::path::PathBuf,
    amd64: BuiltImage,
    arm64: BuiltImage,
    index_digest: String,
    index_bytes: Vec<u8>,
}

fn make_source(work: &Path) -> Source {
    let dir = work.join("src-layout");
    let mut layout = OciLayout::create(&dir);
    let base = vec![
        TarEntry::dir("opt"),
        TarEntry::dir("opt/app"),
        TarEntry::file(
            "opt/app/hello.txt",
            b"hello from an OCI layout\n".to_vec(),
            0o644,
        ),
    ];
    let layers = vec![
        base.clone(),
        vec![TarEntry::file(
            "opt/app/data.bin",
            pseudo_random_bytes(2 * 1024 * 1024 + 7, 7),
            0o600,
        )],
        vec![
            TarEntry::dir("etc"),
            TarEntry::file("etc/app.conf", b"mode=test\n".to_vec(), 0o644),
        ],
    ];
    let amd64 = layout.add_image("amd64", &layers, "skopeo e2e amd64");
    let arm_layers = vec![
        base,
        vec![TarEntry::file(
            "opt/app/arch.txt",
            b"arm64\n".to_vec(),
            0o644,
        )],
    ];
    let arm64 = layout.add_image("arm64", &arm_layers, "skopeo e2e arm64");
    let (index, index_bytes) = layout.add_index(&[(&amd64, "amd64"), (&arm64, "arm64")]);
    layout.tag("v1", &amd64.manifest);
    layout.tag("multi", &index);
    Source {
        dir,
        amd64,
        arm64,
        index_digest: index.digest,
        index_bytes,
    }
}

fn skopeo_workflow(reg: &mut dyn Registry) {
    let skopeo = Skopeo::new();
    let certs = s(&skopeo.cert_dir(&reg.ca_path()));
    let work = skopeo.work_dir();
    let hp = reg.host_port();
    let src = make_source(&work);
    let src_v1 = format!("oci:{}:v1", s(&src.dir));
    let inspect_digest = |reference: &str| {
        let out = skopeo.run(&[
            "inspect",
            "--cert-dir",
            &certs,
            "--format",
            "{{.Digest}}",
            reference,
        ]);
        out.trim().to_string()
    };
    let inspect_raw = |reference: &str| {
        let out = skopeo.output(&["inspect", "--cert-dir", &certs, "--raw", reference]);
        assert!(
            out.status.success(),
            "skopeo inspect --raw {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };

    // 1. TLS verification is real: without the CA, or with another CA, skopeo refuses.
    for dir in ["/etc/docker/certs.d", "/etc/containers/certs.d"] {
        assert!(
            !Path::new(dir).join(&hp).exists(),
            "{dir}/{hp} exists and would make skopeo trust the registry implicitly"
        );
    }
    let dest = format!("docker://{hp}/team/skopeo-oci:v1");
    let err = skopeo.fails(&[
        "inspect",
        "--tls-verify=true",
        &format!("docker://{hp}/team/x:1"),
    ]);
    assert_tls_error(&err);
    let err = skopeo.fails(&["copy", &src_v1, &dest]);
    assert_tls_error(&err);
    let other_ca = TestCa::generate(&work.join("other-ca"), &["127.0.0.1"]);
    let other_certs = s(&skopeo.cert_dir(&other_ca.ca_path()));
    let err = skopeo.fails(&["copy", "--dest-cert-dir", &other_certs, &src_v1, &dest]);
    assert_tls_error(&err);

    // 2. Push the OCI image unchanged; the registry keeps the exact manifest bytes.
    skopeo.run(&["copy", "--dest-cert-dir", &certs, &src_v1, &dest]);
    assert_eq!(inspect_digest(&dest), src.amd64.manifest.digest);
    assert_eq!(
        inspect_raw(&dest),
        src.amd64.manifest_bytes,
        "manifest bytes changed"
    );
    let info: serde_json::Value =
        serde_json::from_str(&skopeo.run(&["inspect", "--cert-dir", &certs, &dest]))
            .expect("skopeo inspect output is JSON");
    let layer_digests: Vec<&str> = src.amd64.layers.iter().map(|d| d.digest.as_str()).collect();
    assert_eq!(info["Layers"], serde_json::json!(layer_digests), "{info}");
    assert_eq!(info["Architecture"], "amd64", "{info}");
    assert_eq!(info["Os"], "linux", "{info}");
    let config = skopeo.run(&["inspect", "--cert-dir", &certs, "--config", "--raw", &dest]);
    assert_eq!(
        sha256_digest(config.as_bytes()),
        src.amd64.config.digest,
        "config blob"
    );

    // 3. After a crash (SIGKILL) and restart, pull it back into a new layout: same
    //    manifest digest, identical blobs.
    reg.kill9_restart();
    let pulled = work.join("pulled-oci");
    skopeo.run(&[
        "copy",
        "--src-cert-dir",
        &certs,
        &dest,
        &format!("oci:{}:v1", s(&pulled)),
    ]);
    let got = read_ref(&pulled, "v1");
    assert_eq!(
        got.digest, src.amd64.manifest.digest,
        "pulled manifest digest"
    );
    assert_eq!(got.media_type, media::MANIFEST);
    let blobs = std::iter::once(&src.amd64.config).chain(&src.amd64.layers);
    for blob in blobs {
        assert_eq!(
            read_blob(&pulled, &blob.digest),
            read_blob(&src.dir, &blob.digest)
        );
    }

    // 4. Push converted to Docker schema 2; the dir: transport round-trips it unchanged.
    let v2s2 = format!("docker://{hp}/team/skopeo-v2s2:v1");
    skopeo.run(&[
        "copy",
        "--format",
        "v2s2",
        "--dest-cert-dir",
        &certs,
        &src_v1,
        &v2s2,
    ]);
    let v2_raw = inspect_raw(&v2s2);
    let v2_digest = inspect_digest(&v2s2);
    assert_eq!(
        sha256_digest(&v2_raw),
        v2_digest,
        "digest of the served schema 2 manifest"
    );
    assert_ne!(
        v2_digest, src.amd64.manifest.digest,
        "conversion must change the manifest"
    );
    let v2_manifest: serde_json::Value = serde_json::from_slice(&v2_raw).expect("manifest JSON");
    assert_eq!(
        v2_manifest["mediaType"],
        media::DOCKER_MANIFEST,
        "{v2_manifest}"
    );
    for (layer, original) in v2_manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .zip(&layer_digests)
    {
        assert_eq!(layer["mediaType"], DOCKER_LAYER_GZIP, "{v2_manifest}");
        assert_eq!(
            layer["digest"], *original,
            "layer blobs are reused unchanged"
        );
    }
    let dir_copy = work.join("v2s2-dir");
    skopeo.run(&[
        "copy",
        "--src-cert-dir",
        &certs,
        &v2s2,
        &format!("dir:{}", s(&dir_copy)),
    ]);
    let dir_manifest = std::fs::read(dir_copy.join("manifest.json")).expect("dir manifest");
    assert_eq!(
        sha256_digest(&dir_manifest),
        v2_digest,
        "dir: copy manifest"
    );
    let from_dir = format!("docker://{hp}/team/skopeo-dir:v2");
    skopeo.run(&[
        "copy",
        "--dest-cert-dir",
        &certs,
        &format!("dir:{}", s(&dir_copy)),
        &from_dir,
    ]);
    assert_eq!(
        inspect_digest(&from_dir),
        v2_digest,
        "dir: push keeps the manifest"
    );

    // 5. Registry-to-registry copy converting schema 2 back to OCI (blobs already there).
    let converted = format!("docker://{hp}/team/skopeo-oci-converted:v1");
    skopeo.run(&[
        "copy",
        "--format",
        "oci",
        "--src-cert-dir",
        &certs,
        "--dest-cert-dir",
        &certs,
        &v2s2,
        &converted,
    ]);
    let conv: serde_json::Value =
        serde_json::from_slice(&inspect_raw(&converted)).expect("manifest JSON");
    assert_eq!(conv["mediaType"], media::MANIFEST, "{conv}");
    assert_eq!(conv["config"]["mediaType"], media::CONFIG, "{conv}");
    let conv_layers: Vec<&str> = conv["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l["digest"].as_str())
        .collect();
    assert_eq!(conv_layers, layer_digests);

    // 6. A multi-architecture index, copied with --all, is stored and served unchanged.
    let multi = format!("docker://{hp}/team/skopeo-multi:v1");
    let src_multi = format!("oci:{}:multi", s(&src.dir));
    skopeo.run(&[
        "copy",
        "--all",
        "--dest-cert-dir",
        &certs,
        &src_multi,
        &multi,
    ]);
    assert_eq!(inspect_raw(&multi), src.index_bytes, "index bytes changed");
    let arm_ref = format!(
        "docker://{hp}/team/skopeo-multi@{}",
        src.arm64.manifest.digest
    );
    assert_eq!(
        inspect_raw(&arm_ref),
        src.arm64.manifest_bytes,
        "arm64 manifest"
    );
    let multi_out = work.join("pulled-multi");
    skopeo.run(&[
        "copy",
        "--all",
        "--src-cert-dir",
        &certs,
        &multi,
        &format!("oci:{}:multi", s(&multi_out)),
    ]);
    assert_eq!(read_ref(&multi_out, "multi").digest, src.index_digest);
    assert_eq!(read_blob(&multi_out, &src.index_digest), src.index_bytes);
    for image in [&src.amd64, &src.arm64] {
        assert_eq!(
            read_blob(&multi_out, &image.manifest.digest),
            image.manifest_bytes
        );
        for layer in &image.layers {
            read_blob(&multi_out, &layer.digest);
        }
    }

    // 7. The registry lists what skopeo pushed.
    let tags = https_get(
        &format!("{}/v2/team/skopeo-oci/tags/list", reg.url()),
        &reg.ca_path(),
    )
    .expect("GET tags/list");
    assert_eq!(tags.status, 200);
    assert_eq!(
        tags.json()["tags"],
        serde_json::json!(["v1"]),
        "{:?}",
        tags.json()
    );
    let catalog = https_get(&format!("{}/v2/_catalog", reg.url()), &reg.ca_path())
        .expect("GET _catalog")
        .json();
    for name in [
        "team/skopeo-oci",
        "team/skopeo-v2s2",
        "team/skopeo-dir",
        "team/skopeo-oci-converted",
        "team/skopeo-multi",
    ] {
        assert!(
            catalog["repositories"]
                .as_array()
                .is_some_and(|r| r.iter().any(|x| x == name)),
            "{name} missing from catalog {catalog}"
        );
    }
}

/// Asserts that skopeo's error is a certificate verification failure (not, say, a 404).
fn assert_tls_error(stderr: &str) {
    assert!(
        stderr.contains("x509:") || stderr.contains("certificate signed by unknown authority"),
        "expected a TLS certificate verification error, got:\n{stderr}"
    );
}
