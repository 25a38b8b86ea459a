//! Entry points for the fuzz targets (`fuzz/`, built with the `fuzzing` feature): the `$filter`
//! parser. Not an API.

/// A `$filter` expression over the fields certificates are filtered by; a bad one is a 400,
/// never a panic.
pub fn filter(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let _ = crate::list::Filter::parse(&text, &["name", "subject", "thumbprint", "expirationDate"]);
}
