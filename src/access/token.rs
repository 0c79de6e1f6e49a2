//! Docker registry token authentication: short-lived ES256 JWTs signed with a P-256 key.
//!
//! Claims: `iss` ([`ISSUER`]), `sub` (the identity; `""` for anonymous), `aud` (the
//! service name of the challenge), `exp`, `nbf`, `iat`, `jti` and `access` (see
//! [`super::scope`]). Verification checks the signature, the algorithm, the times (with
//! [`LEEWAY_SECS`] of clock skew), the issuer and the audience.

use super::action::Action;
use super::identity::Identity;
use super::scope::{access_allows, AccessEntry};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `iss` of every token imgflow signs.
pub const ISSUER: &str = "imgflow";
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 5;

/// The claims of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer, [`ISSUER`].
    pub iss: String,
    /// Subject: the signed-in name, `""` for anonymous.
    pub sub: String,
    /// Audience: the service name.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Not before.
    pub nbf: u64,
    /// Issued at.
    pub iat: u64,
    /// Unique token id.
    pub jti: String,
    /// What the token grants.
    pub access: Vec<AccessEntry>,
}

impl Claims {
    /// The identity the token speaks for.
    pub fn identity(&self) -> Identity {
        if self.sub.is_empty() {
            Identity::Anonymous
        } else {
            Identity::user(self.sub.clone())
        }
    }
}

/// Whether `claims` allow `action` on `repo`.
pub fn token_allows(claims: &Claims, action: Action, repo: &str) -> bool {
    access_allows(&claims.access, action, repo)
}

/// The body `/token` answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The JWT.
    pub token: String,
    /// The same JWT (OAuth 2 name, used by some clients).
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// When it was issued, RFC 3339.
    pub issued_at: String,
}

/// Token errors; each way a token can be bad has its own variant.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The key file could not be read or written.
    #[error("token key {path}: {source}")]
    KeyFile {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The key file is not a PKCS#8 P-256 key.
    #[error("token key {path} is not a PEM PKCS#8 P-256 key: {message}")]
    BadKey {
        /// File.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Signing failed.
    #[error("cannot sign a token: {0}")]
    Sign(String),
    /// Not a JWT, or not one of ours (algorithm, issuer, claims).
    #[error("malformed token")]
    Malformed,
    /// The signature does not match: tampered or signed with another key.
    #[error("token signature is invalid")]
    BadSignature,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
    /// Not valid yet.
    #[error("token not valid yet")]
    NotYetValid,
    /// Issued for another service.
    #[error("token issued for another service")]
    WrongAudience,
}

/// The signing and verification keys.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys").field("ttl", &self.ttl).finish()
    }
}

impl TokenKeys {
    /// Load the key at `path`, generating a P-256 key there (mode 0600) when the file is
    /// missing; tokens live `ttl`.
    pub fn load_or_generate(path: &Path, ttl: Duration) -> Result<TokenKeys, TokenError> {
        let key_file = |source| TokenError::KeyFile {
            path: path.to_path_buf(),
            source,
        };
        let pem = match std::fs::read_to_string(path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pem = generate_pem(path)?;
                write_private(path, &pem).map_err(key_file)?;
                pem
            }
            Err(e) => return Err(key_file(e)),
        };
        TokenKeys::from_pem(&pem, ttl).map_err(|message| TokenError::BadKey {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Keys from a PEM PKCS#8 P-256 private key.
    pub fn from_pem(pem: &str, ttl: Duration) -> Result<TokenKeys, String> {
        let pair = rcgen::KeyPair::from_pem(pem).map_err(|e| e.to_string())?;
        if !pair.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
            return Err("not a P-256 ECDSA key".into());
        }
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
        let decoding = DecodingKey::from_ec_pem(pair.public_key_pem().as_bytes())
            .map_err(|e| e.to_string())?;
        Ok(TokenKeys {
            encoding,
            decoding,
            ttl,
        })
    }

    /// A token for `id` and service `service` granting `access`, valid from now.
    pub fn issue(
        &self,
        id: &Identity,
        service: &str,
        access: Vec<AccessEntry>,
    ) -> Result<TokenResponse, TokenError> {
        self.issue_at(id, service, access, SystemTime::now())
    }

    /// As [`TokenKeys::issue`], as if it were `now`.
    pub fn issue_at(
        &self,
        id: &Identity,
        service: &str,
        access: Vec<AccessEntry>,
        now: SystemTime,
    ) -> Result<TokenResponse, TokenError> {
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims = Claims {
            iss: ISSUER.to_string(),
            sub: id.name().unwrap_or("").to_string(),
            aud: service.to_string(),
            exp: iat + self.ttl.as_secs(),
            nbf: iat,
            iat,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            access,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.encoding)
            .map_err(|e| TokenError::Sign(e.to_string()))?;
        let issued_at = time::OffsetDateTime::from(now)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Ok(TokenResponse {
            access_token: token.clone(),
            token,
            expires_in: self.ttl.as_secs(),
            issued_at,
        })
    }

    /// Check `token` (signature, algorithm, times, issuer, audience `service`) and return
    /// its claims.
    pub fn verify(&self, token: &str, service: &str) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let mut v = Validation::new(Algorithm::ES256);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        v.set_audience(&[service]);
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &v) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey => {
                    TokenError::BadSignature
                }
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                _ => TokenError::Malformed,
            }),
        }
    }
}

fn generate_pem(path: &Path) -> Result<String, TokenError> {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map(|k| k.serialize_pem())
        .map_err(|e| TokenError::BadKey {
            path: path.to_path_buf(),
            message: format!("cannot generate: {e}"),
        })
}

/// Create `path` (and its directory) with mode 0600 holding `text`; never overwrites.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
