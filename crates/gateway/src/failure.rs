//! Everything that can go wrong on the request path, and the one place that turns it into a
//! response and a log line. Bodies never carry internals; the log line with the same activity
//! id says exactly why.

use bytes::Bytes;
use certgate_pki::{TlsFailure, find_tls_error};
use http::{HeaderValue, Response, StatusCode, header::CONTENT_TYPE};

use crate::body::GatewayBody;
use crate::telemetry::Exchange;
use crate::upstream::UpstreamError;

/// A failed request, classified by what the caller should see.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The backend's TLS handshake failed (untrusted chain, name mismatch, our certificate
    /// rejected). 500, as APIM answers.
    BackendTls(TlsFailure),
    /// The backend could not be reached or broke the exchange. 502.
    BackendUnreachable(String),
    /// No response headers within the forward-request timeout. 504.
    BackendTimeout(std::time::Duration),
    /// The configuration cannot serve this route. 500.
    Configuration(String),
    /// The client's request is ambiguous (Host) or its body broke off or was malformed. 400.
    BadRequest(String),
    /// The request uses a feature the gateway does not forward (a transfer coding). 501.
    NotImplemented(String),
}

impl Failure {
    fn status(&self) -> StatusCode {
        match self {
            Failure::BackendTls(_) | Failure::Configuration(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Failure::BackendUnreachable(_) => StatusCode::BAD_GATEWAY,
            Failure::BackendTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Failure::BadRequest(_) => StatusCode::BAD_REQUEST,
            Failure::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Failure::BackendTls(_) | Failure::BackendUnreachable(_) => "BackendConnectionFailure",
            Failure::BackendTimeout(_) => "BackendTimeout",
            Failure::Configuration(_) => "ConfigurationError",
            Failure::BadRequest(_) => "BadRequest",
            Failure::NotImplemented(_) => "NotImplemented",
        }
    }

    fn cause(&self) -> String {
        match self {
            Failure::BackendTls(tls) => tls.cause.clone(),
            Failure::BackendUnreachable(cause)
            | Failure::Configuration(cause)
            | Failure::BadRequest(cause)
            | Failure::NotImplemented(cause) => cause.clone(),
            Failure::BackendTimeout(after) => format!("no response within {} s", after.as_secs()),
        }
    }

    /// Logs the failure once, with the request's activity id and route, counts a failed
    /// handshake under its reason, and returns the anonymous response.
    pub(crate) fn respond(&self, exchange: &Exchange) -> Response<GatewayBody> {
        let status = self.status();
        let route = exchange.route();
        let reason = match self {
            Failure::BackendTls(tls) => {
                crate::telemetry::handshake_failed(&route.backend, tls.reason);
                tls.reason
            }
            _ => "",
        };
        let activity_id = exchange.activity_id;
        tracing::error!(
            %activity_id,
            error = self.code(),
            reason,
            cause = %self.cause(),
            api = dash_if_empty(&route.api),
            backend = dash_if_empty(&route.backend),
            status = status.as_u16(),
            "request failed"
        );
        let message = match status {
            StatusCode::BAD_GATEWAY => "Bad gateway",
            StatusCode::GATEWAY_TIMEOUT => "Gateway timeout",
            StatusCode::BAD_REQUEST => "Bad request",
            StatusCode::NOT_IMPLEMENTED => "Not implemented",
            _ => "Internal server error",
        };
        json(
            status,
            format!(r#"{{"statusCode":{},"message":"{message}","activityId":"{activity_id}"}}"#, status.as_u16()),
        )
    }
}

fn dash_if_empty(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

/// APIM's gateway answer for a path no API claims.
pub(crate) fn not_found() -> Response<GatewayBody> {
    json(StatusCode::NOT_FOUND, r#"{"statusCode":404,"message":"Resource not found"}"#.to_owned())
}

pub(crate) fn json(status: StatusCode, body: String) -> Response<GatewayBody> {
    let mut response = Response::new(GatewayBody::complete(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Names the TLS cause precisely, wherever in the error chain rustls reported it.
pub(crate) fn classify(error: &UpstreamError) -> Failure {
    if let UpstreamError::RequestBody(_) = error {
        return Failure::BadRequest(certgate_model::error_chain(error));
    }
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(tls) = find_tls_error(e) {
            return Failure::BackendTls(TlsFailure::of(tls));
        }
        current = e.source();
    }
    Failure::BackendUnreachable(certgate_model::error_chain(error))
}
