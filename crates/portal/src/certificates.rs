//! Certificates: the list (expiry at a glance, the last vault refresh), + Add (Custom PFX or a
//! Key vault reference, browsed with Select), Refresh, and Delete, which lists the referrers.

use askama::Template;
use axum::Form;
use axum::extract::{Multipart, Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::Portal;
use crate::api::{ApiFailure, encode, text};
use crate::page::{Chrome, CsrfOnly, MultipartFields, PortalError, authorise_write, done, render};
use crate::session::Session;

/// An expiry as the lists show it: the date, the days left, and how urgent it is.
pub struct Expiry {
    pub date: String,
    /// `expired`, `soon` (under 30 days) or empty.
    pub class: &'static str,
    pub label: String,
}

impl Expiry {
    pub fn of(expiration: &str) -> Self {
        let parsed = time::OffsetDateTime::parse(expiration, &time::format_description::well_known::Rfc3339);
        let Ok(not_after) = parsed else {
            return Self { date: expiration.to_owned(), class: "", label: String::new() };
        };
        let now = time::OffsetDateTime::now_utc();
        let (class, label) = match (not_after - now).whole_days() {
            _ if not_after <= now => ("expired", "expired".to_owned()),
            0 => ("soon", "expires today".to_owned()),
            1 => ("soon", "1 day left".to_owned()),
            d if d < 30 => ("soon", format!("{d} days left")),
            d => ("", format!("{d} days left")),
        };
        Self { date: expiration.get(..10).unwrap_or(expiration).to_owned(), class, label }
    }
}

pub struct CertificateRow {
    pub id: String,
    pub subject: String,
    pub thumbprint: String,
    pub expiry: Expiry,
    pub key_vault: bool,
    pub status_code: String,
    pub status_message: String,
    pub status_time: String,
}

#[derive(Template)]
#[template(path = "certificates.html")]
struct CertificateList {
    chrome: Chrome,
    rows: Vec<CertificateRow>,
}

pub async fn list(State(portal): State<Portal>, session: Session) -> Result<Response, PortalError> {
    let reply = portal.api.get(&session, "/certificates").await?;
    let rows = reply.items().map(row).collect();
    let chrome = Chrome::new(&portal, &session, "certificates", "Certificates");
    Ok(render(StatusCode::OK, &CertificateList { chrome, rows }))
}

fn row(resource: &Value) -> CertificateRow {
    let properties = &resource["properties"];
    let status = &properties["keyVault"]["lastStatus"];
    CertificateRow {
        id: text(&resource["name"]),
        subject: text(&properties["subject"]),
        thumbprint: text(&properties["thumbprint"]),
        expiry: Expiry::of(properties["expirationDate"].as_str().unwrap_or_default()),
        key_vault: properties["keyVault"].is_object(),
        status_code: text(&status["code"]),
        status_message: text(&status["message"]),
        status_time: text(&status["timeStampUtc"]),
    }
}

/// A secret in the folder being browsed.
pub struct Entry {
    pub name: String,
    pub identifier: String,
}

#[derive(Template)]
#[template(path = "certificate_add.html")]
struct AddForm {
    chrome: Chrome,
    id: String,
    key_vault: bool,
    secret_identifier: String,
    identity: String,
    identities: Vec<String>,
    /// What Select found (`None` when it was not used).
    entries: Option<Vec<Entry>>,
    browsed: String,
    pinned: Option<String>,
    id_error: Option<String>,
    file_error: Option<String>,
    password_error: Option<String>,
    identifier_error: Option<String>,
    identity_error: Option<String>,
}

impl AddForm {
    async fn new(portal: &Portal, session: &Session) -> Result<Self, PortalError> {
        let identities = portal.api.get(session, "/identities").await?.names();
        Ok(Self {
            chrome: Chrome::new(portal, session, "certificates", "Add certificate"),
            id: String::new(),
            key_vault: false,
            secret_identifier: String::new(),
            identity: "system".into(),
            identities,
            entries: None,
            browsed: String::new(),
            pinned: None,
            id_error: None,
            file_error: None,
            password_error: None,
            identifier_error: None,
            identity_error: None,
        })
    }

    fn show_failure(&mut self, failure: &ApiFailure) {
        let mut folder_error = None;
        self.chrome.error = failure.place(&mut [
            ("id", &mut self.id_error),
            ("properties.data", &mut self.file_error),
            ("properties.password", &mut self.password_error),
            ("properties.keyVault.secretIdentifier", &mut self.identifier_error),
            ("folder", &mut folder_error),
            ("properties.keyVault.identityClientId", &mut self.identity_error),
        ]);
        self.identifier_error = self.identifier_error.take().or(folder_error);
    }
}

pub async fn add_form(State(portal): State<Portal>, session: Session) -> Result<Response, PortalError> {
    if !session.role.may_write() {
        return Err(PortalError::Forbidden("Your token may read but not change anything."));
    }
    Ok(render(StatusCode::OK, &AddForm::new(&portal, &session).await?))
}

pub async fn add(
    State(portal): State<Portal>,
    session: Session,
    multipart: Multipart,
) -> Result<Response, PortalError> {
    let submitted = MultipartFields::read(multipart).await?;
    authorise_write(&session, &submitted.text("csrf"))?;
    let mut form = AddForm::new(&portal, &session).await?;
    form.id = submitted.text("id");
    form.key_vault = submitted.text("source") == "keyvault";
    form.identity = submitted.text("identity");
    let pick = submitted.bytes("pick").is_some().then(|| submitted.text("pick"));
    form.secret_identifier = pick.clone().unwrap_or_else(|| submitted.text("secretIdentifier"));
    form.pinned = pinned_version(&form.secret_identifier);
    let picked_folder = pick.as_deref().is_some_and(|p| p.ends_with('/'));
    if submitted.text("action") == "select" || picked_folder {
        browse(&portal, &session, &mut form).await?;
        return Ok(render(StatusCode::OK, &form));
    }
    if pick.is_some() {
        return Ok(render(StatusCode::OK, &form));
    }
    let properties = if form.key_vault {
        let mut key_vault = json!({ "secretIdentifier": form.secret_identifier });
        if !form.identity.is_empty() && form.identity != "system" {
            key_vault["identityClientId"] = json!(form.identity);
        }
        json!({ "keyVault": key_vault })
    } else {
        let Some(pfx) = submitted.bytes("pfx") else {
            form.file_error = Some("Choose the certificate's .pfx file.".into());
            return Ok(render(StatusCode::BAD_REQUEST, &form));
        };
        let data = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(pfx));
        json!({ "data": data.as_str(), "password": submitted.secret("password").as_str() })
    };
    if form.id.is_empty() {
        form.id_error = Some("Enter an id.".into());
        return Ok(render(StatusCode::BAD_REQUEST, &form));
    }
    let body = json!({ "properties": properties });
    let path = format!("/certificates/{}", encode(&form.id));
    // + Add creates: an existing id is an error here, not a silent replacement.
    if portal.api.exists(&session, &path).await? {
        form.id_error = Some(format!("A certificate with id '{}' already exists.", form.id));
        return Ok(render(StatusCode::CONFLICT, &form));
    }
    match portal.api.send(&session, Method::PUT, &path, Some(&body), None).await {
        Ok(reply) => {
            let thumbprint = text(&reply.body["properties"]["thumbprint"]);
            let mut notice = format!("Certificate {} added (thumbprint {thumbprint}).", form.id);
            if let Some(version) = &form.pinned {
                notice.push_str(&format!(" It pins version {version} and will not rotate."));
            }
            Ok(done(&portal, &session, "/portal/certificates", notice))
        }
        Err(failure) if failure.is_form_error() => {
            form.show_failure(&failure);
            Ok(render(failure.status, &form))
        }
        Err(failure) => Err(failure.into()),
    }
}

