//! HTTP calls to the management API. Every call carries the bearer token; an error status
//! becomes a [`Refusal`] with the server's code, message and details, printed as they came.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use zeroize::Zeroizing;

use super::CliError;

pub(super) struct AdminClient {
    /// The management API's base URL, without a trailing `/`.
    base: String,
    token: Zeroizing<String>,
    http: reqwest::Client,
}

/// A successful answer.
pub(super) struct Reply {
    pub etag: Option<String>,
    /// `Value::Null` for an empty body (204).
    pub body: Value,
}

/// An error status and APIM's error envelope (`{"error": {code, message, details}}`).
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    code: String,
    message: String,
    /// (target, message) of each field at fault, or each referrer of a 409.
    details: Vec<(String, String)>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status.as_u16(), self.message)?;
        for (target, message) in &self.details {
            write!(f, "\n  {target}: {message}")?;
        }
        Ok(())
    }
}

impl AdminClient {
    pub(super) fn new(base: &Url, token: Zeroizing<String>, ca_file: Option<&Path>) -> Result<Self, CliError> {
        let mut builder =
            reqwest::Client::builder().timeout(Duration::from_secs(60)).connect_timeout(Duration::from_secs(10));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| CliError::Usage(format!("cannot read the CA file {}: {e}", path.display())))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                CliError::Usage(format!("the CA file {} holds no PEM certificate: {e}", path.display()))
            })?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|e| CliError::Usage(format!("cannot set up HTTPS: {e}")))?;
        Ok(Self { base: base.as_str().trim_end_matches('/').to_owned(), token, http })
    }

    pub(super) async fn get(&self, path: &str) -> Result<Reply, CliError> {
        self.send(Method::GET, path, None, None).await
    }

    /// `None` when the resource does not exist.
    pub(super) async fn get_optional(&self, path: &str) -> Result<Option<Reply>, CliError> {
        match self.get(path).await {
            Ok(reply) => Ok(Some(reply)),
            Err(CliError::Refused(refusal)) if refusal.status == StatusCode::NOT_FOUND => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Every page of a collection, as one `{"value": [...], "count": N}`.
    pub(super) async fn list(&self, path: &str, filter: Option<&str>) -> Result<Value, CliError> {
        let mut url = self.url(path)?;
        if let Some(filter) = filter {
            url.query_pairs_mut().append_pair("$filter", filter);
        }
        let mut items = Vec::new();
        loop {
            let page = self.call(Method::GET, url, None, None).await?.body;
            if let Some(Value::Array(value)) = page.get("value") {
                items.extend(value.iter().cloned());
            }
            match page.get("nextLink").and_then(Value::as_str) {
                Some(next) => url = self.url(next)?,
                None => break,
            }
        }
        let count = items.len();
        Ok(serde_json::json!({ "value": items, "count": count }))
    }

    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, CliError> {
        self.call(method, self.url(path)?, body, if_match).await
    }

    /// `path` is below the base URL (a relative `nextLink` too); an absolute URL is taken as is.
    fn url(&self, path: &str) -> Result<Url, CliError> {
        let text = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        Url::parse(&text).map_err(|e| CliError::Usage(format!("invalid URL {text:?}: {e}")))
    }

    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, CliError> {
        let mut request = self.http.request(method, url.clone()).bearer_auth(self.token.as_str());
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(etag) = if_match {
            request = request.header(reqwest::header::IF_MATCH, etag);
        }
        let unreachable =
            |e: reqwest::Error| CliError::Unreachable { url: origin(&url), cause: certgate_model::error_chain(&e) };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let etag = response.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = response.bytes().await.map_err(unreachable)?;
        let body: Value =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        if status.is_success() {
            return Ok(Reply { etag, body });
        }
        Err(CliError::Refused(refusal(status, &body, &bytes)))
    }
}

fn refusal(status: StatusCode, body: &Value, bytes: &[u8]) -> Refusal {
    let error = &body["error"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let details = error["details"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|detail| (text(&detail["target"]), text(&detail["message"])))
        .collect();
    let message = match error["message"].as_str() {
        Some(message) => message.to_owned(),
        // Not APIM's envelope (a proxy in between, say): show what came, briefly.
        None => String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned(),
    };
    let code =
        error["code"].as_str().map_or_else(|| status.canonical_reason().unwrap_or("Error").to_owned(), str::to_owned);
    Refusal { status, code, message, details }
}

/// The scheme, host and port of `url`: what an unreachable node is named by.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}
