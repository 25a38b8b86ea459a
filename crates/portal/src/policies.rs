//! The policy editor for the global, API and operation scopes: the document as stored, Save, and
//! the parser's error shown with its line and column and the line marked in a numbered listing.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use crate::Portal;
use crate::api::encode;
use crate::api::text;
use crate::page::{Chrome, PortalError, authorise_write, done, render};
use crate::session::Session;

/// Which policy a page edits.
enum Scope {
    Global,
    Api(String),
    Operation(String, String),
}

impl Scope {
    fn api_path(&self) -> String {
        match self {
            Scope::Global => "/policies/policy".into(),
            Scope::Api(api) => format!("/apis/{}/policies/policy", encode(api)),
            Scope::Operation(api, op) => format!("/apis/{}/operations/{}/policies/policy", encode(api), encode(op)),
        }
    }

    fn portal_path(&self) -> String {
        match self {
            Scope::Global => "/portal/policy".into(),
            Scope::Api(api) => format!("/portal/apis/{}/policy", encode(api)),
            Scope::Operation(api, op) => format!("/portal/apis/{}/operations/{}/policy", encode(api), encode(op)),
        }
    }

    fn title(&self) -> String {
        match self {
            Scope::Global => "Global policy".into(),
            Scope::Api(api) => format!("Policy of API {api}"),
            Scope::Operation(api, op) => format!("Policy of operation {op} of API {api}"),
        }
    }

    fn section(&self) -> &'static str {
        match self {
            Scope::Global => "policy",
            _ => "apis",
        }
    }
}

/// A line of the listing shown under a refused document.
pub struct Line {
    pub text: String,
    pub marked: bool,
}

#[derive(Template)]
#[template(path = "policy.html")]
struct Editor {
    chrome: Chrome,
    action: String,
    back: Option<String>,
    document: String,
    exists: bool,
    /// The ETag of the document shown, sent back as `If-Match` so Save cannot overwrite a
    /// change made since (empty: no document yet).
    etag: String,
    /// The refused document, numbered, with the error's line marked.
    listing: Vec<Line>,
    position: Option<String>,
}

pub async fn global(State(portal): State<Portal>, session: Session) -> Result<Response, PortalError> {
    show(&portal, &session, Scope::Global).await
}

pub async fn api(
    State(portal): State<Portal>,
    session: Session,
    Path(api): Path<String>,
) -> Result<Response, PortalError> {
    show(&portal, &session, Scope::Api(api)).await
}

pub async fn operation(
    State(portal): State<Portal>,
    session: Session,
    Path((api, op)): Path<(String, String)>,
) -> Result<Response, PortalError> {
    show(&portal, &session, Scope::Operation(api, op)).await
}

#[derive(Deserialize)]
pub struct PolicyForm {
    csrf: String,
    document: String,
    #[serde(default)]
    etag: String,
}

pub async fn save_global(
    State(portal): State<Portal>,
    session: Session,
    Form(form): Form<PolicyForm>,
) -> Result<Response, PortalError> {
    save(&portal, &session, Scope::Global, form).await
}

pub async fn save_api(
    State(portal): State<Portal>,
    session: Session,
    Path(api): Path<String>,
    Form(form): Form<PolicyForm>,
) -> Result<Response, PortalError> {
    save(&portal, &session, Scope::Api(api), form).await
}

pub async fn save_operation(
    State(portal): State<Portal>,
    session: Session,
    Path((api, op)): Path<(String, String)>,
    Form(form): Form<PolicyForm>,
) -> Result<Response, PortalError> {
    save(&portal, &session, Scope::Operation(api, op), form).await
}

fn editor(portal: &Portal, session: &Session, scope: &Scope, document: String, etag: String) -> Editor {
    let back = match scope {
        Scope::Global => None,
        Scope::Api(api) | Scope::Operation(api, _) => Some(format!("/portal/apis/{}", encode(api))),
    };
    Editor {
        chrome: Chrome::new(portal, session, scope.section(), scope.title()),
        action: scope.portal_path(),
        back,
        document,
        exists: !etag.is_empty(),
        etag,
        listing: Vec::new(),
        position: None,
    }
}

async fn show(portal: &Portal, session: &Session, scope: Scope) -> Result<Response, PortalError> {
    let current = portal.api.get_optional(session, &scope.api_path()).await?;
    let (document, etag) = match current {
        Some(reply) => (text(&reply.body["properties"]["value"]), reply.etag.unwrap_or_default()),
        None => (certgate_policy::EMPTY_POLICY.to_owned(), String::new()),
    };
    Ok(render(StatusCode::OK, &editor(portal, session, &scope, document, etag)))
}

async fn save(portal: &Portal, session: &Session, scope: Scope, form: PolicyForm) -> Result<Response, PortalError> {
    authorise_write(session, &form.csrf)?;
    let body = json!({ "properties": { "format": "rawxml", "value": form.document } });
    let if_match = (!form.etag.is_empty()).then_some(form.etag.as_str());
    match portal.api.send(session, Method::PUT, &scope.api_path(), Some(&body), if_match).await {
        Ok(_) => Ok(done(portal, session, &scope.portal_path(), format!("{} saved.", scope.title()))),
        // Changed by someone else since this page was opened: keep what was typed, say so.
        Err(failure) if failure.status == StatusCode::PRECONDITION_FAILED => {
            let mut page = editor(portal, session, &scope, form.document, form.etag);
            page.chrome.error = Some(
                "The policy was changed since you opened it; nothing was saved. Copy your edit, reload the page and apply it again."
                    .into(),
            );
            Ok(render(StatusCode::PRECONDITION_FAILED, &page))
        }
        Err(failure) if failure.status == StatusCode::BAD_REQUEST => {
            let mut page = editor(portal, session, &scope, form.document.clone(), form.etag.clone());
            // The API's message names the line and column in words; the same parser gives them
            // as numbers to mark the line (references to missing entities have no position).
            let refused = certgate_policy::parse(&form.document).err();
            let marked = refused.as_ref().map(|e| e.line as usize);
            page.position = refused.map(|e| format!("Line {}, column {}", e.line, e.column));
            page.listing = form
                .document
                .lines()
                .enumerate()
                .map(|(i, line)| Line { text: line.to_owned(), marked: marked == Some(i + 1) })
                .collect();
            page.chrome.error = Some(failure.for_field("properties.value").unwrap_or_else(|| failure.summary()));
            Ok(render(StatusCode::BAD_REQUEST, &page))
        }
        Err(failure) => Err(failure.into()),
    }
}
