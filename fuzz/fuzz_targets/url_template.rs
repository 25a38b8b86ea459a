//! Operation URL templates: parsing, matching a path and filling a rewrite.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| certgate_gateway::fuzzing::url_template(input));
