//! Moving tags to pushed digests: the last step of a publish run, taken only after every
//! image of the run is pushed and verified.

use super::error::PushError;
use super::Pusher;
use crate::client::MANIFEST_ACCEPT;
use crate::oci::{Digest, Reference, RepoName, Tag};

impl Pusher {
    /// Point each of `tags` in `repo` at the manifest `digest` (already in `repo`).
    ///
    /// The manifest is read by digest and PUT again under each tag, byte for byte, so
    /// the tag resolves to exactly `digest`; each tag is then read back. Tags are moved
    /// one by one: a failure leaves the earlier ones moved and is returned.
    pub async fn move_tags(
        &self,
        repo: &RepoName,
        digest: &Digest,
        tags: &[Tag],
    ) -> Result<(), PushError> {
        let retry = &self.options.retry;
        let by_digest = Reference::Digest(digest.clone());
        let what = format!("reading {repo}@{digest}");
        let manifest = retry
            .run(&what, || {
                self.client.get_manifest(repo, &by_digest, &MANIFEST_ACCEPT)
            })
            .await?;
        for tag in tags {
            let reference = Reference::Tag(tag.clone());
            let what = format!("tagging {repo}@{digest} as {tag}");
            let put = retry
                .run(&what, || {
                    self.client.put_manifest(
                        repo,
                        &reference,
                        &manifest.media_type,
                        manifest.body.clone(),
                    )
                })
                .await?;
            let what = format!("reading back {repo}:{tag}");
            let head = retry
                .run(&what, || {
                    self.client
                        .head_manifest(repo, &reference, &MANIFEST_ACCEPT)
                })
                .await?;
            let now = head.and_then(|h| h.digest).unwrap_or(put.digest);
            if now != *digest {
                return Err(PushError::Verify(format!(
                    "{repo}:{tag} points at {now} after moving it to {digest}"
                )));
            }
        }
        Ok(())
    }
}
