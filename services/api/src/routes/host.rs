//! What only the host may do. Every handler checks the bearer secret
//! against the hash of the event named in the path, so one event's secret
//! can never act on another.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use openfloor_domain::ids::RecordId;
use openfloor_domain::input::QuestionText;
use openfloor_store::EventMeta;
use serde::Deserialize;

use super::{bytes_response, serve_view, stored_view, RecordAccepted};
use crate::commands::{self, authorize, Flag};
use crate::error::ApiError;
use crate::extract::{EventPath, JsonBody, PresentedSecret, QuestionPath};
use crate::state::AppState;

/// Host views are for one person: no shared caches, revalidate each time.
const HOST_VIEW_CACHE_CONTROL: &str = "private, no-cache";

/// Records per page of the export when the client names no limit, and the
/// most it may ask for (bounds memory per request).
const DEFAULT_PAGE: usize = 1_000;
const MAX_PAGE: usize = 10_000;

async fn host_event(
    app: &AppState,
    eid: openfloor_domain::ids::EventId,
    secret: &PresentedSecret,
) -> Result<std::sync::Arc<EventMeta>, ApiError> {
    let meta = app.event(eid).await?;
    authorize(&meta.secret_hash, secret.0.as_ref())?;
    Ok(meta)
}

pub async fn host_view(
    State(app): State<AppState>,
    EventPath(eid): EventPath,
    secret: PresentedSecret,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let meta = host_event(&app, eid, &secret).await?;
    let view = stored_view(&app, &meta).await?;
    Ok(serve_view(&headers, &view.host, HOST_VIEW_CACHE_CONTROL))
}

#[derive(Deserialize)]
pub struct FlagBody {
    value: bool,
}

pub async fn answered(
    State(app): State<AppState>,
    path: QuestionPath,
    secret: PresentedSecret,
    JsonBody(body): JsonBody<FlagBody>,
) -> Result<RecordAccepted, ApiError> {
    set_flag(app, path, secret, Flag::Answered, body.value).await
}

pub async fn hidden(
    State(app): State<AppState>,
    path: QuestionPath,
    secret: PresentedSecret,
    JsonBody(body): JsonBody<FlagBody>,
) -> Result<RecordAccepted, ApiError> {
    set_flag(app, path, secret, Flag::Hidden, body.value).await
}

async fn set_flag(
    app: AppState,
    QuestionPath(eid, qid): QuestionPath,
    secret: PresentedSecret,
    flag: Flag,
    value: bool,
) -> Result<RecordAccepted, ApiError> {
    let meta = host_event(&app, eid, &secret).await?;
    let changed = commands::set_flag(&app, &meta, qid, flag, value).await?;
    Ok(RecordAccepted {
        record: changed.record,
    })
}

#[derive(Deserialize)]
pub struct TextBody {
    text: String,
}

pub async fn text(
    State(app): State<AppState>,
    QuestionPath(eid, qid): QuestionPath,
    secret: PresentedSecret,
    JsonBody(body): JsonBody<TextBody>,
) -> Result<RecordAccepted, ApiError> {
    let text = QuestionText::parse(&body.text)?;
    let meta = host_event(&app, eid, &secret).await?;
    let changed = commands::correct_text(&app, &meta, qid, text).await?;
    Ok(RecordAccepted {
        record: changed.record,
    })
}

pub async fn open(
    State(app): State<AppState>,
    EventPath(eid): EventPath,
    secret: PresentedSecret,
    JsonBody(body): JsonBody<FlagBody>,
) -> Result<RecordAccepted, ApiError> {
    let meta = host_event(&app, eid, &secret).await?;
    let changed = commands::set_open(&app, &meta, body.value).await?;
    Ok(RecordAccepted {
        record: changed.record,
    })
}

#[derive(Deserialize)]
pub struct PageQuery {
    after: Option<String>,
    limit: Option<String>,
}

/// The event's records as NDJSON, in record-id order, a page at a time.
pub async fn records(
    State(app): State<AppState>,
    EventPath(eid): EventPath,
    secret: PresentedSecret,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let after = query
        .after
        .as_deref()
        .map(str::parse::<RecordId>)
        .transpose()?;
    let limit = match query.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "limit must be a whole number from 1 to {MAX_PAGE}"
                )))
            }
        },
    };
    let meta = host_event(&app, eid, &secret).await?;
    let records = app.store.log.read_page(meta.log(), after, limit).await?;
    let mut body = Vec::with_capacity(records.len() * 160);
    for record in &records {
        serde_json::to_writer(&mut body, record).map_err(|_| ApiError::Internal)?;
        body.push(b'\n');
    }
    Ok(bytes_response(
        body,
        "application/x-ndjson",
        "private, no-store",
    ))
}
