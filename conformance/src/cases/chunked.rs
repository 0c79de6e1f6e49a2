//! Push, chunked uploads: PATCH with `Content-Range`, out-of-order and repeated chunks
//! (416), upload status (204 with `Range`), closing PUT with and without a final chunk.

use super::push::blob_is_served;
use crate::check::{self, need, Step};
use crate::ctx::{Ctx, Recorder};
use crate::fixtures::Blob;
use crate::report::Category;
use imgflow::client::{Method, RawRequest, RawResponse, UploadOptions};
use imgflow::oci::RepoName;

const CAT: Category = Category::Push;
/// Default chunk length; raised when the registry asks for a larger minimum.
const CHUNK: usize = 1500;

/// A blob split in two chunks.
struct Split {
    blob: Blob,
    cut: usize,
}

impl Split {
    fn first(&self) -> &[u8] {
        &self.blob.data[..self.cut]
    }

    fn second(&self) -> &[u8] {
        &self.blob.data[self.cut..]
    }

    fn first_range(&self) -> String {
        format!("0-{}", self.cut - 1)
    }

    fn second_range(&self) -> String {
        format!("{}-{}", self.cut, self.blob.data.len() - 1)
    }
}

/// A two-chunk blob, each chunk at least `OCI-Chunk-Min-Length` when the POST
/// response announces one.
fn split_for(post: &RawResponse) -> Split {
    let min = post
        .header("OCI-Chunk-Min-Length")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let cut = CHUNK.max(min);
    Split {
        blob: Blob::random(cut * 2),
        cut,
    }
}

/// `PATCH <loc>` with `data` and `Content-Range: range`.
async fn patch(ctx: &Ctx, loc: &str, range: &str, data: &[u8]) -> Step<RawResponse> {
    ctx.send(
        RawRequest::new(Method::PATCH, loc)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", range)
            .body(data.to_vec()),
    )
    .await
}

/// `POST` a session (with `Content-Length: 0`): response and resolved `Location`.
async fn open(ctx: &Ctx, repo: &RepoName) -> Step<(RawResponse, String)> {
    let r = ctx.start_upload(repo).await?;
    check::status(&r, &[202])?;
    let loc = check::location(&r)?;
    Ok((r, loc))
}

/// State of the main chunked scenario, passed from case to case.
struct Session {
    split: Split,
    post_location: String,
    location: String,
}

/// Run the chunked upload cases.
pub async fn run(ctx: &Ctx, rec: &mut Recorder) {
    let repo = ctx.repo("chunked");
    rec.case("push/chunked/out-of-order-416", CAT, async {
        let (post, loc) = open(ctx, &repo).await?;
        let split = split_for(&post);
        let r = patch(ctx, &loc, &split.second_range(), split.second()).await?;
        check::status(&r, &[416])
    })
    .await;

    let mut first: Step<Session> = Err(check::fail("not run"));
    rec.case("push/chunked/first-chunk-202", CAT, async {
        let (post, loc) = open(ctx, &repo).await?;
        let split = split_for(&post);
        let r = patch(ctx, &loc, &split.first_range(), split.first()).await?;
        check::status(&r, &[202])?;
        let next = check::location(&r)?;
        check::header_eq(&r, "Range", &split.first_range())?;
        first = Ok(Session {
            split,
            post_location: loc,
            location: next,
        });
        Ok(())
    })
    .await;
    rec.case("push/chunked/retry-chunk-416", CAT, async {
        let s = need(&first, "push/chunked/first-chunk-202")?;
        let r = patch(
            ctx,
            &s.post_location,
            &s.split.first_range(),
            s.split.first(),
        )
        .await?;
        check::status(&r, &[416])
    })
    .await;
    rec.case("push/chunked/status-204", CAT, async {
        let s = need(&first, "push/chunked/first-chunk-202")?;
        let r = ctx.get(s.location.clone()).await?;
        check::status(&r, &[204])?;
        check::location(&r)?;
        check::header_eq(&r, "Range", &s.split.first_range())
    })
    .await;
    let mut second: Step<String> = Err(check::fail("not run"));
    rec.case("push/chunked/second-chunk-202", CAT, async {
        let s = need(&first, "push/chunked/first-chunk-202")?;
        let r = patch(ctx, &s.location, &s.split.second_range(), s.split.second()).await?;
        check::status(&r, &[202])?;
        let next = check::location(&r)?;
        let end = s.split.blob.data.len() - 1;
        check::header_eq(&r, "Range", &format!("0-{end}"))?;
        second = Ok(next);
        Ok(())
    })
    .await;
    rec.case("push/chunked/put-without-final-chunk-201", CAT, async {
        let s = need(&first, "push/chunked/first-chunk-202")?;
        let loc = need(&second, "push/chunked/second-chunk-202")?;
        let r = ctx
            .send(
                RawRequest::new(Method::PUT, loc.clone())
                    .query("digest", s.split.blob.digest.as_str()),
            )
            .await?;
        check::status(&r, &[201])?;
        check::location(&r)?;
        check::content_digest(&r, &s.split.blob.digest)?;
        blob_is_served(ctx, &repo, &s.split.blob).await
    })
    .await;

    rec.case("push/chunked/put-with-final-chunk-201", CAT, async {
        let (post, loc) = open(ctx, &repo).await?;
        let split = split_for(&post);
        let r = patch(ctx, &loc, &split.first_range(), split.first()).await?;
        check::status(&r, &[202])?;
        let loc = check::location(&r)?;
        let p = ctx
            .send(
                RawRequest::new(Method::PUT, loc)
                    .query("digest", split.blob.digest.as_str())
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Range", split.second_range())
                    .body(split.second().to_vec()),
            )
            .await?;
        check::status(&p, &[201])?;
        check::location(&p)?;
        blob_is_served(ctx, &repo, &split.blob).await
    })
    .await;

    rec.case("push/chunked/client-roundtrip", CAT, async {
        let blob = Blob::random(3 * 1024 * 1024 + 17);
        let (hook, progress) = imgflow::client::Progress::channel();
        let opts = UploadOptions {
            chunk_size: 1024 * 1024,
            expected: Some(blob.digest.clone()),
            total: Some(blob.data.len() as u64),
            progress: Some(hook),
            ..Default::default()
        };
        let reader = std::io::Cursor::new(blob.data.clone());
        ctx.client
            .push_blob_chunked(&repo, reader, &opts)
            .await
            .map_err(|e| check::fail(format!("client push_blob_chunked: {e}")))?;
        ctx.pushed_blob(&repo, &blob.digest);
        let done = progress.borrow().done;
        if done != blob.data.len() as u64 {
            return Err(check::fail(format!(
                "progress reported {done} bytes, expected {}",
                blob.data.len()
            )));
        }
        blob_is_served(ctx, &repo, &blob).await
    })
    .await;
}
