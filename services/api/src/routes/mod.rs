//! The handlers, one module per audience.

pub mod client;
pub mod events;
pub mod host;
pub mod questions;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use openfloor_domain::ids::EventId;
use openfloor_domain::record::ClientHash;
use openfloor_domain::view::{render_created, RenderedView};
use openfloor_domain::Millis;
use openfloor_store::{EventMeta, StoredView, ViewVersions};
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

/// `202 {"record": id}`: the answer to every numbered change.
#[derive(Serialize)]
pub struct RecordAccepted {
    pub record: Option<openfloor_domain::ids::RecordId>,
}

impl From<openfloor_commands::Executed> for RecordAccepted {
    fn from(executed: openfloor_commands::Executed) -> Self {
        RecordAccepted {
            record: executed.record,
        }
    }
}

impl IntoResponse for RecordAccepted {
    fn into_response(self) -> Response {
        (StatusCode::ACCEPTED, axum::Json(self)).into_response()
    }
}

/// The event's stored view, or, before the projector has run once, the
/// view of a just-created event (exactly what the projector will store for
/// its creation record).
async fn stored_view(
    app: &AppState,
    meta: &EventMeta,
) -> Result<std::sync::Arc<StoredView>, ApiError> {
    if let Some(view) = app.recent_views(meta.id).await? {
        return Ok(view);
    }
    let views = render_created(meta.id, &meta.title);
    Ok(std::sync::Arc::new(StoredView {
        records: 0,
        guest: views.guest,
        host: views.host,
        projected_at: meta.created_at,
        questions: 0,
    }))
}

/// A `200` of `body` with its content type and caching: the shape of every
/// answer here that is not the JSON error envelope or a small JSON value.
pub(crate) fn bytes_response(
    body: impl Into<Body>,
    content_type: &'static str,
    cache_control: &'static str,
) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    response
}

/// Whether the request's `If-None-Match` names `etag` (a quoted entity
/// tag): weak comparison, comma-separated lists and `*`, as RFC 9110 asks.
pub(crate) fn etag_matches(request_headers: &HeaderMap, etag: &str) -> bool {
    request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// A `304` for a poll whose `If-None-Match` names the current version of
/// the view `pick` chooses, decided on the views' versions alone (on
/// DynamoDB a small item, not the views' bytes), with when the views were
/// made; `None` when the poll needs the view itself.
pub(crate) async fn not_modified(
    app: &AppState,
    meta: &EventMeta,
    request_headers: &HeaderMap,
    pick: fn(&ViewVersions) -> &str,
    cache_control: &'static str,
) -> Result<Option<(Response, Millis)>, ApiError> {
    if !request_headers.contains_key(header::IF_NONE_MATCH) {
        return Ok(None);
    }
    let Some(versions) = app.recent_versions(meta.id).await? else {
        return Ok(None);
    };
    let etag = format!("\"{}\"", pick(&versions));
    if !etag_matches(request_headers, &etag) {
        return Ok(None);
    }
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    Ok(Some((response, versions.projected_at)))
}

/// Serves pre-rendered view bytes with an entity tag; `304` when the client
/// already has this version.
fn serve_view(
    request_headers: &HeaderMap,
    view: &RenderedView,
    cache_control: &'static str,
) -> Response {
    let etag = format!("\"{}\"", view.version);
    let mut response = if etag_matches(request_headers, &etag) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        r.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        );
        r
    } else {
        bytes_response(view.json.clone(), "application/json", cache_control)
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

/// The client's address as a salted hash, for abuse audits.
fn client_hash(
    app: &AppState,
    event: EventId,
    address: Option<std::net::IpAddr>,
) -> Option<ClientHash> {
    let address = address?.to_string();
    Some(ClientHash::derive(&app.config.client_salt, event, &address))
}
