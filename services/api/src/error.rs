//! The one boundary error type. It owns the HTTP mapping and the JSON error
//! envelope of API.md: `{"error": {"code": "...", "message": "..."}}`.
//!
//! Policy: client mistakes say what was wrong; infrastructure failures
//! become 503 (retryable, with `Retry-After`) or 500, with details logged,
//! never returned.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use openfloor_domain::ids::MalformedId;
use openfloor_domain::input::InvalidText;
use openfloor_store::StoreError;
use serde_json::json;

/// Seconds a client should wait after a 503.
const RETRY_AFTER_SECONDS: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("a host secret is required and must match")]
    Unauthorized,
    #[error("{0}")]
    NotFound(&'static str),
    #[error("this event is closed to new questions")]
    EventClosed,
    #[error("a question with this id already exists with other content")]
    QuestionIdReused,
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// Too many requests from one voter; the seconds to wait.
    #[error("too many requests; try again in {0} s")]
    RateLimited(u64),
    #[error("the service is busy; try again shortly")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::InvalidInput(_) => (StatusCode::BAD_REQUEST, "invalid_input"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::EventClosed => (StatusCode::CONFLICT, "event_closed"),
            ApiError::QuestionIdReused => (StatusCode::CONFLICT, "question_id_reused"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = json!({"error": {"code": code, "message": self.to_string()}});
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            ApiError::RateLimited(seconds) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            ApiError::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            _ => {}
        }
        if matches!(self, ApiError::Unauthorized) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // Errors are about this request; never let a shared cache keep one.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Overloaded { .. } | StoreError::Unavailable { .. } => {
                tracing::warn!(%error, "storage unavailable");
                ApiError::Unavailable
            }
            StoreError::Corrupt { .. } | StoreError::AlreadyExists(_) | StoreError::TooLarge(_) => {
                tracing::error!(%error, "storage error");
                ApiError::Internal
            }
        }
    }
}

impl From<MalformedId> for ApiError {
    fn from(e: MalformedId) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<InvalidText> for ApiError {
    fn from(e: InvalidText) -> Self {
        ApiError::InvalidInput(e.to_string())
    }
}
