//! The one boundary error type. It owns the HTTP mapping and the JSON error
//! envelope of the contract: `{"error": {"code": "...", "message": "..."}}`.
//!
//! # Error policy
//!
//! - **Client mistakes** (bad input, a refused command, a missing secret)
//!   are 4xx, with a message that says what was wrong. They are not logged
//!   as errors: they are the service working.
//! - **Infrastructure failures** become 503 with `Retry-After` when trying
//!   again may help (the store is overloaded or unreachable, a sequence is
//!   contended) or 500 otherwise (corrupt data, a bug). They keep their
//!   cause ([`ApiError::Unavailable`] and [`ApiError::Internal`] hold it as
//!   their `source`), and are logged **once**, with the whole cause chain,
//!   where they become a response ([`IntoResponse`] below), never where
//!   they are converted. The client sees only the status and a generic
//!   message: causes can name tables, paths and internals.
//! - Lower layers return typed errors with context (`StoreError` keeps the
//!   backend's error as its source); only this module decides statuses.

use axum::extract::rejection::PathRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use openfloor_commands::ExecuteError;
use openfloor_domain::command::Refusal;
use openfloor_domain::ids::MalformedId;
use openfloor_domain::input::InvalidText;
use openfloor_store::{cause_chain, BoxError, StoreError};
use serde_json::json;

/// Seconds a client should wait after a 503.
const RETRY_AFTER_SECONDS: u32 = 1;
/// Seconds to wait after a 503 that only an operator can fix.
const UNROUTED_RETRY_AFTER_SECONDS: u32 = 60;

/// The error code of an error answer, kept on the response for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

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
    /// A command the domain refused (409, or 404 for an unknown question).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A known path asked with a method it does not serve (the router adds
    /// the `Allow` header).
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The path and query are longer than this many bytes.
    #[error("the request's path and query are longer than {0} bytes")]
    UriTooLong(usize),
    /// Too many header fields, or too many bytes of them; the message says
    /// which.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// A body route was sent something that does not say it is JSON.
    #[error("the request body must be JSON, sent with Content-Type: application/json")]
    UnsupportedMediaType,
    /// A browser reported the write as coming from another site's page.
    #[error("requests from other sites' pages are refused")]
    CrossSite,
    /// The client did not send the body it announced in time.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// Too many requests from one voter or address; the seconds to wait.
    #[error("too many requests; try again in {0} s")]
    RateLimited(u64),
    /// The event has as many questions as an event may have.
    #[error("this event has reached its limit of {0} questions")]
    QuestionLimit(u64),
    /// The event lives in another region that this deployment has no URL
    /// for: it is not served here (that would split its counts), and the
    /// client cannot be sent on. An operator must configure the region.
    #[error("this event lives in region {region}, which this deployment cannot route to")]
    HomedElsewhere { region: String },
    /// This region does not know the event yet, and its id is young enough
    /// that it may have been created in another region a moment ago: the
    /// directory is still replicating. A passing state, never "gone".
    #[error("this event is not known in this region yet (just created elsewhere?); try again")]
    NotHereYet,
    /// Retryable: the cause says why (for the log, never the client).
    #[error("the service is busy; try again shortly")]
    Unavailable(#[source] BoxError),
    /// Not retryable: a bug or damaged data.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl ApiError {
    /// A retryable failure, keeping its cause.
    pub fn unavailable(cause: impl Into<BoxError>) -> Self {
        ApiError::Unavailable(cause.into())
    }

    /// A failure that is nobody's mistake but ours, keeping its cause.
    pub fn internal(cause: impl Into<BoxError>) -> Self {
        ApiError::Internal(cause.into())
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::InvalidInput(_) => (StatusCode::BAD_REQUEST, "invalid_input"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) | ApiError::Refused(Refusal::NoSuchQuestion) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            ApiError::Refused(Refusal::EventClosed) => (StatusCode::CONFLICT, "event_closed"),
            ApiError::Refused(Refusal::QuestionIdReused) => {
                (StatusCode::CONFLICT, "question_id_reused")
            }
            ApiError::Refused(Refusal::SequenceExhausted) => {
                (StatusCode::CONFLICT, "sequence_exhausted")
            }
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            ApiError::HeadersTooLarge(_) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            ApiError::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::CrossSite => (StatusCode::FORBIDDEN, "cross_site"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::QuestionLimit(_) => (StatusCode::CONFLICT, "question_limit"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::HomedElsewhere { .. } => (StatusCode::SERVICE_UNAVAILABLE, "homed_elsewhere"),
            ApiError::NotHereYet => (StatusCode::SERVICE_UNAVAILABLE, "not_here_yet"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        // The one place a 5xx is logged, with everything that led to it.
        match &self {
            ApiError::HomedElsewhere { region } => {
                tracing::warn!(
                    %region,
                    "answered 503: event homed in a region with no configured URL"
                );
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(
                    status = status.as_u16(),
                    error = %cause_chain(cause.as_ref()),
                    "answered 503"
                );
            }
            ApiError::Internal(cause) => {
                tracing::error!(
                    status = status.as_u16(),
                    error = %cause_chain(cause.as_ref()),
                    "answered 500"
                );
            }
            _ => {}
        }
        let body = json!({"error": {"code": code, "message": self.to_string()}});
        let mut response = (status, axum::Json(body)).into_response();
        // For the request metrics: refusals are counted by reason.
        response.extensions_mut().insert(ErrorCode(code));
        let headers = response.headers_mut();
        match self {
            ApiError::RateLimited(seconds) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            ApiError::Unavailable(_) | ApiError::NotHereYet => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            ApiError::HomedElsewhere { .. } => {
                // Not a passing state: only an operator's fix helps.
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(UNROUTED_RETRY_AFTER_SECONDS),
                );
            }
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
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
                ApiError::unavailable(error)
            }
            StoreError::Corrupt { .. } | StoreError::AlreadyExists(_) | StoreError::TooLarge(_) => {
                ApiError::internal(error)
            }
        }
    }
}

impl<A: Into<ApiError>> From<ExecuteError<A>> for ApiError {
    fn from(error: ExecuteError<A>) -> Self {
        match error {
            ExecuteError::Refused(refusal) => ApiError::Refused(refusal),
            ExecuteError::NotAdmitted(why) => why.into(),
            ExecuteError::Store(error) => error.into(),
            contended @ ExecuteError::Contended { .. } => {
                ApiError::unavailable(contended.to_string())
            }
        }
    }
}

/// A path that does not decode (`%ff` is no UTF-8 in a parameter): the
/// client's mistake, in the envelope (axum's own answer is plain text).
impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
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

impl From<crate::regions::UnknownRegion> for ApiError {
    fn from(e: crate::regions::UnknownRegion) -> Self {
        ApiError::InvalidInput(e.to_string())
    }
}

/// Commands without an admission check cannot fail it.
impl From<std::convert::Infallible> for ApiError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}
