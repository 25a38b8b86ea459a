//! Every PKCS#12 variant the contract names, written at test time by the openssl CLI, imported,
//! and checked against openssl's own SHA-1 fingerprint.
#![allow(clippy::unwrap_used)]

use certgate_pki::{Pkcs12Error, import_pkcs12};
use certgate_testkit::{Identity, KeyKind, PfxFlavor, openssl_sha1_fingerprint, pfx, pfx_from_pairs, pfx_without_key};

fn assert_imports(leaf: &Identity, chain: &[&Identity], password: &str, flavor: PfxFlavor) {
    let file = pfx(leaf, chain, password, flavor);
    let imported = import_pkcs12(&file, password).unwrap_or_else(|e| panic!("{flavor:?}: {e}"));
    assert_eq!(imported.thumbprint.as_str(), openssl_sha1_fingerprint(&leaf.cert_pem), "{flavor:?}");
    assert_eq!(imported.chain[0], leaf.cert_der, "the leaf comes first");
    assert_eq!(imported.chain.len(), 1 + chain.len(), "{flavor:?}: chain kept");
    assert!(imported.warnings.is_empty());
}

#[test]
fn every_protection_flavor_imports() {
    let leaf = Identity::self_signed_client("flavors", KeyKind::EcdsaP256);
    for flavor in [PfxFlavor::Modern, PfxFlavor::Legacy, PfxFlavor::TripleDes, PfxFlavor::Unprotected] {
        assert_imports(&leaf, &[], "p@ss wörd", flavor);
    }
}

#[test]
fn password_less_files_import() {
    let leaf = Identity::self_signed_client("no-password", KeyKind::EcdsaP256);
    assert_imports(&leaf, &[], "", PfxFlavor::Modern);
    assert_imports(&leaf, &[], "", PfxFlavor::Legacy);
}

#[test]
fn every_key_type_imports() {
    for kind in [KeyKind::Rsa2048, KeyKind::Rsa4096, KeyKind::EcdsaP256, KeyKind::EcdsaP384] {
        let leaf = Identity::self_signed_client(&format!("{kind:?}"), kind);
        assert_imports(&leaf, &[], "p", PfxFlavor::Modern);
        assert_imports(&leaf, &[], "p", PfxFlavor::Legacy);
    }
}

#[test]
fn chain_is_ordered_leaf_to_root() {
    let root = Identity::ca("Test Root");
    let intermediate = root.intermediate("Test Intermediate");
    let leaf = intermediate.client("chained-client", KeyKind::Rsa2048);
    // openssl writes the -certfile certificates in the order given; give them root-first so the
    // import has to order them itself.
    let file = pfx(&leaf, &[&root, &intermediate], "p", PfxFlavor::Modern);
    let imported = import_pkcs12(&file, "p").unwrap();
    assert_eq!(imported.chain, vec![leaf.cert_der.clone(), intermediate.cert_der.clone(), root.cert_der.clone()]);
    assert_eq!(imported.subject, "CN=chained-client, O=certgate tests");
}

#[test]
fn wrong_password_says_password() {
    let leaf = Identity::self_signed_client("pw", KeyKind::EcdsaP256);
    for flavor in [PfxFlavor::Modern, PfxFlavor::Legacy] {
        let err = import_pkcs12(&pfx(&leaf, &[], "right", flavor), "wrong").unwrap_err();
        assert_eq!(err, Pkcs12Error::WrongPassword);
        assert!(err.to_string().contains("password"));
    }
}

#[test]
fn truncated_and_foreign_data_are_not_pkcs12() {
    let leaf = Identity::self_signed_client("trunc", KeyKind::EcdsaP256);
    let file = pfx(&leaf, &[], "p", PfxFlavor::Modern);
    assert!(matches!(import_pkcs12(&file[..file.len() / 2], "p"), Err(Pkcs12Error::NotPkcs12(_))));
    assert!(matches!(import_pkcs12(b"hello world", "p"), Err(Pkcs12Error::NotPkcs12(_))));
    assert_eq!(import_pkcs12(leaf.cert_pem.as_bytes(), "p").unwrap_err(), Pkcs12Error::PemNotPkcs12);
    assert!(matches!(import_pkcs12(&leaf.cert_der, "p"), Err(Pkcs12Error::NotPkcs12(_))));
}

#[test]
fn certificate_without_key_is_rejected() {
    let leaf = Identity::self_signed_client("nokey", KeyKind::EcdsaP256);
    assert_eq!(import_pkcs12(&pfx_without_key(&leaf, "p"), "p").unwrap_err(), Pkcs12Error::NoPrivateKey);
}

