//! The upstream HTTP/1.1 response-head parser and the body decoder it selects, fed in reads of
//! every size.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| certgate_gateway::fuzzing::backend_response(input));
