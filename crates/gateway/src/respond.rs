use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

/// APIM's gateway body for a request that no API matches.
pub(crate) fn not_found() -> Response<Full<Bytes>> {
    json(StatusCode::NOT_FOUND, r#"{"statusCode":404,"message":"Resource not found"}"#)
}

fn json(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
