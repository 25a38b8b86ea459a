//! Vault secret identifiers and folders (one URL parser): a reference that parses prints as a
//! URL that parses to the same reference.
#![no_main]

use certgate_vault::{SecretFolder, SecretReference};

libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Ok(reference) = SecretReference::parse(text) {
        let again = SecretReference::parse(&reference.to_string()).expect("a printed reference parses");
        assert_eq!(again.to_string(), reference.to_string());
    }
    let _ = SecretFolder::parse(text);
});
