//! Errors as `application/problem+json` (RFC 9457), mapped to status codes
//! in this one place. Every `type` is a stable URI under
//! `https://reelflow.dev/problems/`, so clients can branch on it; validation
//! failures list every bad field with its own message.
//!
//! Whose fault it is decides the status: the caller's (4xx, with a detail
//! that says what to fix), a dependency's (503, with `Retry-After`; 504 when
//! the dataflow service took too long, see [`crate::upstream`]), or ours
//! (500, logged with its whole cause chain, never shown to the caller).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

/// A problem detail document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short, human-readable summary of the kind.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For validation failures: every field that is wrong, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field, as named in the request (`tags[2]` for list items).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// An error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Problem {
    /// A problem of kind `slug` (the last segment of its type URI).
    pub fn new(status: StatusCode, slug: &str, title: &str) -> Self {
        Self {
            kind: format!("https://reelflow.dev/problems/{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: None,
            errors: Vec::new(),
        }
    }

    /// Adds the detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// 404 for a path no route matches.
    pub fn not_found(path: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not Found").detail(format!("no resource at {path}"))
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, [(header::CONTENT_TYPE, "application/problem+json")], Json(self)).into_response()
    }
}

/// Every error a handler can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Fields failed validation (422).
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// The request cannot be understood (400).
    #[error("{0}")]
    BadRequest(String),
    /// No valid credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials, not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// Nothing there, or nothing the caller may know of (404).
    #[error("{0}")]
    NotFound(String),
    /// Conflicts with existing state (409).
    #[error("{0}")]
    Conflict(String),
    /// Too many requests (429).
    #[error("too many requests; retry in {retry_after_s} s")]
    RateLimited {
        /// Seconds until a retry can succeed.
        retry_after_s: u64,
    },
    /// A checksum the client sent does not match the bytes (tus: 460).
    #[error("{0}")]
    ChecksumMismatch(String),
    /// Body too large (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Wrong content type (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A dependency (database, log, storage) failed; retrying may help (503).
    #[error("{0}")]
    Unavailable(String),
    /// The dataflow service did not answer in time; retrying may help (504).
    #[error("{0}")]
    UpstreamTimeout(String),
    /// Our bug (500).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Result of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A 422 for one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::warn!(error = %e, "database unavailable");
                Self::Unavailable("the database is unavailable; try again shortly".into())
            }
            other => Self::Internal(anyhow::Error::new(other).context("database query")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use StatusCode as S;
        let (problem, extra): (Problem, Option<(header::HeaderName, HeaderValue)>) = match self {
            Self::Validation(errors) => {
                let mut p = Problem::new(S::UNPROCESSABLE_ENTITY, "validation", "Invalid Request")
                    .detail(format!("{} field(s) are invalid", errors.len()));
                p.errors = errors;
                (p, None)
            }
            Self::BadRequest(d) => (
                Problem::new(S::BAD_REQUEST, "bad-request", "Bad Request").detail(d),
                None,
            ),
            Self::Unauthorized(d) => (
                Problem::new(S::UNAUTHORIZED, "unauthorized", "Unauthorized").detail(d),
                Some((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))),
            ),
            Self::Forbidden(d) => (Problem::new(S::FORBIDDEN, "forbidden", "Forbidden").detail(d), None),
            Self::NotFound(d) => (Problem::new(S::NOT_FOUND, "not-found", "Not Found").detail(d), None),
            Self::Conflict(d) => (Problem::new(S::CONFLICT, "conflict", "Conflict").detail(d), None),
            Self::RateLimited { retry_after_s } => (
                Problem::new(S::TOO_MANY_REQUESTS, "rate-limited", "Too Many Requests")
                    .detail(format!("rate limit exceeded; retry in {retry_after_s} s")),
                Some((header::RETRY_AFTER, HeaderValue::from(retry_after_s))),
            ),
            Self::PayloadTooLarge(d) => (
                Problem::new(S::PAYLOAD_TOO_LARGE, "payload-too-large", "Payload Too Large").detail(d),
                None,
            ),
            Self::ChecksumMismatch(d) => {
                let mut p = Problem::new(S::BAD_REQUEST, "checksum-mismatch", "Checksum Mismatch").detail(d);
                p.status = 460;
                (p, None)
            }
            Self::UnsupportedMediaType(d) => (
                Problem::new(
                    S::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "Unsupported Media Type",
                )
                .detail(d),
                None,
            ),
            Self::Unavailable(d) => (
                Problem::new(S::SERVICE_UNAVAILABLE, "unavailable", "Service Unavailable").detail(d),
                Some((header::RETRY_AFTER, HeaderValue::from_static("2"))),
            ),
            Self::UpstreamTimeout(d) => (
                Problem::new(S::GATEWAY_TIMEOUT, "gateway-timeout", "Gateway Timeout").detail(d),
                Some((header::RETRY_AFTER, HeaderValue::from_static("2"))),
            ),
            Self::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                (
                    Problem::new(S::INTERNAL_SERVER_ERROR, "internal", "Internal Server Error"),
                    None,
                )
            }
        };
        let mut response = problem.into_response();
        if let Some((name, value)) = extra {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// A JSON body whose rejections are problem documents: 415 without a JSON
/// content type, 400 for broken JSON, 422 for JSON of the wrong shape, 413
/// past the body limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => {
                    ApiError::UnsupportedMediaType("send the body as JSON with Content-Type: application/json".into())
                }
                JsonRejection::JsonSyntaxError(e) => {
                    ApiError::BadRequest(format!("the body is not valid JSON: {}", e.body_text()))
                }
                JsonRejection::JsonDataError(e) => {
                    let text = e.body_text();
                    // "Failed to deserialize the JSON body into the target type: title: invalid type…"
                    let message = text
                        .split_once("target type: ")
                        .map(|(_, m)| m.to_string())
                        .unwrap_or(text);
                    ApiError::Validation(vec![FieldError::new(field_of(&message), message)])
                }
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::PayloadTooLarge("the request body is larger than this endpoint accepts".into())
                }
                other => ApiError::BadRequest(other.body_text()),
            }),
        }
    }
}

/// Best guess at the field a serde message is about: `missing field `x``,
/// `unknown field `x``, or a `path: message` prefix.
fn field_of(message: &str) -> String {
    if let Some(rest) = message.split('`').nth(1)
        && (message.contains("missing field") || message.contains("unknown field"))
    {
        return rest.to_string();
    }
    match message.split_once(": ") {
        Some((path, _)) if !path.contains(' ') => path.to_string(),
        _ => "body".to_string(),
    }
}

/// A path parameter whose rejection is a problem document (400 naming the
/// bad segment) instead of axum's plain text.
#[derive(Debug, Clone, Copy)]
pub struct ApiPath<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}
