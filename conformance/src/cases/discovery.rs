//! Content discovery: tag listing with `n`, `last` and `Link`, and the catalog.

use crate::check::{self, need, Step};
use crate::ctx::{Ctx, Recorder};
use crate::fixtures::{simple_image, Blob};
use crate::report::{Category, Level};
use imgflow::client::{next_link, resolve_location, RawResponse};
use imgflow::oci::RepoName;
use serde_json::Value;

const CAT: Category = Category::Discovery;
/// Tags pushed, in push order (not sorted on purpose).
const TAGS: [&str; 5] = ["t-delta", "t-alpha", "t-echo", "t-charlie", "t-bravo"];
/// Most pages followed when paging through a listing.
const MAX_PAGES: usize = 200;

fn sorted_tags() -> Vec<String> {
    let mut t: Vec<String> = TAGS.iter().map(|s| s.to_string()).collect();
    t.sort();
    t
}

async fn setup(ctx: &Ctx) -> Step<RepoName> {
    let repo = ctx.repo("discovery");
    let config = Blob::config(&ctx.run_id, "discovery");
    let layer = Blob::random(512);
    ctx.push_blobs(&repo, &[&config, &layer]).await?;
    let doc = simple_image(&config, &[&layer], "discovery");
    for tag in TAGS {
        ctx.push_doc(&repo, &doc, Some(tag)).await?;
    }
    Ok(repo)
}

/// The string array `field` of a JSON body.
fn strings(r: &RawResponse, body: &Value, field: &str) -> Step<Vec<String>> {
    match body.get(field) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| check::mismatch(r, format!("{field} of strings"), v))
            })
            .collect(),
        Some(Value::Null) | None => Ok(Vec::new()),
        Some(other) => Err(check::mismatch(r, format!("a {field} array"), other)),
    }
}

/// GET a tags list; returns the tags and the response.
async fn tags(ctx: &Ctx, target: String) -> Step<(Vec<String>, RawResponse)> {
    let r = ctx.get(target).await?;
    check::status(&r, &[200])?;
    let body = check::json(&r)?;
    Ok((strings(&r, &body, "tags")?, r))
}

/// The resolved `rel="next"` link of a response, if any.
fn next_of(r: &RawResponse) -> Step<Option<String>> {
    let Some(link) = r.header("Link").and_then(next_link) else {
        return Ok(None);
    };
    resolve_location(&r.url, &link)
        .map(|u| Some(u.to_string()))
        .map_err(|e| check::mismatch(r, "a valid Link target", e))
}

/// Run the tag and catalog cases.
pub async fn run(ctx: &Ctx, rec: &mut Recorder) {
    let fx = setup(ctx).await;
    rec.case("discovery/setup", CAT, async {
        need(&fx, "setup").map(|_| ())
    })
    .await;
    rec.case("discovery/tags/list-200", CAT, async {
        let repo = need(&fx, "setup")?;
        let (got, r) = tags(ctx, format!("/v2/{repo}/tags/list")).await?;
        let body = check::json(&r)?;
        let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
        check::ensure(
            name == repo.as_str(),
            &r,
            format!("name {repo}"),
            format!("name {name:?}"),
        )?;
        let want = sorted_tags();
        check::ensure(
            got == want,
            &r,
            format!("tags {want:?}"),
            format!("tags {got:?}"),
        )
    })
    .await;
    rec.case("discovery/tags/n-limit", CAT, async {
        let repo = need(&fx, "setup")?;
        let (got, r) = tags(ctx, format!("/v2/{repo}/tags/list?n=2")).await?;
        let want = &sorted_tags()[..2];
        check::ensure(
            got == want,
            &r,
            format!("tags {want:?}"),
            format!("tags {got:?}"),
        )
    })
    .await;
    rec.case_at(Level::May, "discovery/tags/link-header", CAT, async {
        let repo = need(&fx, "setup")?;
        let mut target = format!("/v2/{repo}/tags/list?n=2");
        let mut all = Vec::new();
        for page in 0.. {
            let (mut got, r) = tags(ctx, target).await?;
            all.append(&mut got);
            match next_of(&r)? {
                Some(next) if page < MAX_PAGES => target = next,
                Some(_) => return Err(check::fail("tag pagination does not end")),
                None if page == 0 => {
                    return Err(check::mismatch(
                        &r,
                        "a Link header with rel=\"next\"",
                        "no Link",
                    ))
                }
                None => break,
            }
        }
        let want = sorted_tags();
        if all == want {
            Ok(())
        } else {
            Err(check::fail(format!(
                "following Link headers gave {all:?}, expected {want:?}"
            )))
        }
    })
    .await;
    rec.case("discovery/tags/last", CAT, async {
        let repo = need(&fx, "setup")?;
        let (got, r) = tags(ctx, format!("/v2/{repo}/tags/list?n=2&last=t-bravo")).await?;
        let want = ["t-charlie", "t-delta"];
        check::ensure(
            got == want,
            &r,
            format!("tags {want:?}"),
            format!("tags {got:?}"),
        )
    })
    .await;
    rec.case("discovery/tags/last-without-n", CAT, async {
        let repo = need(&fx, "setup")?;
        let (got, r) = tags(ctx, format!("/v2/{repo}/tags/list?last=t-charlie")).await?;
        let want = ["t-delta", "t-echo"];
        check::ensure(
            got == want,
            &r,
            format!("tags {want:?}"),
            format!("tags {got:?}"),
        )
    })
    .await;
    rec.case("discovery/tags/n-zero", CAT, async {
        let repo = need(&fx, "setup")?;
        let (got, r) = tags(ctx, format!("/v2/{repo}/tags/list?n=0")).await?;
        check::ensure(got.is_empty(), &r, "no tags", format!("tags {got:?}"))?;
        check::no_header(&r, "Link")
    })
    .await;
    rec.case("discovery/tags/unknown-repo-404", CAT, async {
        let r = ctx
            .get(format!("/v2/{}/never-pushed/tags/list", ctx.ns))
            .await?;
        check::error(&r, 404, "NAME_UNKNOWN")
    })
    .await;
    catalog(ctx, rec, &fx).await;
}

