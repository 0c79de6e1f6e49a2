//! Cases where CNCF Distribution 2.8 legitimately differs from distribution-spec v1.1.
//!
//! Distribution 2.8 predates v1.1 of the spec (2024): it has no referrers API, does
//! not return `OCI-Subject`, does not paginate or sort tags, takes no `?tag=` and no
//! SHA-512 manifests, and its router, upload state handling, content negotiation and
//! range errors answer some cases differently. The list was determined by
//! running the suite against Debian's `docker-registry` 2.8.2 (TLS, filesystem storage,
//! deletes enabled); `tests/conformance_distribution.rs` keeps it exact.

/// A case on which Distribution 2.8 does not pass, how, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownDifference {
    /// The case id.
    pub id: &'static str,
    /// `fail`, or `skip` for a case whose optional feature Distribution lacks.
    pub result: &'static str,
    /// Why Distribution 2.8 behaves differently.
    pub reason: &'static str,
}

const fn diff(id: &'static str, reason: &'static str) -> KnownDifference {
    KnownDifference {
        id,
        result: "fail",
        reason,
    }
}

const fn skipped(id: &'static str, reason: &'static str) -> KnownDifference {
    KnownDifference {
        id,
        result: "skip",
        reason,
    }
}

const SIGNED_STATE: &str = "Distribution keeps upload state in an HMAC-signed `_state` query \
     parameter and checks it before the session: an unknown or stale upload URL is \
     `404 BLOB_UPLOAD_INVALID`, not the spec's code";
const ROUTER: &str = "Distribution's router only matches valid repository names; any other \
     path gets a plain-text `404 page not found` instead of `400 NAME_INVALID`";
const NO_SUBJECT: &str = "Distribution 2.8 stores manifests with a `subject` but predates \
     v1.1 and never returns the `OCI-Subject` header";
const TAGS: &str = "Distribution 2.8 lists tags in storage order, unsorted, and ignores `n` \
     and `last` (tag pagination and the `Link` header came with Distribution 3)";
const NO_REFERRERS: &str = "Distribution 2.8 has no referrers API: \
     `/v2/<name>/referrers/<digest>` is `404 page not found`";

const NO_TAG_QUERY: &str = "Distribution 2.8 ignores `?tag=` on a push by digest (a MAY of \
     v1.1): the manifest is stored, no tag is created";
const SHA512_MANIFESTS: &str = "Distribution 2.8 digests manifests with SHA-256 only: a push \
     by a SHA-512 digest is `400 DIGEST_INVALID`, which the spec allows for an algorithm \
     a registry does not support";
const NO_DETECTION: &str = "Distribution 2.8 refuses a manifest without `mediaType` pushed \
     as `application/json` (or untyped) with `400 MANIFEST_INVALID`: it does not tell the \
     type from the content";
const RANGE_416: &str = "Distribution 2.8 answers 416 but keeps the blob's size in \
     `Content-Length` over a 14-33 byte text body, a malformed response (HTTP/2 stream \
     error; HTTP/1.1 clients wait for the missing bytes); for `bytes=500-0` it also sends \
     no `Content-Range`";

/// Case ids that do not pass in a run against Debian's docker-registry 2.8.2.
pub const KNOWN_DISTRIBUTION_DIFFERENCES: &[KnownDifference] = &[
    diff("push/upload/unknown-session-404", SIGNED_STATE),
    diff("push/chunked/retry-chunk-416", SIGNED_STATE),
    diff(
        "push/chunked/out-of-order-416",
        "Distribution 2.8 ignores the start of `Content-Range` on PATCH and appends the \
         chunk (202, `Range: 0-99` for bytes sent as 100-199); v1.1 requires 416",
    ),
    diff("pull/blob/range-invalid-416", RANGE_416),
    diff("pull/blob/range-past-end-416", RANGE_416),
    diff(
        "pull/accept/any-200",
        "Distribution 2.8 serves an OCI manifest only to clients naming its type: \
         `Accept: */*` gets `404 MANIFEST_UNKNOWN` (\"OCI manifest found, but accept header \
         does not support OCI manifests\")",
    ),
    diff("push/manifest/tag-query-201", NO_TAG_QUERY),
    skipped("push/manifest/tag-query-oci-tag-header", NO_TAG_QUERY),
    skipped("push/manifest/sha512-by-digest-201", SHA512_MANIFESTS),
    skipped("push/manifest/sha512-tag-keeps-digest", SHA512_MANIFESTS),
    diff("push/manifest/detect-type-image", NO_DETECTION),
    diff("push/manifest/detect-type-no-content-type", NO_DETECTION),
    diff("push/manifest/detect-type-index", NO_DETECTION),
    diff("push/name/uppercase-400", ROUTER),
    diff("push/name/double-dot-400", ROUTER),
    diff("push/name/trailing-separator-400", ROUTER),
    diff("push/name/manifest-uppercase-400", ROUTER),
    diff("push/manifest/subject-oci-subject-header", NO_SUBJECT),
    diff("push/manifest/subject-missing-201", NO_SUBJECT),
    diff("discovery/tags/list-200", TAGS),
    diff("discovery/tags/n-limit", TAGS),
    diff("discovery/tags/link-header", TAGS),
    diff("discovery/tags/last", TAGS),
    diff("discovery/tags/last-without-n", TAGS),
    diff("discovery/tags/n-zero", TAGS),
    diff("discovery/referrers/empty-200", NO_REFERRERS),
    diff("discovery/referrers/list-200", NO_REFERRERS),
    diff("discovery/referrers/filter-artifact-type", NO_REFERRERS),
    diff("discovery/referrers/missing-subject-200", NO_REFERRERS),
    diff("discovery/referrers/client-list", NO_REFERRERS),
    diff("discovery/referrers/invalid-digest-400", NO_REFERRERS),
    diff("discovery/referrers/index-subject", NO_REFERRERS),
    diff("management/referrers/delete-updates-list", NO_REFERRERS),
    diff(
        "management/tag/delete-202",
        "Distribution 2.8 cannot delete a tag alone: DELETE /v2/<name>/manifests/<tag> is \
         `400 DIGEST_INVALID`; the spec allows refusing with 400 only as `UNSUPPORTED` (or 405)",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_categorised() {
        let mut seen = HashSet::new();
        for k in KNOWN_DISTRIBUTION_DIFFERENCES {
            assert!(seen.insert(k.id), "{} listed twice", k.id);
            let category = k.id.split('/').next().unwrap_or_default();
            assert!(
                category.parse::<crate::report::Category>().is_ok(),
                "{}",
                k.id
            );
            assert!(!k.reason.is_empty());
            assert!(["fail", "skip"].contains(&k.result), "{}", k.id);
        }
    }
}
