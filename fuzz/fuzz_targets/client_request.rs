//! The client HTTP/1.1 request-head parser and the body decoder it selects, fed in reads of every
//! size, pipelined requests included.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| certgate_gateway::fuzzing::client_request(input));
