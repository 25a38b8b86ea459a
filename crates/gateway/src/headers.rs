//! Header changes and canned responses, compiled once per snapshot: names and values are
//! parsed when the configuration is compiled, so the request path only copies them.

use bytes::Bytes;
use certgate_model::BackendCredentials;
use certgate_policy::{ExistsAction, ReturnResponse, SetHeader};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::body::GatewayBody;

/// A `<set-header>` with its name and values already parsed.
#[derive(Debug, Clone)]
pub(crate) struct HeaderStep {
    name: HeaderName,
    action: ExistsAction,
    values: Vec<HeaderValue>,
}

impl HeaderStep {
    /// `None` (with a log line) when the name or a value cannot be sent in HTTP.
    pub(crate) fn compile(set: &SetHeader) -> Option<Self> {
        let name = HeaderName::from_bytes(set.name.as_bytes()).ok()?;
        let values: Result<Vec<HeaderValue>, _> = set.values.iter().map(|v| HeaderValue::from_str(v)).collect();
        match values {
            Ok(values) => Some(Self { name, action: set.action, values }),
            Err(_) => {
                tracing::warn!(header = %set.name, "a set-header value is not a valid HTTP header value; skipped");
                None
            }
        }
    }

    fn overriding(name: HeaderName, values: Vec<HeaderValue>) -> Self {
        Self { name, action: ExistsAction::Override, values }
    }

    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        match self.action {
            ExistsAction::Delete => {
                headers.remove(&self.name);
            }
            ExistsAction::Skip if headers.contains_key(&self.name) => {}
            ExistsAction::Override | ExistsAction::Skip => {
                headers.remove(&self.name);
                self.append_to(headers);
            }
            ExistsAction::Append => self.append_to(headers),
        }
    }

    fn append_to(&self, headers: &mut HeaderMap) {
        for value in &self.values {
            headers.append(self.name.clone(), value.clone());
        }
    }
}

/// What a backend entity adds to every request: its headers (overriding), its query
/// parameters (pre-encoded) and its Authorization header.
#[derive(Debug, Default)]
pub(crate) struct CredentialSteps {
    pub headers: Vec<HeaderStep>,
    /// `k=v&k2=v2`, appended to the query string.
    pub query: Option<String>,
}

impl CredentialSteps {
    pub(crate) fn compile(credentials: &BackendCredentials) -> Self {
        let mut headers: Vec<HeaderStep> = credentials
            .header
            .iter()
            .filter_map(|(name, values)| {
                HeaderStep::compile(&SetHeader {
                    name: name.clone(),
                    action: ExistsAction::Override,
                    values: values.clone(),
                })
            })
            .collect();
        if let Some(authorization) = &credentials.authorization
            && let Ok(value) = HeaderValue::from_str(&format!("{} {}", authorization.scheme, authorization.parameter))
        {
            headers.push(HeaderStep::overriding(http::header::AUTHORIZATION, vec![value]));
        }
        let pairs: Vec<String> = credentials
            .query
            .iter()
            .flat_map(|(name, values)| {
                values.iter().map(move |value| {
                    format!("{}={}", certgate_model::percent_encode(name), certgate_model::percent_encode(value))
                })
            })
            .collect();
        Self { headers, query: (!pairs.is_empty()).then(|| pairs.join("&")) }
    }
}

/// A `<return-response>`, ready to send.
#[derive(Debug, Clone)]
pub(crate) struct CannedResponse {
    status: StatusCode,
    headers: Vec<HeaderStep>,
    body: Bytes,
}

impl CannedResponse {
    pub(crate) fn compile(spec: &ReturnResponse) -> Self {
        Self {
            status: StatusCode::from_u16(spec.status).unwrap_or(StatusCode::OK),
            headers: spec.headers.iter().filter_map(HeaderStep::compile).collect(),
            body: Bytes::from(spec.body.clone().unwrap_or_default()),
        }
    }

    pub(crate) fn respond(&self) -> Response<GatewayBody> {
        let mut response = Response::new(GatewayBody::complete(self.body.clone()));
        *response.status_mut() = self.status;
        for step in &self.headers {
            step.apply(response.headers_mut());
        }
        response
    }
}
