use super::*;
use crate::access::scope::AccessEntry;
use base64::Engine;

fn keys() -> TokenKeys {
    let pem = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem();
    TokenKeys::from_pem(&pem, Duration::from_secs(300)).unwrap()
}

fn pull(repo: &str) -> Vec<AccessEntry> {
    vec![AccessEntry {
        resource_type: "repository".into(),
        name: repo.into(),
        actions: vec!["pull".into()],
    }]
}

#[test]
fn round_trip_carries_identity_audience_and_access() {
    let k = keys();
    let r = k
        .issue(&Identity::user("carol"), "reg.example", pull("team/app"))
        .unwrap();
    assert_eq!(r.token, r.access_token);
    assert_eq!(r.expires_in, 300);
    assert!(r.issued_at.ends_with('Z'), "{}", r.issued_at);
    let c = k.verify(&r.token, "reg.example").unwrap();
    assert_eq!(c.identity(), Identity::user("carol"));
    assert_eq!((c.iss.as_str(), c.aud.as_str()), (ISSUER, "reg.example"));
    assert_eq!(c.exp - c.iat, 300);
    assert_eq!(c.nbf, c.iat);
    assert!(!c.jti.is_empty());
    assert!(token_allows(&c, Action::Pull, "team/app"));
    assert!(!token_allows(&c, Action::Push, "team/app"));
    assert!(!token_allows(&c, Action::Pull, "other"));
    // ES256 in the header.
    let header = r.token.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    assert!(String::from_utf8(header).unwrap().contains("ES256"));
    // Anonymous tokens have an empty subject; two tokens differ in jti.
    let a = k
        .issue(&Identity::Anonymous, "reg.example", vec![])
        .unwrap();
    let ca = k.verify(&a.token, "reg.example").unwrap();
    assert_eq!(ca.sub, "");
    assert_eq!(ca.identity(), Identity::Anonymous);
    assert_ne!(ca.jti, c.jti);
}

#[test]
fn tampered_tokens_fail_on_the_signature() {
    let k = keys();
    let t = k
        .issue(&Identity::user("dave"), "svc", pull("a"))
        .unwrap()
        .token;
    let parts: Vec<&str> = t.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: serde_json::Value =
        serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["access"][0]["actions"] = serde_json::json!(["pull", "push", "delete"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    );
    assert!(matches!(
        k.verify(&forged, "svc"),
        Err(TokenError::BadSignature)
    ));
    // Signed with another key.
    let other = keys()
        .issue(&Identity::user("dave"), "svc", pull("a"))
        .unwrap()
        .token;
    assert!(matches!(
        k.verify(&other, "svc"),
        Err(TokenError::BadSignature)
    ));
    // Not a token at all; or `alg: none`.
    assert!(matches!(k.verify("abc", "svc"), Err(TokenError::Malformed)));
    let none = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    assert!(k.verify(&none, "svc").is_err());
}

#[test]
fn expired_future_and_wrong_audience_tokens_fail_distinctly() {
    let k = keys();
    let id = Identity::user("dave");
    let long_ago = SystemTime::now() - Duration::from_secs(301 + LEEWAY_SECS);
    let t = k.issue_at(&id, "svc", vec![], long_ago).unwrap().token;
    assert!(matches!(k.verify(&t, "svc"), Err(TokenError::Expired)));
    // Within the leeway it is still good.
    let recent = SystemTime::now() - Duration::from_secs(300 + LEEWAY_SECS - 3);
    let t = k.issue_at(&id, "svc", vec![], recent).unwrap().token;
    assert!(k.verify(&t, "svc").is_ok());
    let later = SystemTime::now() + Duration::from_secs(60);
    let t = k.issue_at(&id, "svc", vec![], later).unwrap().token;
    assert!(matches!(k.verify(&t, "svc"), Err(TokenError::NotYetValid)));
    let t = k.issue(&id, "svc", vec![]).unwrap().token;
    assert!(matches!(
        k.verify(&t, "other-svc"),
        Err(TokenError::WrongAudience)
    ));
}

#[test]
fn key_file_is_generated_once_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("certs/token.key");
    let ttl = Duration::from_secs(60);
    let k1 = TokenKeys::load_or_generate(&path, ttl).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("BEGIN PRIVATE KEY"));
    // Loaded again: the same key verifies the first one's tokens.
    let k2 = TokenKeys::load_or_generate(&path, ttl).unwrap();
    let t = k1.issue(&Identity::Anonymous, "svc", vec![]).unwrap().token;
    assert!(k2.verify(&t, "svc").is_ok());
    std::fs::write(&path, "not a key").unwrap();
    assert!(matches!(
        TokenKeys::load_or_generate(&path, ttl),
        Err(TokenError::BadKey { .. })
    ));
    // Another curve is refused.
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    assert!(TokenKeys::from_pem(&p384.serialize_pem(), ttl).is_err());
}
