//! What every page shares: the signed-in extractor, the page chrome (navigation, notices, the
//! CSRF token), rendering, and the sign-in and sign-out handlers.

use std::time::Duration;

use askama::Template;
use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::Portal;
use crate::api::ApiFailure;
use crate::session::{COOKIE_NAME, LIFETIME, Role, SIGN_IN_COOKIE, Session, cookie, random_id, set_cookie};

/// The navigation entries, by the section a page belongs to.
const SECTIONS: [(&str, &str, &str); 5] = [
    ("certificates", "Certificates", "/portal/certificates"),
    ("ca-certificates", "CA certificates", "/portal/ca-certificates"),
    ("backends", "Backends", "/portal/backends"),
    ("apis", "APIs", "/portal/apis"),
    ("policy", "Global policy", "/portal/policy"),
];

pub struct NavEntry {
    pub label: &'static str,
    pub href: &'static str,
    pub current: bool,
}

/// The frame around every signed-in page.
pub struct Chrome {
    pub title: String,
    pub nav: Vec<NavEntry>,
    pub role: &'static str,
    pub can_write: bool,
    pub csrf: String,
    pub notice: Option<String>,
    pub error: Option<String>,
}

impl Chrome {
    pub fn new(portal: &Portal, session: &Session, section: &str, title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            nav: SECTIONS.iter().map(|(key, label, href)| NavEntry { label, href, current: *key == section }).collect(),
            role: session.role.label(),
            can_write: session.role.may_write(),
            csrf: session.csrf.clone(),
            notice: portal.sessions.take_notice(&session.id),
            error: None,
        }
    }

    pub fn with_error(mut self, error: Option<String>) -> Self {
        self.error = error;
        self
    }
}

/// Renders a template as the page, or a 500 naming the template error. Pages show the node's
/// configuration to a signed-in user: no cache keeps them, and no other site may frame them.
pub fn render(status: StatusCode, template: &impl Template) -> Response {
    let mut response = match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "portal page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page failed to render").into_response()
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    response
}

/// Why a portal request failed.
pub enum PortalError {
    /// Not signed in, or the session ended.
    SignIn,
    /// A form without this session's CSRF token, or a write by a reader.
    Forbidden(&'static str),
    Api(ApiFailure),
}

impl From<ApiFailure> for PortalError {
    fn from(failure: ApiFailure) -> Self {
        PortalError::Api(failure)
    }
}

#[derive(Template)]
#[template(path = "problem.html")]
struct Problem {
    title: &'static str,
    message: String,
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        match self {
            PortalError::SignIn => Redirect::to("/portal/signin").into_response(),
            PortalError::Forbidden(message) => {
                render(StatusCode::FORBIDDEN, &Problem { title: "Forbidden", message: message.into() })
            }
            // The token was revoked while the session lived.
            PortalError::Api(failure) if failure.status == StatusCode::UNAUTHORIZED => {
                Redirect::to("/portal/signin").into_response()
            }
            PortalError::Api(failure) if failure.status == StatusCode::FORBIDDEN => render(
                StatusCode::FORBIDDEN,
                &Problem { title: "Forbidden", message: "Your token may read but not change anything.".into() },
            ),
            PortalError::Api(failure) => {
                let title = if failure.status == StatusCode::NOT_FOUND { "Not found" } else { "Request failed" };
                render(failure.status, &Problem { title, message: failure.summary() })
            }
        }
    }
}

impl FromRequestParts<Portal> for Session {
    type Rejection = PortalError;

    async fn from_request_parts(parts: &mut Parts, portal: &Portal) -> Result<Self, Self::Rejection> {
        portal.sessions.find(&parts.headers).ok_or(PortalError::SignIn)
    }
}

/// A form this session sent: it carries the session's CSRF token.
pub fn check_csrf(session: &Session, csrf: &str) -> Result<(), PortalError> {
    match session.csrf_matches(csrf) {
        true => Ok(()),
        false => Err(PortalError::Forbidden(
            "The form is stale or was not sent by this portal (CSRF token mismatch). Reload the page and try again.",
        )),
    }
}

/// A form that changes something: sent by this session, which may write. The API refuses a
/// reader's write anyway; this refuses it before anything is read for it.
pub fn authorise_write(session: &Session, csrf: &str) -> Result<(), PortalError> {
    check_csrf(session, csrf)?;
    match session.role.may_write() {
        true => Ok(()),
        false => Err(PortalError::Forbidden("Your token may read but not change anything.")),
    }
}

/// Sends the browser to `to` after a successful write, leaving `notice` for the next page.
pub fn done(portal: &Portal, session: &Session, to: &str, notice: String) -> Response {
    portal.sessions.set_notice(&session.id, notice);
    Redirect::to(to).into_response()
}

pub async fn home(session: Option<Session>) -> Redirect {
    match session {
        Some(_) => Redirect::to("/portal/certificates"),
        None => Redirect::to("/portal/signin"),
    }
}

