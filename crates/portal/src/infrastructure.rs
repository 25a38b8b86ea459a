//! Backends (URL, TLS switches, client certificates) and CA certificates (trust for backends).

use askama::Template;
use axum::Form;
use axum::extract::{Multipart, Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::Portal;
use crate::api::{ApiFailure, text};
use crate::certificates::{Expiry, encode};
use crate::page::{Chrome, CsrfOnly, PortalError, authorise_write, done, render};
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
    let reply = portal.api.get(&session.token, "/backends").await?;
    let rows = reply.body["value"].as_array().into_iter().flatten().map(backend_row).collect();
    Ok(render(StatusCode::OK, &BackendList { chrome: Chrome::new(&portal, &session, "backends", "Backends"), rows }))
}

#[derive(Template)]
#[template(path = "backend_edit.html")]
struct BackendForm {
    chrome: Chrome,
    /// Editing an existing backend (its id is fixed).
    existing: bool,
    backend: BackendRow,
    all_certificates: Vec<String>,
    id_error: Option<String>,
    url_error: Option<String>,
    certificates_error: Option<String>,
}

/// `/portal/backends/new` adds one; any other id edits it.
pub async fn backend_form(
    State(portal): State<Portal>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PortalError> {
    let existing = id != "new";
    let backend = match existing {
        true => backend_row(&portal.api.get(&session.token, &format!("/backends/{}", encode(&id))).await?.body),
        false => BackendRow {
            id: String::new(),
            url: String::new(),
            validate_chain: true,
            validate_name: true,
            certificates: Vec::new(),
        },
    };
    let form = backend_page(&portal, &session, existing, backend).await?;
    Ok(render(StatusCode::OK, &form))
}

async fn backend_page(
    portal: &Portal,
    session: &Session,
    existing: bool,
    backend: BackendRow,
) -> Result<BackendForm, PortalError> {
    let certificates = portal.api.get(&session.token, "/certificates").await?.body;
    let title = if existing { format!("Backend {}", backend.id) } else { "Add backend".to_owned() };
    Ok(BackendForm {
        chrome: Chrome::new(portal, session, "backends", title),
        existing,
        backend,
        all_certificates: certificates["value"].as_array().into_iter().flatten().map(|c| text(&c["name"])).collect(),
        id_error: None,
        url_error: None,
        certificates_error: None,
    })
}

pub async fn backend_save(
    State(portal): State<Portal>,
    session: Session,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, PortalError> {
    let field =
        |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned()).unwrap_or_default();
    authorise_write(&session, &field("csrf"))?;
    let existing = id != "new";
    let backend = BackendRow {
        id: if existing { id } else { field("id") },
        url: field("url"),
        validate_chain: fields.iter().any(|(k, _)| k == "validateChain"),
        validate_name: fields.iter().any(|(k, _)| k == "validateName"),
        certificates: fields
            .iter()
            .filter(|(k, v)| k == "certificate" && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect(),
    };
    let body = json!({ "properties": {
        "url": backend.url,
        "protocol": "http",
        "tls": { "validateCertificateChain": backend.validate_chain, "validateCertificateName": backend.validate_name },
        "credentials": { "certificateIds": backend.certificates },
    }});
    let path = format!("/backends/{}", encode(&backend.id));
    let result = match backend.id.is_empty() {
        true => Err(ApiFailure {
            status: StatusCode::BAD_REQUEST,
            message: "Enter an id.".into(),
            details: vec![("id".into(), "Enter an id.".into())],
        }),
        false => portal.api.send(&session.token, Method::PUT, &path, Some(&body), None).await.map(|_| ()),
    };
    match result {
        Ok(()) => Ok(done(&portal, &session, "/portal/backends", format!("Backend {} saved.", backend.id))),
        Err(failure) if failure.status == StatusCode::BAD_REQUEST => {
            let mut form = backend_page(&portal, &session, existing, backend).await?;
            form.id_error = failure.for_field("id");
            form.url_error = failure.for_field("properties.url");
            form.certificates_error = failure.for_field("properties.credentials");
            if form.id_error.is_none() && form.url_error.is_none() && form.certificates_error.is_none() {
                form.chrome.error = Some(failure.summary());
            }
            Ok(render(StatusCode::BAD_REQUEST, &form))
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
}

async fn ca_page(portal: &Portal, session: &Session) -> Result<CaList, PortalError> {
    let reply = portal.api.get(&session.token, "/caCertificates").await?;
    let rows = reply.body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|ca| CaRow {
            id: text(&ca["name"]),
            subject: text(&ca["properties"]["subject"]),
            thumbprint: text(&ca["properties"]["thumbprint"]),
            expiry: Expiry::of(ca["properties"]["expirationDate"].as_str().unwrap_or_default()),
            store: text(&ca["properties"]["storeName"]),
        })
        .collect();
    let chrome = Chrome::new(portal, session, "ca-certificates", "CA certificates");
    Ok(CaList { chrome, rows, id: String::new(), id_error: None, file_error: None })
}

pub async fn ca_list(State(portal): State<Portal>, session: Session) -> Result<Response, PortalError> {
    Ok(render(StatusCode::OK, &ca_page(&portal, &session).await?))
}

pub async fn ca_add(
    State(portal): State<Portal>,
    session: Session,
    mut multipart: Multipart,
) -> Result<Response, PortalError> {
    let (mut csrf, mut id, mut store, mut data) = (String::new(), String::new(), String::new(), Vec::new());
    let broken = |e: axum::extract::multipart::MultipartError| {
        PortalError::Api(ApiFailure { status: StatusCode::BAD_REQUEST, message: e.body_text(), details: Vec::new() })
    };
    while let Some(field) = multipart.next_field().await.map_err(broken)? {
        match field.name().unwrap_or_default() {
            "file" => data = field.bytes().await.map_err(broken)?.to_vec(),
            "csrf" => csrf = field.text().await.map_err(broken)?,
            "id" => id = field.text().await.map_err(broken)?.trim().to_owned(),
            "store" => store = field.text().await.map_err(broken)?,
            _ => {}
        }
    }
    authorise_write(&session, &csrf)?;
    let body = json!({ "properties": {
        "data": base64::engine::general_purpose::STANDARD.encode(&data),
        "storeName": store,
    }});
    let failure = match (id.is_empty(), data.is_empty()) {
        (true, _) => ApiFailure {
            status: StatusCode::BAD_REQUEST,
            message: String::new(),
            details: vec![("id".into(), "Enter an id.".into())],
        },
        (_, true) => ApiFailure {
            status: StatusCode::BAD_REQUEST,
            message: String::new(),
            details: vec![("properties.data".into(), "Choose the CA certificate's file (.cer, .crt or .pem).".into())],
        },
        _ => match portal
            .api
            .send(&session.token, Method::PUT, &format!("/caCertificates/{}", encode(&id)), Some(&body), None)
            .await
        {
            Ok(_) => {
                return Ok(done(&portal, &session, "/portal/ca-certificates", format!("CA certificate {id} added.")));
            }
            Err(failure) if failure.status == StatusCode::BAD_REQUEST => failure,
            Err(failure) => return Err(failure.into()),
        },
    };
    let mut page = ca_page(&portal, &session).await?;
    page.id = id;
    page.id_error = failure.for_field("id");
    page.file_error = failure.for_field("properties.data").or_else(|| failure.for_field("properties.storeName"));
    if page.id_error.is_none() && page.file_error.is_none() {
        page.chrome.error = Some(failure.summary());
    }
    Ok(render(StatusCode::BAD_REQUEST, &page))
}

pub async fn ca_delete(
    State(portal): State<Portal>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PortalError> {
    authorise_write(&session, &form.csrf)?;
    portal.api.send(&session.token, Method::DELETE, &format!("/caCertificates/{}", encode(&id)), None, None).await?;
    Ok(done(&portal, &session, "/portal/ca-certificates", format!("CA certificate {id} deleted.")))
}