#[test]
fn key_not_matching_the_certificate_is_rejected() {
    let a = Identity::self_signed_client("a", KeyKind::EcdsaP256);
    let b = Identity::self_signed_client("b", KeyKind::EcdsaP256);
    let err = import_pkcs12(&pfx_from_pairs(&[(&a, &b)], "p"), "p").unwrap_err();
    assert_eq!(err, Pkcs12Error::KeyMismatch("CN=a, O=certgate tests".into()));
}

#[test]
fn two_leaves_with_keys_are_rejected() {
    let a = Identity::self_signed_client("a", KeyKind::EcdsaP256);
    let b = Identity::self_signed_client("b", KeyKind::EcdsaP256);
    let err = import_pkcs12(&pfx_from_pairs(&[(&a, &a), (&b, &b)], "p"), "p").unwrap_err();
    assert_eq!(err, Pkcs12Error::SeveralKeys(2));
}

#[test]
fn expired_certificate_is_accepted_with_a_warning() {
    let leaf = Identity::expired_client("old");
    let imported = import_pkcs12(&pfx(&leaf, &[], "p", PfxFlavor::Modern), "p").unwrap();
    assert_eq!(imported.warnings, vec!["the certificate expired on 2021-01-01T00:00:00Z".to_owned()]);
}

#[test]
fn ca_import_accepts_pem_and_der_and_refuses_keys() {
    use certgate_pki::{CaImportError, import_ca_certificate};
    let ca = Identity::ca("Private Root");
    let from_pem = import_ca_certificate(ca.cert_pem.as_bytes()).unwrap();
    let from_der = import_ca_certificate(&ca.cert_der).unwrap();
    assert_eq!(from_pem, from_der);
    assert_eq!(from_der.thumbprint.as_str(), openssl_sha1_fingerprint(&ca.cert_pem));
    // The PEM the API returns is what openssl reads, and it imports to the same certificate.
    let pem = certgate_pki::certificate_pem(&ca.cert_der);
    assert_eq!(openssl_sha1_fingerprint(&pem), from_der.thumbprint.as_str());
    assert_eq!(import_ca_certificate(pem.as_bytes()).unwrap(), from_der);
    assert!(pem.lines().all(|line| line.len() <= 64), "wrapped at 64 columns");
    let with_key = format!("{}{}", ca.cert_pem, ca.key_pem);
    assert_eq!(import_ca_certificate(with_key.as_bytes()).unwrap_err(), CaImportError::CarriesPrivateKey);
    let leaf = Identity::self_signed_client("pfx", KeyKind::EcdsaP256);
    assert_eq!(
        import_ca_certificate(&pfx(&leaf, &[], "p", PfxFlavor::Modern)).unwrap_err(),
        CaImportError::CarriesPrivateKey
    );
}

/// The forms a key's bytes could take in a `Debug` line: hex, base64, or Rust's list of numbers,
/// of a 16-byte run that is private (an EC PKCS#8 file also holds the public key, which the
/// certificate shows).
fn key_forms(der: &[u8], certificate: &[u8]) -> Vec<String> {
    use base64::Engine;
    let private = |run: &&[u8]| !certificate.windows(run.len()).any(|window| window == *run);
    let run = der.windows(16).find(private).expect("a key has bytes of its own");
    vec![
        run.iter().map(|b| format!("{b:02x}")).collect(),
        run.iter().map(|b| format!("{b:02X}")).collect(),
        base64::engine::general_purpose::STANDARD.encode(der),
        run.iter().map(u8::to_string).collect::<Vec<_>>().join(", "),
    ]
}

#[test]
fn debug_output_of_imported_material_and_identities_never_shows_the_key_or_password() {
    let leaf = Identity::self_signed_client("debug.contoso.com", KeyKind::EcdsaP256);
    let password = "debug-pass-6620";
    let imported = certgate_pki::import_pkcs12(&pfx(&leaf, &[], password, PfxFlavor::Modern), password).unwrap();
    let identity = certgate_pki::ClientIdentity::from_der(&imported.chain, &imported.private_key);
    let pem = certgate_pki::import_pem(&leaf.cert_pem, &leaf.key_pem).unwrap();
    for debug in [format!("{imported:?}"), format!("{identity:?}"), format!("{pem:?}")] {
        assert!(debug.contains("debug.contoso.com") || debug.contains("ClientIdentity"), "says what it is: {debug}");
        assert!(!debug.contains(password), "{debug}");
        for form in key_forms(&leaf.key_der(), &leaf.cert_der) {
            assert!(!debug.contains(&form), "a key form in {debug}");
        }
    }
}
