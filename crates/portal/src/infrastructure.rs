//! Backends (URL, TLS switches, client certificates) and CA certificates (trust for backends).

use askama::Template;
use axum::Form;
use axum::extract::{Multipart, Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::Portal;
use crate::api::encode;
use crate::api::{ApiFailure, text};
use crate::certificates::Expiry;
use crate::page::{Chrome, CsrfOnly, MultipartFields, PortalError, authorise_write, done, render};
use crate::session::Session;

pub struct BackendRow {
    pub id: String,
    pub url: String,
    pub validate_chain: bool,
    pub validate_name: bool,
    pub certificates: Vec<String>,
}

fn backend_row(resource: &Value) -> BackendRow {
    let properties = &resource["properties"];
    BackendRow {
        id: text(&resource["name"]),
        url: text(&properties["url"]),
        validate_chain: properties["tls"]["validateCertificateChain"].as_bool().unwrap_or(true),
        validate_name: properties["tls"]["validateCertificateName"].as_bool().unwrap_or(true),
        certificates: properties["credentials"]["certificateIds"].as_array().into_iter().flatten().map(text).collect(),
    }
}

#[derive(Template)]
#[template(path = "backends.html")]
struct BackendList {
    chrome: Chrome,
    rows: Vec<BackendRow>,
}

pub async fn backend_list(State(portal): State<Portal>, session: Session) -> Result<Response, PortalError> {
    let reply = portal.api.get(&session, "/backends").await?;
    let rows = reply.items().map(backend_row).collect();
    Ok(render(StatusCode::OK, &BackendList { chrome: Chrome::new(&portal, &session, "backends", "Backends"), rows }))
}

#[derive(Template)]
#[template(path = "backend_edit.html")]
struct BackendForm {
    chrome: Chrome,
    /// Editing an existing backend (its id is fixed), at this ETag; else adding one.
    etag: Option<String>,
    backend: BackendRow,
    all_certificates: Vec<String>,
    id_error: Option<String>,
    url_error: Option<String>,
    certificates_error: Option<String>,
}

impl BackendForm {
    async fn new(
        portal: &Portal,
        session: &Session,
        etag: Option<String>,
        backend: BackendRow,
    ) -> Result<Self, PortalError> {
        let title = if etag.is_some() { format!("Backend {}", backend.id) } else { "Add backend".to_owned() };
        Ok(Self {
            chrome: Chrome::new(portal, session, "backends", title),
            etag,
            backend,
            all_certificates: portal.api.get(session, "/certificates").await?.names(),
            id_error: None,
            url_error: None,
            certificates_error: None,
        })
    }

    /// The form again, with the API's refusal at its fields.
    async fn refused(
        portal: &Portal,
        session: &Session,
        etag: Option<String>,
        backend: BackendRow,
        failure: &ApiFailure,
    ) -> Result<Response, PortalError> {
        let mut form = Self::new(portal, session, etag, backend).await?;
        form.chrome.error = failure.place(&mut [
            ("id", &mut form.id_error),
            ("properties.url", &mut form.url_error),
            ("properties.credentials", &mut form.certificates_error),
        ]);
        if failure.status == StatusCode::PRECONDITION_FAILED {
            form.chrome.error = Some("The backend was changed since you opened it; nothing was saved. Reload the page and apply your edit again.".into());
        }
        Ok(render(failure.status, &form))
    }
}

/// What the backend form submits.
struct BackendFields {
    csrf: String,
    etag: String,
    backend: BackendRow,
}

impl BackendFields {
    fn read(fields: &[(String, String)], id: Option<String>) -> Self {
        let field =
            |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned()).unwrap_or_default();
        Self {
            csrf: field("csrf"),
            etag: field("etag"),
            backend: BackendRow {
                id: id.unwrap_or_else(|| field("id")),
                url: field("url"),
                validate_chain: fields.iter().any(|(k, _)| k == "validateChain"),
                validate_name: fields.iter().any(|(k, _)| k == "validateName"),
                certificates: fields
                    .iter()
                    .filter(|(k, v)| k == "certificate" && !v.is_empty())
                    .map(|(_, v)| v.clone())
                    .collect(),
            },
        }
    }

    /// The properties the form edits; `credentials` is the backend's current credentials (header,
    /// query, authorization and certificate thumbprints the form does not show are kept).
    fn properties(&self, mut credentials: Value) -> Value {
        if !credentials.is_object() {
            credentials = json!({});
        }
        credentials["certificateIds"] = json!(self.backend.certificates);
        json!({ "properties": {
            "url": self.backend.url,
            "tls": {
                "validateCertificateChain": self.backend.validate_chain,
                "validateCertificateName": self.backend.validate_name,
            },
            "credentials": credentials,
        }})
    }
}

pub async fn backend_add_form(State(portal): State<Portal>, session: Session) -> Result<Response, PortalError> {
    let backend = BackendRow {
        id: String::new(),
        url: String::new(),
        validate_chain: true,
        validate_name: true,
        certificates: Vec::new(),
    };
    Ok(render(StatusCode::OK, &BackendForm::new(&portal, &session, None, backend).await?))
}