impl axum::extract::OptionalFromRequestParts<Portal> for Session {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, portal: &Portal) -> Result<Option<Self>, Self::Rejection> {
        Ok(portal.sessions.find(&parts.headers))
    }
}

pub async fn stylesheet() -> Response {
    let headers = [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=300")];
    (headers, include_str!("../static/portal.css")).into_response()
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignIn {
    csrf: String,
    error: Option<String>,
}

pub async fn sign_in_form(State(portal): State<Portal>) -> Response {
    sign_in_page(&portal, StatusCode::OK, None)
}

/// The sign-in form, with a fresh pre-session CSRF token in its own cookie (double submit).
fn sign_in_page(portal: &Portal, status: StatusCode, error: Option<String>) -> Response {
    let Ok(csrf) = random_id() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no randomness for a CSRF token").into_response();
    };
    let response = render(status, &SignIn { csrf: csrf.clone(), error });
    with_cookies(portal, response, &[(SIGN_IN_COOKIE, &csrf, SIGN_IN_FORM_LIFETIME)])
}

/// How long a sign-in form can be sent.
const SIGN_IN_FORM_LIFETIME: Duration = Duration::from_secs(3600);

/// `response` setting `(name, value, max-age)` cookies (max-age zero deletes one).
fn with_cookies(portal: &Portal, mut response: Response, cookies: &[(&str, &str, Duration)]) -> Response {
    for (name, value, max_age) in cookies {
        // Names are constants and values hex: always a valid header value.
        if let Ok(value) = HeaderValue::from_str(&set_cookie(name, value, *max_age, portal.settings.secure_cookies)) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

#[derive(Deserialize)]
pub struct SignInForm {
    csrf: String,
    token: Zeroizing<String>,
}

pub async fn sign_in(State(portal): State<Portal>, headers: HeaderMap, Form(form): Form<SignInForm>) -> Response {
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty()
        || aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), form.csrf.as_bytes()).is_err()
    {
        return sign_in_page(
            &portal,
            StatusCode::FORBIDDEN,
            Some("The sign-in form expired. Please try again.".into()),
        );
    }
    let token = Zeroizing::new(form.token.trim().to_owned());
    let role = match portal.api.caller(&token).await {
        Ok(reply) if reply.body["role"] == "contributor" => Role::Contributor,
        Ok(_) => Role::Reader,
        Err(failure) if failure.status == StatusCode::UNAUTHORIZED => {
            return sign_in_page(&portal, StatusCode::UNAUTHORIZED, Some("This token is not valid.".into()));
        }
        Err(failure) => return sign_in_page(&portal, failure.status, Some(failure.summary())),
    };
    // A new session id at every sign-in; the one the browser held (if any) ends.
    if let Some(previous) = portal.sessions.find(&headers) {
        portal.sessions.end(&previous.id);
    }
    let session = match portal.sessions.create(token, role) {
        Ok(session) => session,
        Err(refused) => return (StatusCode::SERVICE_UNAVAILABLE, refused.to_string()).into_response(),
    };
    tracing::info!(role = role.label(), "portal sign-in");
    let response = Redirect::to("/portal/certificates").into_response();
    with_cookies(&portal, response, &[(COOKIE_NAME, &session.id, LIFETIME), (SIGN_IN_COOKIE, "", Duration::ZERO)])
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    pub csrf: String,
}

pub async fn sign_out(State(portal): State<Portal>, session: Session, Form(form): Form<CsrfOnly>) -> Response {
    if let Err(refused) = check_csrf(&session, &form.csrf) {
        return refused.into_response();
    }
    portal.sessions.end(&session.id);
    with_cookies(&portal, Redirect::to("/portal/signin").into_response(), &[(COOKIE_NAME, "", Duration::ZERO)])
}

/// A multipart form's fields as sent. Every value is zeroized when dropped: one may be a PFX
/// file or its password.
pub struct MultipartFields(Vec<(String, Zeroizing<Vec<u8>>)>);

impl MultipartFields {
    pub async fn read(mut multipart: axum::extract::Multipart) -> Result<Self, ApiFailure> {
        let broken = |e: axum::extract::multipart::MultipartError| ApiFailure::bad_request(e.body_text());
        let mut fields = Vec::new();
        while let Some(field) = multipart.next_field().await.map_err(broken)? {
            let name = field.name().unwrap_or_default().to_owned();
            fields.push((name, Zeroizing::new(field.bytes().await.map_err(broken)?.to_vec())));
        }
        Ok(Self(fields))
    }

    /// The file or value sent as `name`, if it is not empty.
    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.0.iter().find(|(n, v)| n == name && !v.is_empty()).map(|(_, v)| v.as_slice())
    }

    /// The text sent as `name`, trimmed (empty when absent).
    pub fn text(&self, name: &str) -> String {
        self.bytes(name).map(|v| String::from_utf8_lossy(v).trim().to_owned()).unwrap_or_default()
    }

    /// A secret sent as `name`, as typed (empty when absent).
    pub fn secret(&self, name: &str) -> Zeroizing<String> {
        Zeroizing::new(self.bytes(name).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default())
    }
}
