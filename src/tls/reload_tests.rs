use super::*;
use crate::tls::{generate, CertPaths};

/// A fresh certificate directory with a generated pair.
fn pair_in(dir: &Path) -> CertPaths {
    let paths = CertPaths::in_dir(dir);
    generate(&paths, &["localhost".to_string()]).unwrap();
    paths
}

fn leaf(live: &LiveTls) -> Vec<u8> {
    live.certificate().cert[0].to_vec()
}

#[test]
fn a_new_pair_is_served_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let paths = pair_in(&dir.path().join("live"));
    let live = LiveTls::load(&paths, None).unwrap();
    let config = live.current();
    let first = leaf(&live);
    assert!(!live.check(), "nothing changed yet");

    // A new pair: served, in the same configuration.
    let next = pair_in(&dir.path().join("next"));
    std::fs::copy(&next.cert, &paths.cert).unwrap();
    std::fs::copy(&next.key, &paths.key).unwrap();
    assert!(live.check());
    let second = leaf(&live);
    assert_ne!(first, second, "the new certificate must be served");
    assert!(Arc::ptr_eq(&config, &live.current()));

    // A key that is not the certificate's: refused, the current pair stays.
    let other = pair_in(&dir.path().join("other"));
    std::fs::copy(&other.key, &paths.key).unwrap();
    assert!(live.check());
    assert_eq!(leaf(&live), second);
    assert!(
        !live.check(),
        "a refused pair is not retried until it changes"
    );

    // Garbage: refused too.
    std::fs::write(&paths.cert, b"not a certificate").unwrap();
    assert!(live.check());
    assert_eq!(leaf(&live), second);

    // Then a good pair again.
    std::fs::copy(&other.cert, &paths.cert).unwrap();
    assert!(live.check());
    assert_ne!(leaf(&live), second);
}

#[test]
fn a_changed_client_ca_swaps_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let paths = pair_in(&dir.path().join("live"));
    let ca_a = pair_in(&dir.path().join("a")).ca;
    let ca_b = pair_in(&dir.path().join("b")).ca;
    let client_ca = dir.path().join("clients.crt");
    std::fs::copy(&ca_a, &client_ca).unwrap();
    let live = LiveTls::load(&paths, Some(&client_ca)).unwrap();
    let before = live.current();

    std::fs::write(&client_ca, b"garbage").unwrap();
    assert!(live.check());
    assert!(
        Arc::ptr_eq(&before, &live.current()),
        "a broken CA is refused"
    );

    std::fs::copy(&ca_b, &client_ca).unwrap();
    assert!(live.check());
    assert!(!Arc::ptr_eq(&before, &live.current()));
}

#[test]
fn a_missing_client_ca_is_a_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let paths = pair_in(&dir.path().join("live"));
    let e = LiveTls::load(&paths, Some(&dir.path().join("absent.crt"))).unwrap_err();
    assert!(e.to_string().contains("absent.crt"), "{e}");
}