/// Select: lists the folder the identifier typed so far names, through the chosen identity.
async fn browse(portal: &Portal, session: &Session, form: &mut AddForm) -> Result<(), PortalError> {
    form.key_vault = true;
    if form.secret_identifier.is_empty() {
        form.identifier_error =
            Some("Type the vault's address and mount first, e.g. https://vault:8200/v1/secret/data/".into());
        return Ok(());
    }
    let identity = if form.identity.is_empty() { "system" } else { form.identity.as_str() };
    let path = format!("/identities/{}/listSecrets", encode(identity));
    let body = json!({ "folder": form.secret_identifier });
    match portal.api.send(session, Method::POST, &path, Some(&body), None).await {
        Ok(reply) => {
            form.browsed = text(&reply.body["folder"]);
            let entries =
                reply.items().map(|e| Entry { name: text(&e["name"]), identifier: text(&e["secretIdentifier"]) });
            form.entries = Some(entries.collect());
            Ok(())
        }
        Err(failure) if failure.status == StatusCode::NOT_FOUND => {
            form.identity_error = Some(format!("Identity '{identity}' is not configured on this node."));
            Ok(())
        }
        Err(failure) if failure.is_form_error() => {
            form.show_failure(&failure);
            Ok(())
        }
        Err(failure) => Err(failure.into()),
    }
}

