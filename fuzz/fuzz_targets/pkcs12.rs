//! PKCS#12 import: any bytes are a certificate with its key or a Pkcs12Error. The first byte
//! picks the password (empty, the corpus files' `p`, or a wrong one).
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let Some((&choice, der)) = input.split_first() else { return };
    let password = ["", "p", "wrong"][usize::from(choice % 3)];
    if let Ok(imported) = certgate_pki::import_pkcs12(der, password) {
        assert!(!imported.chain.is_empty(), "an import always has its leaf");
    }
});
