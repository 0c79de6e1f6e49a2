//! Content discovery: tag listing and catalog (with `n`/`last` and `Link` pagination),
//! and the referrers API (with the `artifactType` filter).

use super::error::{ClientError, Result};
use super::headers::{next_link, resolve_location};
use super::{header_str, protocol, Client, HeaderMap, Method, StatusCode, Url};
use crate::oci::{Descriptor, Digest, RepoName};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::HashSet;

/// Most pages followed by the "list everything" helpers before giving up.
const MAX_PAGES: usize = 10_000;

/// One page of `GET /v2/<name>/tags/list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPage {
    /// The repository name the registry reports.
    pub name: String,
    /// Tags on this page.
    pub tags: Vec<String>,
    /// URL of the next page (`Link: <...>; rel="next"`), if any.
    pub next: Option<Url>,
}

/// One page of `GET /v2/_catalog`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogPage {
    /// Repositories on this page.
    pub repositories: Vec<String>,
    /// URL of the next page, if any.
    pub next: Option<Url>,
}

/// The referrers of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrers {
    /// Descriptors of the manifests whose `subject` is the digest (all pages).
    pub manifests: Vec<Descriptor>,
    /// Filters the registry reports applying (`OCI-Filters-Applied`).
    pub filters_applied: Vec<String>,
}

#[derive(Deserialize)]
struct TagsBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct CatalogBody {
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct IndexBody {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

impl Client {
    /// GET a JSON page; returns the body, the resolved next-page link and the headers.
    async fn json_page<T: DeserializeOwned>(
        &self,
        url: Url,
    ) -> Result<(T, Option<Url>, HeaderMap)> {
        let m = Method::GET;
        let resp = self.send_bare(&m, &url, &[StatusCode::OK]).await?;
        let headers = resp.headers().clone();
        let next = match header_str(&headers, "Link").and_then(next_link) {
            Some(link) => Some(resolve_location(&url, &link)?),
            None => None,
        };
        let body = resp.bytes().await.map_err(|source| ClientError::Http {
            method: m.clone(),
            url: url.to_string(),
            source: source.without_url(),
        })?;
        let value = serde_json::from_slice(&body)
            .map_err(|e| protocol(&m, &url, format!("invalid JSON body: {e}")))?;
        Ok((value, next, headers))
    }

    /// One page of tags: `GET /v2/<repo>/tags/list[?n=<n>][&last=<last>]`.
    pub async fn list_tags_page(
        &self,
        repo: &RepoName,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<TagPage> {
        let mut url = self.repo_url(repo, "tags/list")?;
        add_paging(&mut url, n, last);
        self.tags_page_at(url).await
    }

    /// The tag page at `url` (e.g. a previous page's `next`).
    pub async fn tags_page_at(&self, url: Url) -> Result<TagPage> {
        let (body, next, _) = self.json_page::<TagsBody>(url).await?;
        Ok(TagPage {
            name: body.name,
            tags: body.tags.unwrap_or_default(),
            next,
        })
    }

    /// All tags of `repo`, following `Link` headers.
    pub async fn list_tags(&self, repo: &RepoName) -> Result<Vec<String>> {
        let mut page = self.list_tags_page(repo, None, None).await?;
        let mut tags = std::mem::take(&mut page.tags);
        let mut seen = HashSet::new();
        while let Some(next) = page.next.take() {
            check_progress(&mut seen, &next)?;
            page = self.tags_page_at(next).await?;
            tags.append(&mut page.tags);
        }
        Ok(tags)
    }

    /// One page of the catalog: `GET /v2/_catalog[?n=<n>][&last=<last>]`.
    pub async fn catalog_page(&self, n: Option<usize>, last: Option<&str>) -> Result<CatalogPage> {
        let mut url = self.url("/v2/_catalog")?;
        add_paging(&mut url, n, last);
        self.catalog_page_at(url).await
    }

    /// The catalog page at `url`.
    pub async fn catalog_page_at(&self, url: Url) -> Result<CatalogPage> {
        let (body, next, _) = self.json_page::<CatalogBody>(url).await?;
        Ok(CatalogPage {
            repositories: body.repositories.unwrap_or_default(),
            next,
        })
    }

    /// Every repository in the catalog, following `Link` headers.
    pub async fn catalog(&self) -> Result<Vec<String>> {
        let mut page = self.catalog_page(None, None).await?;
        let mut repos = std::mem::take(&mut page.repositories);
        let mut seen = HashSet::new();
        while let Some(next) = page.next.take() {
            check_progress(&mut seen, &next)?;
            page = self.catalog_page_at(next).await?;
            repos.append(&mut page.repositories);
        }
        Ok(repos)
    }

    /// `GET /v2/<repo>/referrers/<digest>[?artifactType=<t>]`, all pages.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Referrers> {
        let mut url = self.repo_url(repo, &format!("referrers/{digest}"))?;
        if let Some(t) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let mut out = Referrers {
            manifests: Vec::new(),
            filters_applied: Vec::new(),
        };
        let mut seen = HashSet::new();
        let mut next = Some(url);
        while let Some(url) = next.take() {
            check_progress(&mut seen, &url)?;
            let (mut body, link, headers) = self.json_page::<IndexBody>(url).await?;
            out.manifests.append(&mut body.manifests);
            if let Some(v) = header_str(&headers, super::OCI_FILTERS_APPLIED_HEADER) {
                for f in v.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    if !out.filters_applied.iter().any(|x| x == f) {
                        out.filters_applied.push(f.to_string());
                    }
                }
            }
            next = link;
        }
        Ok(out)
    }
}

fn add_paging(url: &mut Url, n: Option<usize>, last: Option<&str>) {
    if n.is_none() && last.is_none() {
        return;
    }
    let mut q = url.query_pairs_mut();
    if let Some(n) = n {
        q.append_pair("n", &n.to_string());
    }
    if let Some(last) = last {
        q.append_pair("last", last);
    }
}

/// Refuse pagination loops and endless listings.
fn check_progress(seen: &mut HashSet<Url>, next: &Url) -> Result<()> {
    if seen.len() >= MAX_PAGES || !seen.insert(next.clone()) {
        return Err(protocol(
            &Method::GET,
            next,
            "pagination does not progress (repeated or too many Link pages)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_parameters_are_encoded() {
        let mut url = Url::parse("https://r/v2/a/tags/list").unwrap();
        add_paging(&mut url, Some(2), Some("v1+b"));
        assert_eq!(url.query(), Some("n=2&last=v1%2Bb"));
        let mut url = Url::parse("https://r/v2/_catalog").unwrap();
        add_paging(&mut url, None, None);
        assert_eq!(url.query(), None);
    }

    #[test]
    fn pagination_loops_are_refused() {
        let mut seen = HashSet::new();
        let u = Url::parse("https://r/v2/_catalog?n=1&last=a").unwrap();
        assert!(check_progress(&mut seen, &u).is_ok());
        assert!(check_progress(&mut seen, &u).is_err());
    }

    #[test]
    fn tag_bodies_accept_null_tags() {
        let body: TagsBody = serde_json::from_str(r#"{"name":"a","tags":null}"#).unwrap();
        assert_eq!(body.tags.unwrap_or_default(), Vec::<String>::new());
    }
}
