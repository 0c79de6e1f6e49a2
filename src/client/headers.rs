//! Header helpers: `Location` resolution, `Link` pagination and upload `Range` parsing.

use super::error::{ClientError, Result};
use reqwest::Url;

/// Resolve a `Location` (or `Link`) value against the URL of the request that returned it.
///
/// RFC 7231 allows absolute URLs, absolute paths (`/v2/...`) and relative references;
/// the query string of the value (e.g. upload state) is kept as is.
pub fn resolve_location(request_url: &Url, location: &str) -> Result<Url> {
    let location = location.trim();
    if location.is_empty() {
        return Err(ClientError::InvalidUrl {
            url: location.to_string(),
            reason: "empty Location".to_string(),
        });
    }
    request_url
        .join(location)
        .map_err(|e| ClientError::InvalidUrl {
            url: location.to_string(),
            reason: e.to_string(),
        })
}

/// The target of the `rel="next"` link in a `Link` header value (RFC 8288), if any.
///
/// Several links may be given, separated by commas; parameters may be quoted or not.
pub fn next_link(header: &str) -> Option<String> {
    let mut rest = header;
    loop {
        let start = rest.find('<')?;
        let end = start + rest[start..].find('>')?;
        let target = &rest[start + 1..end];
        let after = &rest[end + 1..];
        // The parameters of this link run up to the next link's '<'.
        let params_end = after.find('<').unwrap_or(after.len());
        let params = &after[..params_end];
        let is_next = params.split(';').any(|p| {
            let Some((k, v)) = p.split_once('=') else {
                return false;
            };
            k.trim().eq_ignore_ascii_case("rel")
                && v.trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.to_string());
        }
        rest = &after[params_end..];
    }
}

/// Parse an upload progress `Range` header (`0-<end>`, also `bytes=0-<end>`).
///
/// Returns the number of bytes the registry holds, i.e. `end + 1`. A registry
/// holding no bytes may answer `0-0` (ambiguous in the spec) or `0--1`; both read as
/// "at most 1 byte", so callers compare with what they sent.
pub fn parse_upload_range(value: &str) -> Option<u64> {
    let v = value.trim();
    let v = v.strip_prefix("bytes=").unwrap_or(v);
    let (start, end) = v.split_once('-')?;
    if start.trim() != "0" {
        return None;
    }
    let end = end.trim();
    if end == "-1" {
        return Some(0);
    }
    end.parse::<u64>().ok().map(|e| e + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://127.0.0.1:5000/v2/team/app/blobs/uploads/").unwrap()
    }

    #[test]
    fn resolves_absolute_and_relative_locations() {
        let b = base();
        assert_eq!(
            resolve_location(&b, "/v2/team/app/blobs/uploads/abc?_state=x%3D")
                .unwrap()
                .as_str(),
            "https://127.0.0.1:5000/v2/team/app/blobs/uploads/abc?_state=x%3D"
        );
        assert_eq!(
            resolve_location(&b, "https://uploads.example:443/u/1")
                .unwrap()
                .as_str(),
            "https://uploads.example/u/1"
        );
        assert_eq!(
            resolve_location(&b, "abc").unwrap().as_str(),
            "https://127.0.0.1:5000/v2/team/app/blobs/uploads/abc"
        );
        assert_eq!(
            resolve_location(&b, " /v2/x/blobs/sha256:00 ")
                .unwrap()
                .path(),
            "/v2/x/blobs/sha256:00"
        );
        assert!(resolve_location(&b, "").is_err());
        assert!(resolve_location(&b, "http://[::1").is_err());
    }

    #[test]
    fn finds_the_next_link() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=b&n=2")
        );
        assert_eq!(
            next_link(r#"<https://r/v2/_catalog?n=1&last=a>;rel=next"#).as_deref(),
            Some("https://r/v2/_catalog?n=1&last=a")
        );
        assert_eq!(
            next_link(r#"</prev>; rel="prev", </next?x=1>; title="n"; rel="next""#).as_deref(),
            Some("/next?x=1")
        );
        assert_eq!(next_link(r#"</p>; rel="prev""#), None);
        assert_eq!(next_link(""), None);
        assert_eq!(next_link("</broken; rel=next"), None);
    }

    #[test]
    fn parses_upload_ranges() {
        assert_eq!(parse_upload_range("0-1023"), Some(1024));
        assert_eq!(parse_upload_range("bytes=0-9"), Some(10));
        assert_eq!(parse_upload_range("0-0"), Some(1));
        assert_eq!(parse_upload_range("0--1"), Some(0));
        assert_eq!(parse_upload_range("5-9"), None);
        assert_eq!(parse_upload_range("garbage"), None);
    }
}