async fn catalog(ctx: &Ctx, rec: &mut Recorder, fx: &Step<RepoName>) {
    rec.case_at(Level::May, "discovery/catalog/list-200", CAT, async {
        let r = ctx.get("/v2/_catalog").await?;
        if matches!(r.status.as_u16(), 404 | 405) {
            return Err(check::skip(format!(
                "the catalog is optional and this registry does not offer it ({})",
                r.status
            )));
        }
        check::status(&r, &[200])?;
        let body = check::json(&r)?;
        strings(&r, &body, "repositories").map(|_| ())
    })
    .await;
    rec.case_at(
        Level::May,
        "discovery/catalog/contains-run-repos",
        CAT,
        async {
            let repo = need(fx, "setup")?;
            // Repositories of this run sort right after the namespace itself.
            let mut target = format!("/v2/_catalog?n=100&last={}", ctx.ns);
            for _ in 0..MAX_PAGES {
                let r = ctx.get(target).await?;
                check::status(&r, &[200])?;
                let body = check::json(&r)?;
                let repos = strings(&r, &body, "repositories")?;
                if repos.iter().any(|x| x == repo.as_str()) {
                    return Ok(());
                }
                match next_of(&r)? {
                    Some(next) => target = next,
                    None => {
                        return Err(check::mismatch(
                            &r,
                            format!("{repo} in the catalog"),
                            format!("repositories {repos:?} and no further page"),
                        ))
                    }
                }
            }
            Err(check::fail("catalog pagination does not end"))
        },
    )
    .await;
    rec.case_at(Level::May, "discovery/catalog/pagination", CAT, async {
        need(fx, "setup")?;
        let r = ctx.get(format!("/v2/_catalog?n=1&last={}", ctx.ns)).await?;
        check::status(&r, &[200])?;
        let first = strings(&r, &check::json(&r)?, "repositories")?;
        check::ensure(
            first.len() == 1,
            &r,
            "exactly 1 repository",
            format!("{first:?}"),
        )?;
        let Some(next) = next_of(&r)? else {
            return Err(check::mismatch(
                &r,
                "a Link header with rel=\"next\"",
                "no Link",
            ));
        };
        let r2 = ctx.get(next).await?;
        check::status(&r2, &[200])?;
        let second = strings(&r2, &check::json(&r2)?, "repositories")?;
        check::ensure(
            second.len() == 1 && second[0] > first[0],
            &r2,
            format!("the 1 repository after {:?}", first[0]),
            format!("{second:?}"),
        )
    })
    .await;
}
