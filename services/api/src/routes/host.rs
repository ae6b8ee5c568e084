//! What only the host may do. Every handler checks the bearer secret
//! against the hash of the event named in the path, so one event's secret
//! can never act on another.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use openfloor_domain::command::{Command, CorrectText, Flag, SetFlag, SetOpen};
use openfloor_domain::ids::RecordId;
use openfloor_domain::input::QuestionText;
use openfloor_domain::secret::{HostSecret, SecretHash};
use openfloor_store::EventMeta;
use serde::Deserialize;

use super::{bytes_response, not_modified, serve_view, stored_view, RecordAccepted};
use crate::error::ApiError;
use crate::extract::{EventPath, JsonBody, PresentedSecret, QuestionPath};
use crate::state::AppState;

/// Host views are for one person: no shared caches, revalidate each time.
const HOST_VIEW_CACHE_CONTROL: &str = "private, no-cache";

/// Records per page of the export when the client names no limit, and the
/// most it may ask for (bounds memory per request).
const DEFAULT_PAGE: usize = 1_000;
const MAX_PAGE: usize = 10_000;

/// Checks a presented host secret against the event's (in constant time).
/// Missing and wrong secrets get the same answer.
fn authorize(hash: &SecretHash, presented: Option<&HostSecret>) -> Result<(), ApiError> {
    match presented {
        Some(secret) if hash.matches(secret) => Ok(()),
        _ => Err(ApiError::Unauthorized),
    }
}

/// The live event named in the path, if the presented secret is its host's.
async fn host_event(
    app: &AppState,
    eid: openfloor_domain::ids::EventId,
    secret: &PresentedSecret,
) -> Result<std::sync::Arc<EventMeta>, ApiError> {
    let meta = app.event(eid).await?;
    authorize(&meta.secret_hash, secret.0.as_ref())?;
    Ok(meta)
}

#[tracing::instrument(skip_all, fields(event = %eid))]
pub async fn host_view(
    State(app): State<AppState>,
    EventPath(eid): EventPath,
    secret: PresentedSecret,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let meta = host_event(&app, eid, &secret).await?;
    let unchanged = not_modified(&app, &meta, &headers, |v| &v.host, HOST_VIEW_CACHE_CONTROL);
    let (mut response, projected_at) = match unchanged.await? {
        Some(unchanged) => unchanged,
        None => {
            let view = stored_view(&app, &meta).await?;
            let response = serve_view(&headers, &view.host, HOST_VIEW_CACHE_CONTROL);
            (response, view.projected_at)
        }
    };
    // How fresh the board is, by the server's clock (the host's may be off):
    // on 304s too, since the host polls with If-None-Match.
    if projected_at > 0 {
        let age = app.clock.now_ms().saturating_sub(projected_at);
        response
            .headers_mut()
            .insert(VIEW_AGE_HEADER, HeaderValue::from(age));
    }
    Ok(response)
}

/// Milliseconds since the projector made the host view being answered
/// (absent when unknown). Only on the host's view: it is never cached, so
/// the figure cannot go stale in a cache.
pub const VIEW_AGE_HEADER: &str = "x-view-age-ms";

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

#[tracing::instrument(skip_all, fields(event = %eid, question = %qid, ?flag))]
async fn set_flag(
    app: AppState,
    QuestionPath(eid, qid): QuestionPath,
    secret: PresentedSecret,
    flag: Flag,
    value: bool,
) -> Result<RecordAccepted, ApiError> {
    let meta = host_event(&app, eid, &secret).await?;
    let command = Command::SetFlag(SetFlag {
        question: qid,
        flag,
        value,
    });
    host_command(&app, &meta, command).await
}

#[derive(Deserialize)]
pub struct TextBody {
    text: String,
}

#[tracing::instrument(skip_all, fields(event = %eid, question = %qid))]
pub async fn text(
    State(app): State<AppState>,
    QuestionPath(eid, qid): QuestionPath,
    secret: PresentedSecret,
    JsonBody(body): JsonBody<TextBody>,
) -> Result<RecordAccepted, ApiError> {
    let text = QuestionText::parse(&body.text)?;
    let meta = host_event(&app, eid, &secret).await?;
    let command = Command::CorrectText(CorrectText {
        question: qid,
        text,
    });
    host_command(&app, &meta, command).await
}

#[tracing::instrument(skip_all, fields(event = %eid))]
pub async fn open(
    State(app): State<AppState>,
    EventPath(eid): EventPath,
    secret: PresentedSecret,
    JsonBody(body): JsonBody<FlagBody>,
) -> Result<RecordAccepted, ApiError> {
    let meta = host_event(&app, eid, &secret).await?;
    let command = Command::SetOpen(SetOpen { value: body.value });
    host_command(&app, &meta, command).await
}

/// Runs a host's command. Host changes carry no client hash: the host is
/// one known actor, and the audit names them as such.
async fn host_command(
    app: &AppState,
    meta: &EventMeta,
    command: Command,
) -> Result<RecordAccepted, ApiError> {
    Ok(app.executor.execute(meta, &command, None).await?.into())
}

#[derive(Deserialize)]
pub struct PageQuery {
    after: Option<String>,
    limit: Option<String>,
}

/// The event's records as NDJSON, in record-id order, a page at a time.
#[tracing::instrument(skip_all, fields(event = %eid))]
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
        serde_json::to_writer(&mut body, record).map_err(ApiError::internal)?;
        body.push(b'\n');
    }
    Ok(bytes_response(
        body,
        "application/x-ndjson",
        "private, no-store",
    ))
}
