//! Extractors that turn untrusted request parts into domain types, with
//! rejections that are [`ApiError`]s (so every failure uses the envelope).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use openfloor_domain::ids::{EventId, QuestionId, VoterToken};
use openfloor_domain::secret::HostSecret;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body accepted (API.md: 8 KiB). A question of 1000
/// four-byte characters, JSON-escaped, still fits.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// A JSON body, parsed whatever the `Content-Type` (clients are forgiven a
/// missing header; they are not forgiven bad JSON).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(MAX_BODY_BYTES)
                } else {
                    ApiError::BadRequest(format!(
                        "could not read the request body: {}",
                        e.body_text()
                    ))
                }
            })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))
    }
}

/// `{eid}` of the path.
pub struct EventPath(pub EventId);

/// `{eid}` and `{qid}` of the path.
pub struct QuestionPath(pub EventId, pub QuestionId);

impl<S: Send + Sync> FromRequestParts<S> for EventPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(params) =
            axum::extract::Path::<Vec<(String, String)>>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let eid = find(&params, "eid")?;
        Ok(EventPath(eid.parse()?))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QuestionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(params) =
            axum::extract::Path::<Vec<(String, String)>>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        Ok(QuestionPath(
            find(&params, "eid")?.parse()?,
            find(&params, "qid")?.parse()?,
        ))
    }
}

fn find<'a>(params: &'a [(String, String)], name: &str) -> Result<&'a str, ApiError> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .ok_or(ApiError::Internal)
}

/// The bearer secret a host presented, if any. Checked against the event's
/// hash by the handler, which knows the event.
pub struct PresentedSecret(pub Option<HostSecret>);

impl<S: Send + Sync> FromRequestParts<S> for PresentedSecret {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .map(HostSecret::presented);
        Ok(PresentedSecret(secret))
    }
}

/// The voter's token, put in the request by the voter middleware.
pub struct Voter(pub VoterToken);

impl<S: Send + Sync> FromRequestParts<S> for Voter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<VoterToken>()
            .cloned()
            .map(Voter)
            .ok_or(ApiError::Internal)
    }
}

/// The connection's remote address, where the server recorded one (the
/// local server does; a Lambda or an in-process test does not).
pub struct Peer(pub Option<std::net::SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}
