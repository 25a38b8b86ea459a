//! The portal's only way to read or change anything: the management API, called in-process with
//! the session's token. Validation, authorisation, ETags and reference checks are the API's; the
//! portal renders what it answers, errors included (next to the field their `target` names).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The management API as a service.
#[derive(Clone)]
pub struct ManagementApi {
    router: axum::Router,
}

/// A successful answer.
pub struct Reply {
    pub body: Value,
    pub etag: Option<String>,
}

/// An answer in APIM's error envelope (or a transport failure, as a 500).
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub message: String,
    /// `(target, message)` for each field at fault or referrer.
    pub details: Vec<(String, String)>,
}

impl ApiFailure {
    /// The message for a form field: the details naming `target` (or a field under it).
    pub fn for_field(&self, target: &str) -> Option<String> {
        let messages: Vec<&str> = self
            .details
            .iter()
            .filter(|(t, _)| t == target || t.starts_with(&format!("{target}.")))
            .map(|(_, m)| m.as_str())
            .collect();
        (!messages.is_empty()).then(|| messages.join(" "))
    }

    /// The whole failure as one line, for a banner: the message and every detail.
    pub fn summary(&self) -> String {
        let mut text = self.message.clone();
        for (target, message) in &self.details {
            text.push_str(&format!(" {target}: {message}"));
        }
        text
    }

    fn internal(message: impl Into<String>) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message: message.into(), details: Vec::new() }
    }
}

impl ManagementApi {
    pub fn new(router: axum::Router) -> Self {
        Self { router }
    }

    pub async fn get(&self, token: &str, path: &str) -> Result<Reply, ApiFailure> {
        self.call(token, Method::GET, path, None, None).await
    }

    /// A GET that treats 404 as absent.
    pub async fn get_optional(&self, token: &str, path: &str) -> Result<Option<Reply>, ApiFailure> {
        match self.get(token, path).await {
            Ok(reply) => Ok(Some(reply)),
            Err(failure) if failure.status == StatusCode::NOT_FOUND => Ok(None),
            Err(failure) => Err(failure),
        }
    }

    pub async fn send(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, ApiFailure> {
        self.call(token, method, path, body, if_match).await
    }

    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, ApiFailure> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(etag) = if_match {
            request = request.header(header::IF_MATCH, etag);
        }
        let body = match body {
            Some(value) => Body::from(value.to_string()),
            None => Body::empty(),
        };
        let request = request.body(body).map_err(|e| ApiFailure::internal(format!("bad request to {path}: {e}")))?;
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| ApiFailure::internal(format!("the management API failed: {e}")))?;
        let status = response.status();
        let etag = response.headers().get(header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ApiFailure::internal(format!("reading the management API's answer: {e}")))?
            .to_bytes();
        let body: Value =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        if status.is_success() {
            return Ok(Reply { body, etag });
        }
        let error = &body["error"];
        let details = error["details"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| (text(&d["target"]), text(&d["message"])))
            .collect();
        let message = match error["message"].as_str() {
            Some(message) => message.to_owned(),
            None => format!("the management API answered {status}"),
        };
        Err(ApiFailure { status, message, details })
    }
}

/// A JSON string, or empty.
pub fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}