pub async fn backend_add(
    State(portal): State<Portal>,
    session: Session,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, PortalError> {
    let submitted = BackendFields::read(&fields, None);
    authorise_write(&session, &submitted.csrf)?;
    let id = submitted.backend.id.clone();
    let path = format!("/backends/{}", encode(&id));
    let refusal = if id.is_empty() {
        ApiFailure::invalid("id", "Enter an id.")
    } else if portal.api.exists(&session, &path).await? {
        ApiFailure::invalid("id", format!("A backend with id '{id}' already exists."))
    } else {
        let mut body = submitted.properties(json!({}));
        body["properties"]["protocol"] = json!("http");
        match portal.api.send(&session, Method::PUT, &path, Some(&body), None).await {
            Ok(_) => return Ok(done(&portal, &session, "/portal/backends", format!("Backend {id} added."))),
            Err(failure) if failure.is_form_error() => failure,
            Err(failure) => return Err(failure.into()),
        }
    };
    BackendForm::refused(&portal, &session, None, submitted.backend, &refusal).await
}

pub async fn backend_edit_form(
    State(portal): State<Portal>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PortalError> {
    let reply = portal.api.get(&session, &format!("/backends/{}", encode(&id))).await?;
    let form = BackendForm::new(&portal, &session, Some(reply.etag.unwrap_or_default()), backend_row(&reply.body));
    Ok(render(StatusCode::OK, &form.await?))
}

/// Saves an edit as a PATCH of what the form shows, under `If-Match` of the version it showed.
pub async fn backend_save(
    State(portal): State<Portal>,
    session: Session,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, PortalError> {
    let submitted = BackendFields::read(&fields, Some(id.clone()));
    authorise_write(&session, &submitted.csrf)?;
    let path = format!("/backends/{}", encode(&id));
    let current = portal.api.get(&session, &path).await?;
    let body = submitted.properties(current.body["properties"]["credentials"].clone());
    let if_match = (!submitted.etag.is_empty()).then_some(submitted.etag.as_str());
    match portal.api.send(&session, Method::PATCH, &path, Some(&body), if_match).await {
        Ok(_) => Ok(done(&portal, &session, "/portal/backends", format!("Backend {id} saved."))),
        Err(failure) if failure.is_form_error() => {
            BackendForm::refused(&portal, &session, Some(submitted.etag), submitted.backend, &failure).await
        }
        Err(failure) => Err(failure.into()),
    }
}

pub struct CaRow {
    pub id: String,
    pub subject: String,
    pub thumbprint: String,
    pub expiry: Expiry,
    pub store: String,
}

#[derive(Template)]
#[template(path = "ca_certificates.html")]
struct CaList {
    chrome: Chrome,
    rows: Vec<CaRow>,
    id: String,
    id_error: Option<String>,
    file_error: Option<String>,
    store_error: Option<String>,
}

async fn ca_page(portal: &Portal, session: &Session) -> Result<CaList, PortalError> {
    let reply = portal.api.get(session, "/caCertificates").await?;
    let rows = reply
        .items()
        .map(|ca| CaRow {
            id: text(&ca["name"]),
            subject: text(&ca["properties"]["subject"]),
            thumbprint: text(&ca["properties"]["thumbprint"]),
            expiry: Expiry::of(ca["properties"]["expirationDate"].as_str().unwrap_or_default()),
            store: text(&ca["properties"]["storeName"]),
        })
        .collect();
    let chrome = Chrome::new(portal, session, "ca-certificates", "CA certificates");
    Ok(CaList { chrome, rows, id: String::new(), id_error: None, file_error: None, store_error: None })
}

pub async fn ca_list(State(portal): State<Portal>, session: Session) -> Result<Response, PortalError> {
    Ok(render(StatusCode::OK, &ca_page(&portal, &session).await?))
}

pub async fn ca_add(
    State(portal): State<Portal>,
    session: Session,
    multipart: Multipart,
) -> Result<Response, PortalError> {
    let submitted = MultipartFields::read(multipart).await?;
    authorise_write(&session, &submitted.text("csrf"))?;
    let (id, store, data) =
        (submitted.text("id"), submitted.text("store"), submitted.bytes("file").unwrap_or_default());
    let path = format!("/caCertificates/{}", encode(&id));
    let refusal = if id.is_empty() {
        ApiFailure::invalid("id", "Enter an id.")
    } else if data.is_empty() {
        ApiFailure::invalid("properties.data", "Choose the CA certificate's file (.cer, .crt or .pem).")
    } else if portal.api.exists(&session, &path).await? {
        ApiFailure::invalid("id", format!("A CA certificate with id '{id}' already exists."))
    } else {
        let body = json!({ "properties": {
            "data": base64::engine::general_purpose::STANDARD.encode(data),
            "storeName": store,
        }});
        match portal.api.send(&session, Method::PUT, &path, Some(&body), None).await {
            Ok(_) => {
                return Ok(done(&portal, &session, "/portal/ca-certificates", format!("CA certificate {id} added.")));
            }
            Err(failure) if failure.is_form_error() => failure,
            Err(failure) => return Err(failure.into()),
        }
    };
    let mut page = ca_page(&portal, &session).await?;
    page.id = id;
    page.chrome.error = refusal.place(&mut [
        ("id", &mut page.id_error),
        ("properties.data", &mut page.file_error),
        ("properties.storeName", &mut page.store_error),
    ]);
    Ok(render(refusal.status, &page))
}

pub async fn ca_delete(
    State(portal): State<Portal>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PortalError> {
    authorise_write(&session, &form.csrf)?;
    portal.api.send(&session, Method::DELETE, &format!("/caCertificates/{}", encode(&id)), None, None).await?;
    Ok(done(&portal, &session, "/portal/ca-certificates", format!("CA certificate {id} deleted.")))
}
