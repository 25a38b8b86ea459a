use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use certgate_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// Every failure of the management API, rendered in APIM's error envelope by one function.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<ErrorDetail>,
    /// Seconds for `Retry-After`, for conditions expected to pass.
    retry_after: Option<u32>,
}

/// `{"error": {"code", "message", "details": [...]}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ErrorDetail>,
}

/// One field at fault (`target`) or one referrer (for conflicts).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub target: String,
    pub message: String,
}

/// An APIM property that asks for behaviour certgate does not have, checked on a write.
pub(crate) struct Unsupported {
    /// The property's JSON path, e.g. `properties.proxy`.
    pub target: &'static str,
    /// Whether the request asks for it.
    pub asked: bool,
    /// What certgate does not do, and what it does instead.
    pub message: &'static str,
}

impl Unsupported {
    /// The first property asked for is a 400 naming it, never silently ignored.
    pub(crate) fn refuse(checks: impl IntoIterator<Item = Unsupported>) -> Result<(), ApiError> {
        match checks.into_iter().find(|check| check.asked) {
            Some(check) => Err(ApiError::validation(check.target, check.message)),
            None => Ok(()),
        }
    }
}

impl ApiError {
    /// A 400 naming one field at fault.
    pub fn validation(target: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validations(vec![(target.into(), message.into())])
    }

    /// A 400 naming every field at fault.
    pub fn validations(faults: Vec<(String, String)>) -> Self {
        Self {
            details: faults
                .into_iter()
                .map(|(target, message)| ErrorDetail { code: "ValidationError".into(), target, message })
                .collect(),
            ..Self::plain(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                "One or more fields contain incorrect values:".into(),
            )
        }
    }

    pub fn not_found(collection: &str, id: &str) -> Self {
        Self::plain(StatusCode::NOT_FOUND, "NotFound", format!("{collection} entity '{id}' was not found."))
    }

    pub fn unknown_path() -> Self {
        Self::plain(StatusCode::NOT_FOUND, "NotFound", "No management resource exists at this path.".into())
    }

    /// An ARM path naming a subscription, resource group or service this node is not.
    pub fn unknown_service(prefix: &str) -> Self {
        Self::plain(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The resource '{prefix}' was not found on this node."),
        )
    }

    /// ARM's answer to a request without `?api-version=`.
    pub fn missing_api_version() -> Self {
        Self::plain(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.".into(),
        )
    }

    pub fn method_not_allowed(message: &str) -> Self {
        Self::plain(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message.into())
    }

    pub fn precondition_failed() -> Self {
        Self::plain(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "The entity has been modified since it was read (If-Match does not match the current ETag).".into(),
        )
    }

    pub fn conflict(message: impl Into<String>, details: Vec<ErrorDetail>) -> Self {
        Self { details, ..Self::plain(StatusCode::CONFLICT, "Conflict", message.into()) }
    }

    pub fn unauthorized() -> Self {
        Self::plain(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "A valid bearer token is required (Authorization: Bearer <token>).".into(),
        )
    }

    pub fn forbidden() -> Self {
        Self::plain(StatusCode::FORBIDDEN, "Forbidden", "This operation requires the contributor role.".into())
    }

    pub fn payload_too_large(limit: usize) -> Self {
        let mut error = Self::plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("The request body exceeds the limit of {limit} bytes."),
        );
        error.details.push(ErrorDetail {
            code: "PayloadTooLarge".into(),
            target: "body".into(),
            message: format!("at most {limit} bytes are accepted"),
        });
        error
    }

    /// An unexpected failure: the caller gets an activity id, the log gets the cause.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        let activity_id = activity_id();
        tracing::error!(activity_id, %cause, "management request failed");
        Self::plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            format!("Internal server error (activityId {activity_id})."),
        )
    }

    /// The store cannot do its part right now (disk full, read-only, unreachable): nothing was
    /// changed, and the caller may retry. The message names the cause; the log has the detail.
    pub fn store_unavailable(error: &StoreError) -> Self {
        tracing::warn!(error = %certgate_model::error_chain(error), "the store refused a management request");
        Self {
            retry_after: Some(RETRY_AFTER_SECONDS),
            ..Self::plain(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", error.to_string())
        }
    }

    fn plain(status: StatusCode, code: &'static str, message: String) -> Self {
        Self { status, code, message, details: Vec::new(), retry_after: None }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Another write committed between a handler's checks and its write: checked again by
    /// [`crate::AdminState::without_races`], and a 409 asking to retry once that gives up.
    fn raced() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::plain(
                StatusCode::CONFLICT,
                RACED,
                "Other changes were made at the same time as this one, again and again; retry it.".into(),
            )
        }
    }

    pub(crate) fn is_raced(&self) -> bool {
        self.code == RACED
    }
}

const RACED: &str = "ConcurrentChange";

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::PreconditionFailed { .. } => ApiError::precondition_failed(),
            StoreError::Raced => ApiError::raced(),
            StoreError::Taken { field, .. } => ApiError::validation(format!("properties.{field}"), error.to_string()),
            // Callers that can name the entity map NotFound themselves; this is the fallback.
            StoreError::NotFound => Self::plain(StatusCode::NOT_FOUND, "NotFound", "The entity was not found.".into()),
            unavailable @ StoreError::Unavailable { .. } => ApiError::store_unavailable(&unavailable),
            other => ApiError::internal(&other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            ErrorResponse { error: ErrorBody { code: self.code.into(), message: self.message, details: self.details } };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// How long a client should wait before retrying a write the store refused.
const RETRY_AFTER_SECONDS: u32 = 5;

fn activity_id() -> String {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 16];
    // An all-zero id on RNG failure still lets the log line be found by time.
    let _ = SystemRandom::new().fill(&mut bytes);
    hex::encode(bytes)
}
