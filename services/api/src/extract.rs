//! Extractors that turn untrusted request parts into domain types, with
//! rejections that are [`ApiError`]s (so every failure uses the envelope).

use axum::body::{Bytes, HttpBody as _};
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum_extra::headers::authorization::Bearer;
use axum_extra::headers::{Authorization, HeaderMapExt};
use openfloor_domain::ids::{EventId, QuestionId, VoterToken};
use openfloor_domain::secret::HostSecret;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body accepted (API.md: 16 KiB): the largest valid ask in
/// any JSON encoding fits, 1,000 characters of text and 100 of author name
/// each written as a `\uXXXX\uXXXX` surrogate pair (12 bytes), about
/// 13.3 KB.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A JSON object body. It must be sent as `Content-Type: application/json`
/// (415 otherwise): a page on another site can then only send it after a
/// CORS preflight, which this service never grants, so it cannot make a
/// visitor's browser ask or vote. A browser that says the request comes
/// from another site (`Sec-Fetch-Site: cross-site`) is refused outright
/// (403). Every body of the contract is an object: an array or a scalar is
/// a 400, even where serde could read a struct from an array.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers();
        if headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
        {
            return Err(ApiError::CrossSite);
        }
        if !headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json)
        {
            return Err(ApiError::UnsupportedMediaType);
        }
        // A body announced over the limit is refused before any of it is
        // read: hyper asks an `Expect: 100-continue` client for its body
        // only when the body is first read, so that client is spared
        // sending it for nothing.
        if req.body().size_hint().lower() > MAX_BODY_BYTES as u64 {
            return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
        }
        let deadline = req
            .extensions()
            .get::<crate::serve::BodyDeadline>()
            .map(|d| d.0);
        let read = Bytes::from_request(req, state);
        let read = match deadline {
            Some(deadline) => tokio::time::timeout(deadline, read)
                .await
                .map_err(|_| ApiError::BodyTimeout)?,
            None => read.await,
        };
        let bytes = read.map_err(|e: BytesRejection| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(MAX_BODY_BYTES)
            } else {
                ApiError::BadRequest(format!(
                    "could not read the request body: {}",
                    e.body_text()
                ))
            }
        })?;
        // JSON's whitespace is exactly these four bytes (RFC 8259).
        let first = bytes
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        if first.is_some_and(|b| *b != b'{') {
            return Err(ApiError::BadRequest(
                "malformed JSON body: expected a JSON object".into(),
            ));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))
    }
}

/// Whether a `Content-Type` names JSON: `application/json`, with any
/// parameters (`; charset=utf-8`), in any letter case.
fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// `{eid}` of the path.
pub struct EventPath(pub EventId);

/// `{eid}` and `{qid}` of the path.
pub struct QuestionPath(pub EventId, pub QuestionId);

/// The path's parameters, whatever the route.
async fn path_params<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<Vec<(String, String)>, ApiError> {
    let axum::extract::Path(params) =
        axum::extract::Path::<Vec<(String, String)>>::from_request_parts(parts, state).await?;
    Ok(params)
}

impl<S: Send + Sync> FromRequestParts<S> for EventPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = path_params(parts, state).await?;
        Ok(EventPath(find(&params, "eid")?.parse()?))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QuestionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = path_params(parts, state).await?;
        Ok(QuestionPath(
            find(&params, "eid")?.parse()?,
            find(&params, "qid")?.parse()?,
        ))
    }
}

/// A named path parameter. Its absence is a routing bug, not the client's.
fn find<'a>(params: &'a [(String, String)], name: &str) -> Result<&'a str, ApiError> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| ApiError::internal(format!("route has no `{name}` parameter")))
}

/// The bearer secret a host presented, if any. Checked against the event's
/// hash by the handler, which knows the event.
pub struct PresentedSecret(pub Option<HostSecret>);

impl<S: Send + Sync> FromRequestParts<S> for PresentedSecret {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // `Authorization: Bearer <secret>`, parsed by the `headers` crate;
        // anything else (no header, another scheme) is no secret.
        let secret = parts
            .headers
            .typed_get::<Authorization<Bearer>>()
            .map(|auth| auth.token().trim().to_owned())
            .filter(|t| !t.is_empty())
            .map(|t| HostSecret::presented(&t));
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
            .ok_or_else(|| ApiError::internal("the voter middleware did not run on this route"))
    }
}
