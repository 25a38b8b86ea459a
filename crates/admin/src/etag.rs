//! ETags are the store revision in quotes; `If-Match` is honoured on every write.

use axum::http::{HeaderMap, HeaderValue, header::IF_MATCH};

use crate::ApiError;

/// What `If-Match` asks for: `None` = unconditional (absent or `*`), else a revision.
pub fn expected_revision(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(IF_MATCH) else { return Ok(None) };
    let text = value.to_str().map_err(|_| ApiError::validation("If-Match", "If-Match must be ASCII"))?.trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    // An ETag we never issued can match nothing: that is a 412, not a 400.
    Ok(Some(tag.parse::<i64>().unwrap_or(-1)))
}

pub fn etag(revision: i64) -> HeaderValue {
    #[allow(clippy::expect_used)] // digits and quotes are always a valid header value
    HeaderValue::from_str(&format!("\"{revision}\"")).expect("a quoted integer is a valid header value")
}
