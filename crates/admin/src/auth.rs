//! Bearer-token authentication and role checks. Runs before anything else looks at a request,
//! so an anonymous caller learns nothing (not even whether its body was valid).

use std::sync::Arc;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::extract::{Request, State};
use axum::http::{Method, header::AUTHORIZATION};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use certgate_model::{EntityKind, Role, Token};
use certgate_store::Store;
use zeroize::Zeroizing;

use crate::{AdminState, ApiError};

/// Decides which role a bearer token carries.
pub struct Authenticator {
    store: Arc<dyn Store>,
    /// SHA-256 of `CERTGATE_ADMIN_TOKEN`, accepted as a contributor without being stored.
    environment_token: Option<Vec<u8>>,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, environment_token: Option<&str>) -> Self {
        Self { store, environment_token: environment_token.map(|t| sha256(t.as_bytes())) }
    }

    /// The role of `secret`, or `None` if no token has it.
    pub async fn role_of(&self, secret: &str) -> Result<Option<Role>, ApiError> {
        let presented = sha256(secret.as_bytes());
        if let Some(expected) = &self.environment_token
            && verify_slices_are_equal(expected, &presented).is_ok()
        {
            return Ok(Some(Role::Contributor));
        }
        let presented_hex = hex::encode(&presented);
        for record in self.store.list(EntityKind::Token).await? {
            let token: Token = record.decode()?;
            if verify_slices_are_equal(token.secret_sha256.as_bytes(), presented_hex.as_bytes()).is_ok() {
                return Ok(Some(token.role));
            }
        }
        Ok(None)
    }
}

/// A freshly issued token: the secret (shown once) and the digest that is stored.
pub struct IssuedToken {
    pub secret: Zeroizing<String>,
    pub token: Token,
}

/// Issues a new bearer secret for `role`: 256 random bits, `cg_` + base64url.
pub fn issue_token(role: Role) -> Result<IssuedToken, aws_lc_rs::error::Unspecified> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SystemRandom::new().fill(bytes.as_mut())?;
    let secret =
        Zeroizing::new(format!("cg_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref())));
    let secret_sha256 = hex::encode(sha256(secret.as_bytes()));
    Ok(IssuedToken { secret, token: Token { role, secret_sha256 } })
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    digest(&SHA256, bytes).as_ref().to_vec()
}

/// Middleware: 401 without a known token, 403 when a reader tries to change something.
pub async fn require_token(
    State(state): State<AdminState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let bearer = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(bearer) = bearer else {
        return Err(ApiError::unauthorized());
    };
    let Some(role) = state.auth.role_of(bearer).await? else {
        return Err(ApiError::unauthorized());
    };
    let reads = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !reads && !role.may_write() {
        return Err(ApiError::forbidden());
    }
    request.extensions_mut().insert(role);
    Ok(next.run(request).await)
}
