//! Entry points for the fuzz targets (`fuzz/`, built with the `fuzzing` feature): the decoding of
//! a vault's KV v2 and PKI answers into certificate material. Not an API.

/// A vault's answer as JSON bytes, decoded as a KV v2 secret and as a PKI issue response; a
/// failure is a `ReadFailure`, never a panic.
pub fn secret_payload(input: &[u8]) {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(input) else { return };
    let _ = crate::client::fuzzing::parse_secret(&body);
    let _ = crate::client::fuzzing::parse_issued(&body);
}
