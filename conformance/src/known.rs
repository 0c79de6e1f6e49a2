//! Cases where CNCF Distribution 2.8 legitimately differs from distribution-spec v1.1.
//!
//! Distribution 2.8 predates v1.1 of the spec (2024): it has no referrers API, does
//! not return `OCI-Subject`, does not paginate or sort tags, and its router and upload
//! state handling answer some error cases differently. The list was determined by
//! running the suite against Debian's `docker-registry` 2.8.2 (TLS, filesystem storage,
//! deletes enabled); `tests/conformance_distribution.rs` keeps it exact.

/// A case id on which Distribution 2.8 fails, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownDifference {
    /// The case id.
    pub id: &'static str,
    /// Why Distribution 2.8 behaves differently.
    pub reason: &'static str,
}

const fn diff(id: &'static str, reason: &'static str) -> KnownDifference {
    KnownDifference { id, reason }
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

/// Failing case ids of a run against Debian's docker-registry 2.8.2.
pub const KNOWN_DISTRIBUTION_DIFFERENCES: &[KnownDifference] = &[
    diff("push/upload/unknown-session-404", SIGNED_STATE),
    diff("push/chunked/retry-chunk-416", SIGNED_STATE),
    diff(
        "push/chunked/out-of-order-416",
        "Distribution 2.8 ignores the start of `Content-Range` on PATCH and appends the \
         chunk (202, `Range: 0-99` for bytes sent as 100-199); v1.1 requires 416",
    ),
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
        }
    }
}
