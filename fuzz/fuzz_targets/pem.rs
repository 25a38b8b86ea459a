//! PEM import: a certificate chain and a key, separated by the first NUL byte.
#![no_main]

libfuzzer_sys::fuzz_target!(|text: &str| {
    let (chain, key) = text.split_once('\0').unwrap_or((text, ""));
    if let Ok(imported) = certgate_pki::import_pem(chain, key) {
        assert!(!imported.chain.is_empty(), "an import always has its leaf");
    }
});
