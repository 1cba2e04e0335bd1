//! Errors as `application/problem+json` (RFC 9457).
//!
//! Every error a client can cause maps to a 4xx with a body saying what was wrong; a
//! store outage is a 503 with `Retry-After`. Nothing a client sends becomes a 500.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use brokkr_core::Error;
use brokkr_core::error::FieldError;
use serde::Serialize;

/// A problem document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short, human-readable summary of the kind.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// Offending fields, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// The error responses every API operation may give, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
pub enum ErrorResponses {
    /// 400.
    #[response(
        status = 400,
        description = "malformed JSON, path or query",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
    /// 401.
    #[response(
        status = 401,
        description = "missing or unknown key",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    /// 403.
    #[response(
        status = 403,
        description = "wrong role or not the owner",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
    /// 404.
    #[response(
        status = 404,
        description = "unknown entity",
        content_type = "application/problem+json"
    )]
    NotFound(Problem),
    /// 408.
    #[response(
        status = 408,
        description = "request took too long",
        content_type = "application/problem+json"
    )]
    Timeout(Problem),
    /// 413.
    #[response(
        status = 413,
        description = "body too large",
        content_type = "application/problem+json"
    )]
    TooLarge(Problem),
    /// 415.
    #[response(
        status = 415,
        description = "body is not JSON",
        content_type = "application/problem+json"
    )]
    NotJson(Problem),
    /// 422.
    #[response(
        status = 422,
        description = "invalid input",
        content_type = "application/problem+json"
    )]
    Invalid(Problem),
    /// 429.
    #[response(
        status = 429,
        description = "too many failed authentications from this address (Retry-After)",
        content_type = "application/problem+json"
    )]
    TooManyRequests(Problem),
    /// 503.
    #[response(
        status = 503,
        description = "store unavailable; retry (Retry-After)",
        content_type = "application/problem+json"
    )]
    Unavailable(Problem),
}

/// An error on its way to becoming a problem response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: String,
    errors: Vec<FieldError>,
    retry_after: Option<u64>,
}

impl ApiError {
    /// A problem with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// Tells the client when to retry (seconds).
    #[must_use]
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The status it will be sent with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

fn slug(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad-request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not-found",
        405 => "method-not-allowed",
        409 => "conflict",
        410 => "gone",
        413 => "payload-too-large",
        415 => "unsupported-media-type",
        422 => "invalid",
        429 => "too-many-requests",
        503 => "unavailable",
        504 => "timeout",
        _ => "error",
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let detail = err.to_string();
        match err {
            Error::Invalid(errors) => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                detail,
                errors,
                retry_after: None,
            },
            Error::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, detail),
            Error::Conflict(_) => Self::new(StatusCode::CONFLICT, detail),
            Error::Gone(_) => Self::new(StatusCode::GONE, detail),
            Error::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, detail),
            Error::Unauthorized => Self::new(
                StatusCode::UNAUTHORIZED,
                "a valid key is required: Authorization: Bearer <PAK>",
            ),
            Error::Unavailable(_) => {
                // The cause may name internals; log it, tell the client only to retry.
                tracing::warn!(error = %detail, "store unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the broker's store is unavailable; retry shortly",
                )
                .retry_after(1)
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = match &rejection {
            JsonRejection::JsonSyntaxError(_) => StatusCode::BAD_REQUEST,
            JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            other => other.status(),
        };
        Self::new(status, rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("invalid path: {}", rejection.body_text()),
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("invalid query: {}", rejection.body_text()),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let retry_after = self.retry_after;
        let problem = Problem {
            type_: format!("https://brokkr.dev/problems/{}", slug(status)),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.detail,
            errors: self.errors,
        };
        let mut response = (status, Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
