//! Client certificates (mTLS): the identity a verified client certificate carries.
//!
//! rustls verifies the chain against `[tls] client_ca` during the handshake; afterwards
//! the leaf certificate's subject Common Name names the client. A certificate without a
//! Common Name, with an empty one, or with `anonymous` identifies nobody.

use crate::access::identity::{CertIdentity, ANONYMOUS};
use rustls::pki_types::CertificateDer;

/// The identity of a connection whose client presented `chain` (leaf first), as rustls
/// reports it after verifying it; `None` without a certificate or a usable Common Name.
pub fn cert_identity(chain: Option<&[CertificateDer<'_>]>) -> Option<CertIdentity> {
    let leaf = chain?.first()?;
    common_name(leaf)
        .filter(|cn| !cn.is_empty() && cn != ANONYMOUS)
        .map(CertIdentity)
}

/// The first subject Common Name of DER certificate `der`, trimmed; `None` when the
/// certificate does not parse or has no Common Name in UTF-8 or a string type.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    Some(cn.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn cert_with_cn(cn: Option<&str>) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params
            .distinguished_name
            .push(DnType::OrganizationName, "imgflow");
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn the_common_name_identifies_the_client() {
        let node = cert_with_cn(Some("node1"));
        assert_eq!(
            cert_identity(Some(std::slice::from_ref(&node))),
            Some(CertIdentity("node1".into()))
        );
        assert_eq!(common_name(&node).as_deref(), Some("node1"));
    }

    #[test]
    fn no_name_empty_or_anonymous_identifies_nobody() {
        assert_eq!(cert_identity(None), None);
        assert_eq!(cert_identity(Some(&[])), None);
        for cn in [None, Some(""), Some("anonymous")] {
            let c = cert_with_cn(cn);
            assert_eq!(cert_identity(Some(&[c])), None, "{cn:?}");
        }
        assert_eq!(common_name(b"not DER"), None);
    }
}
