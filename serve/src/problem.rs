//! Errors as `application/problem+json` (RFC 9457), mapped to status codes
//! in this one place. Every `type` is a stable URI under
//! `https://reelflow.dev/problems/`, so clients can branch on it.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A problem detail document.
#[derive(Debug, Clone, Serialize)]
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
}

impl Problem {
    /// A problem of kind `slug` (the last segment of its type URI).
    pub fn new(status: StatusCode, slug: &str, title: &str) -> Self {
        Self {
            kind: format!("https://reelflow.dev/problems/{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: None,
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
