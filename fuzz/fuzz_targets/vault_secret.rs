//! A vault's KV v2 secret and PKI issue answers, decoded into certificate material.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| certgate_vault::fuzzing::secret_payload(input));