/// The version a KV identifier pins (`?version=N`), which means it never rotates.
fn pinned_version(identifier: &str) -> Option<String> {
    let (_, query) = identifier.split_once('?')?;
    query.split('&').find_map(|pair| pair.strip_prefix("version=")).map(str::to_owned)
}

pub async fn refresh(
    State(portal): State<Portal>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PortalError> {
    authorise_write(&session, &form.csrf)?;
    let path = format!("/certificates/{}/refreshSecret", encode(&id));
    let notice = match portal.api.send(&session, Method::POST, &path, None, None).await {
        Ok(reply) => {
            let status = &reply.body["properties"]["keyVault"]["lastStatus"];
            format!("Certificate {id} refreshed: {} — {}.", text(&status["code"]), text(&status["message"]))
        }
        Err(failure) if failure.status == StatusCode::BAD_REQUEST => {
            format!("Certificate {id} was not refreshed: {}", failure.summary())
        }
        Err(failure) => return Err(failure.into()),
    };
    Ok(done(&portal, &session, "/portal/certificates", notice))
}

/// A referrer as a link into the portal.
pub struct Referrer {
    pub label: String,
    pub href: String,
}

impl Referrer {
    /// `/apis/{a}/policies/policy`, `/apis/{a}/operations/{o}/policies/policy`,
    /// `/policies/policy` or `/backends/{b}`, as the page that edits it.
    fn of(path: &str) -> Self {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (label, href) = match parts.as_slice() {
            ["apis", api, "operations", op, ..] => (
                format!("API {api}, operation {op} (policy)"),
                format!("/portal/apis/{}/operations/{}/policy", encode(api), encode(op)),
            ),
            ["apis", api, ..] => (format!("API {api} (policy)"), format!("/portal/apis/{}", encode(api))),
            ["backends", backend] => {
                (format!("Backend {backend}"), format!("/portal/backends/{}/edit", encode(backend)))
            }
            ["policies", "policy"] => ("Global policy".to_owned(), "/portal/policy".to_owned()),
            // A kind of referrer this portal has no page for: named as the API names it.
            _ => (path.to_owned(), "/portal".to_owned()),
        };
        Self { label, href }
    }
}

#[derive(Template)]
#[template(path = "certificate_delete.html")]
struct ConfirmDelete {
    chrome: Chrome,
    id: String,
    referrers: Vec<Referrer>,
}

pub async fn confirm_delete(
    State(portal): State<Portal>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PortalError> {
    let referrers = referrers(&portal, &session, &id).await?;
    let chrome = Chrome::new(&portal, &session, "certificates", format!("Delete certificate {id}"));
    Ok(render(StatusCode::OK, &ConfirmDelete { chrome, id, referrers }))
}

async fn referrers(portal: &Portal, session: &Session, id: &str) -> Result<Vec<Referrer>, PortalError> {
    let reply = portal.api.get(session, &format!("/certificates/{}/referrers", encode(id))).await?;
    Ok(reply.items().filter_map(Value::as_str).map(Referrer::of).collect())
}

pub async fn delete(
    State(portal): State<Portal>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PortalError> {
    authorise_write(&session, &form.csrf)?;
    match portal.api.send(&session, Method::DELETE, &format!("/certificates/{}", encode(&id)), None, None).await {
        Ok(_) => Ok(done(&portal, &session, "/portal/certificates", format!("Certificate {id} deleted."))),
        // Referenced since the confirmation was shown: show the referrers again.
        Err(failure) if failure.status == StatusCode::CONFLICT => {
            let referrers = failure.details.iter().map(|(target, _)| Referrer::of(target)).collect();
            let chrome = Chrome::new(&portal, &session, "certificates", format!("Delete certificate {id}"))
                .with_error(Some(failure.message));
            Ok(render(StatusCode::CONFLICT, &ConfirmDelete { chrome, id, referrers }))
        }
        Err(failure) => Err(failure.into()),
    }
}
