//! The management API's `$filter` parser.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| certgate_admin::fuzzing::filter(input));
