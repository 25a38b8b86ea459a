//! APIs: the list and an API's Design view, whose Backend section sets the Gateway credentials
//! (None or Client cert): Save writes or removes `<authentication-certificate certificate-id/>` in
//! the API's policy and keeps the rest of the document as it was (the CLI's edit, shared).

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use certgate_policy::{CertificateRef, InboundElement, InboundElementKind, SectionKind, Statement};
use serde::Deserialize;
use serde_json::json;

use crate::Portal;
use crate::api::{encode, text};
use crate::page::{Chrome, PortalError, authorise_write, done, render};
use crate::session::Session;

pub struct ApiRow {
    pub id: String,
    pub name: String,
    pub path: String,
    pub service_url: String,
}

impl ApiRow {
    fn of(resource: &serde_json::Value) -> Self {
        let properties = &resource["properties"];
        Self {
            id: text(&resource["name"]),
            name: text(&properties["displayName"]),
            path: text(&properties["path"]),
            service_url: text(&properties["serviceUrl"]),
        }
    }
}

#[derive(Template)]
#[template(path = "apis.html")]
struct ApiList {
    chrome: Chrome,
    rows: Vec<ApiRow>,
}

pub async fn list(State(portal): State<Portal>, session: Session) -> Result<Response, PortalError> {
    let rows = portal.api.get(&session, "/apis").await?.items().map(ApiRow::of).collect();
    Ok(render(StatusCode::OK, &ApiList { chrome: Chrome::new(&portal, &session, "apis", "APIs"), rows }))
}

pub struct OperationRow {
    pub id: String,
    pub name: String,
    pub method: String,
    pub template: String,
}

/// How the API's inbound policy authenticates to the backend.
pub enum Credentials {
    None,
    ById(String),
    /// A thumbprint or inline form the dropdown cannot show; Save replaces it.
    Other(&'static str),
}

#[derive(Template)]
#[template(path = "api_design.html")]
struct Design {
    chrome: Chrome,
    api: ApiRow,
    operations: Vec<OperationRow>,
    backend: String,
    credentials: Credentials,
    certificates: Vec<String>,
}

pub async fn design(
    State(portal): State<Portal>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PortalError> {
    Ok(render(StatusCode::OK, &load_design(&portal, &session, &id).await?))
}

async fn load_design(portal: &Portal, session: &Session, id: &str) -> Result<Design, PortalError> {
    let base = format!("/apis/{}", encode(id));
    let api = portal.api.get(session, &base).await?.body;
    let operations = portal.api.get(session, &format!("{base}/operations")).await?;
    let policy = portal.api.get_optional(session, &format!("{base}/policies/policy")).await?;
    let certificates = portal.api.get(session, "/certificates").await?.names();
    let document = policy.as_ref().and_then(|p| certgate_policy::parse(p.body["properties"]["value"].as_str()?).ok());
    let inbound = document.as_ref().and_then(|d| d.section(SectionKind::Inbound)).unwrap_or_default();
    let credentials = inbound
        .iter()
        .find_map(|statement| match statement {
            Statement::AuthenticationCertificate(CertificateRef::Id(id)) => Some(Credentials::ById(id.clone())),
            Statement::AuthenticationCertificate(CertificateRef::Thumbprint(_)) => {
                Some(Credentials::Other("a thumbprint"))
            }
            Statement::AuthenticationCertificate(CertificateRef::Inline { .. }) => {
                Some(Credentials::Other("an inline certificate"))
            }
            _ => None,
        })
        .unwrap_or(Credentials::None);
    let backend = inbound
        .iter()
        .find_map(|statement| match statement {
            Statement::SetBackendService(certgate_policy::BackendRef::Id(id)) => Some(format!("backend {id}")),
            Statement::SetBackendService(certgate_policy::BackendRef::BaseUrl(url)) => Some(url.clone()),
            _ => None,
        })
        .unwrap_or_else(|| text(&api["properties"]["serviceUrl"]));
    let row = ApiRow::of(&api);
    Ok(Design {
        chrome: Chrome::new(portal, session, "apis", format!("{} — Design", row.name)),
        operations: operations
            .items()
            .map(|op| OperationRow {
                id: text(&op["name"]),
                name: text(&op["properties"]["displayName"]),
                method: text(&op["properties"]["method"]),
                template: text(&op["properties"]["urlTemplate"]),
            })
            .collect(),
        api: row,
        backend,
        credentials,
        certificates,
    })
}

#[derive(Deserialize)]
pub struct CredentialsForm {
    csrf: String,
    /// `none` or `client-cert`.
    credentials: String,
    #[serde(default)]
    certificate: String,
}

pub async fn save_credentials(
    State(portal): State<Portal>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<CredentialsForm>,
) -> Result<Response, PortalError> {
    authorise_write(&session, &form.csrf)?;
    let path = format!("/apis/{}/policies/policy", encode(&id));
    let current = portal.api.get_optional(&session, &path).await?;
    let (document, etag) = match &current {
        Some(reply) => (text(&reply.body["properties"]["value"]), reply.etag.clone()),
        None => (certgate_policy::EMPTY_POLICY.to_owned(), None),
    };
    let edited = match form.credentials.as_str() {
        "client-cert" if form.certificate.is_empty() => Err("Choose a certificate for Client cert.".to_owned()),
        "client-cert" => certgate_policy::set_inbound_element(
            &document,
            InboundElement::AuthenticationCertificate { certificate_id: &form.certificate },
        )
        .map_err(|e| format!("The API's policy cannot be edited: {e}")),
        "none" => certgate_policy::remove_inbound_element(&document, InboundElementKind::AuthenticationCertificate)
            .map_err(|e| format!("The API's policy cannot be edited: {e}")),
        other => Err(format!("Gateway credentials must be None or Client cert, not '{other}'.")),
    };
    let edited = match edited {
        Ok(edited) => edited,
        Err(message) => return refused(&portal, &session, &id, StatusCode::BAD_REQUEST, message).await,
    };
    let design_page = format!("/portal/apis/{}", encode(&id));
    if edited == document {
        return Ok(done(&portal, &session, &design_page, "Nothing to change.".into()));
    }
    let body = json!({ "properties": { "format": "rawxml", "value": edited } });
    match portal.api.send(&session, Method::PUT, &path, Some(&body), etag.as_deref()).await {
        Ok(_) => {
            let notice = match form.credentials.as_str() {
                "client-cert" => format!("Gateway credentials saved: client certificate {}.", form.certificate),
                _ => "Gateway credentials saved: none.".to_owned(),
            };
            Ok(done(&portal, &session, &design_page, notice))
        }
        Err(failure) if failure.is_form_error() => {
            refused(&portal, &session, &id, failure.status, failure.summary()).await
        }
        Err(failure) => Err(failure.into()),
    }
}

/// The design page again, with why Save did not save.
async fn refused(
    portal: &Portal,
    session: &Session,
    id: &str,
    status: StatusCode,
    message: String,
) -> Result<Response, PortalError> {
    let mut design = load_design(portal, session, id).await?;
    design.chrome.error = Some(message);
    Ok(render(status, &design))
}
