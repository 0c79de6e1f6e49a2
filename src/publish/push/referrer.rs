//! The check report, attached to an image as a referrer artifact.
//!
//! The artifact is an OCI image manifest with its own `artifactType`, the empty config
//! (`{}`), one layer holding the JSON report and `subject` = the image's manifest, so the
//! referrers API lists it under the image's digest.

use super::chunked::UploadTarget;
use super::error::PushError;
use super::layer::BlobPusher;
use super::manifest::{artifact_manifest, descriptor, empty_descriptor, EMPTY_JSON};
use super::progress::{BlobKind, PushProgress};
use super::Pusher;
use crate::client::Bytes;
use crate::oci::{self, Descriptor, Digest, RepoName};
use std::collections::BTreeMap;

/// `artifactType` of imgflow's check reports (and media type of the report blob).
pub const CHECK_REPORT_TYPE: &str = "application/vnd.imgflow.check-report.v1+json";

impl Pusher {
    /// Push `report` (JSON) as an artifact of type `artifact_type` referring to
    /// `subject` in `repo`, and confirm the referrers API lists it. Returns the
    /// artifact manifest's digest.
    pub async fn attach_report(
        &self,
        repo: &RepoName,
        subject: &Descriptor,
        artifact_type: &str,
        report: Bytes,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Digest, PushError> {
        let temp_dir = self.temp_dir();
        let progress = PushProgress::none();
        let blobs = BlobPusher {
            target: UploadTarget {
                client: &self.client,
                repo,
                chunk_size: self.options.chunk_size,
                retry: &self.options.retry,
                progress: &progress,
                blob: BlobKind::Config,
            },
            mount_from: &[],
            cache: &self.cache,
            temp_dir: &temp_dir,
        };
        let empty = empty_descriptor();
        blobs
            .push_small(&empty.digest, Bytes::from_static(EMPTY_JSON))
            .await?;
        let report_digest = Digest::sha256(&report);
        let layer = descriptor(artifact_type, report_digest.clone(), report.len() as u64);
        blobs.push_small(&report_digest, report).await?;
        let body = artifact_manifest(artifact_type, &[layer], subject, annotations);
        let digest = self
            .put_manifest_by_digest(repo, oci::OCI_MANIFEST, body.into())
            .await?;

        let what = format!("listing the referrers of {repo}@{}", subject.digest);
        let listed = self
            .options
            .retry
            .run(&what, || {
                self.client
                    .referrers(repo, &subject.digest, Some(artifact_type))
            })
            .await?;
        let found = listed
            .manifests
            .iter()
            .any(|m| m.digest == digest && m.artifact_type.as_deref() == Some(artifact_type));
        if !found {
            return Err(PushError::Verify(format!(
                "artifact {digest} is not listed among the referrers of {repo}@{}",
                subject.digest
            )));
        }
        Ok(digest)
    }
}
