//! The portal's only way to read or change anything: the management API, called in-process with
//! the session's token. Validation, authorisation, ETags and reference checks are the API's; the
//! portal renders what it answers, errors included (next to the field their `target` names).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use zeroize::Zeroizing;

use crate::session::{Session, Sessions};

/// The management API as a service. A call the API answers 401 (the token was revoked or
/// replaced) ends the caller's session.
#[derive(Clone)]
pub struct ManagementApi {
    router: axum::Router,
    sessions: Arc<Sessions>,
}

/// A successful answer.
pub struct Reply {
    pub body: Value,
    pub etag: Option<String>,
}

impl Reply {
    /// The entries of a list answer (`value`).
    pub fn items(&self) -> impl Iterator<Item = &Value> {
        self.body["value"].as_array().into_iter().flatten()
    }

    /// The `name` of every entry of a list answer.
    pub fn names(&self) -> Vec<String> {
        self.items().map(|item| text(&item["name"])).collect()
    }
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

    /// Puts each detail at the form field whose target it names (`(target, slot)`); returns
    /// the whole failure for a banner when no field took any of it.
    pub fn place(&self, fields: &mut [(&str, &mut Option<String>)]) -> Option<String> {
        for (target, slot) in fields.iter_mut() {
            **slot = self.for_field(target);
        }
        fields.iter().all(|(_, slot)| slot.is_none()).then(|| self.summary())
    }

    /// The whole failure as one line, for a banner: the message and every detail.
    pub fn summary(&self) -> String {
        let mut text = self.message.clone();
        for (target, message) in &self.details {
            text.push_str(&format!(" {target}: {message}"));
        }
        text
    }

    /// A form field the portal itself found at fault, as the API would have named it.
    pub fn invalid(target: &str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: String::new(), details: vec![(target.into(), message.into())] }
    }

    /// A request the portal could not read (a broken multipart body, say).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into(), details: Vec::new() }
    }

    /// A refusal the user can fix on the form they sent (invalid, conflicting or changed since
    /// shown): the form is shown again with the messages, under the API's status.
    pub fn is_form_error(&self) -> bool {
        matches!(self.status, StatusCode::BAD_REQUEST | StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED)
    }

    fn internal(message: impl Into<String>) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message: message.into(), details: Vec::new() }
    }
}

impl ManagementApi {
    pub fn new(router: axum::Router, sessions: Arc<Sessions>) -> Self {
        Self { router, sessions }
    }

    pub async fn get(&self, caller: &Session, path: &str) -> Result<Reply, ApiFailure> {
        self.send(caller, Method::GET, path, None, None).await
    }

    /// A GET that treats 404 as absent.
    pub async fn get_optional(&self, caller: &Session, path: &str) -> Result<Option<Reply>, ApiFailure> {
        match self.get(caller, path).await {
            Ok(reply) => Ok(Some(reply)),
            Err(failure) if failure.status == StatusCode::NOT_FOUND => Ok(None),
            Err(failure) => Err(failure),
        }
    }

    /// Whether `path` names an existing entity: what a create form checks so that it does not
    /// replace one (a create racing it in the same instant still can; the API's PUT is an upsert).
    pub async fn exists(&self, caller: &Session, path: &str) -> Result<bool, ApiFailure> {
        Ok(self.get_optional(caller, path).await?.is_some())
    }

    pub async fn send(
        &self,
        caller: &Session,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, ApiFailure> {
        let result = self.call(&caller.token, method, path, body, if_match).await;
        if matches!(&result, Err(failure) if failure.status == StatusCode::UNAUTHORIZED) {
            self.sessions.end(&caller.id);
        }
        result
    }

    /// What the API says about a token before a session exists: its answer to `GET /caller`.
    pub async fn caller(&self, token: &str) -> Result<Reply, ApiFailure> {
        self.call(token, Method::GET, "/caller", None, None).await
    }

    /// One call. The request body (a PFX and its password, for an upload) is serialized into
    /// a buffer the router owns and drops; it is not zeroized, as the API's own JSON is not.
    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, ApiFailure> {
        let bearer = Zeroizing::new(format!("Bearer {token}"));
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, bearer.as_str())
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

/// A path segment for the management API or a portal link: ids are restricted by the API, but
/// one may hold `%`, which a link must not let the router decode into another id.
pub fn encode(segment: &str) -> String {
    certgate_model::percent_encode(segment)
}

/// A JSON string, or empty.
pub fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}
