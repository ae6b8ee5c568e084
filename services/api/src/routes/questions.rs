//! What guests do: ask, vote, read the ranking.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use openfloor_domain::command::{Ask, Command, Vote};
use openfloor_domain::ids::{QuestionId, VoterId};
use openfloor_domain::input::{AuthorName, QuestionText};
use serde::{Deserialize, Serialize};

use super::{client_hash, not_modified, serve_view, stored_view, RecordAccepted};
use crate::client_address::ClientAddress;
use crate::error::ApiError;
use crate::extract::{EventPath, JsonBody, QuestionPath, Voter};
use crate::state::AppState;

/// Guest views may be shared by CDNs and browsers for a second: rankings
/// move, but a second of staleness is what "near-real-time" allows and it
/// turns a crowd's polling into one origin request per second per edge.
/// `s-maxage` says the same to shared caches explicitly, and
/// `stale-while-revalidate` lets an edge answer at once from the view it
/// has while it fetches the next (never more than a few seconds old).
pub const GUEST_VIEW_CACHE_CONTROL: &str =
    "public, max-age=1, s-maxage=1, stale-while-revalidate=5";

#[derive(Deserialize)]
pub struct AskBody {
    #[serde(default)]
    id: Option<String>,
    text: String,
    #[serde(default)]
    author: Option<String>,
}

#[derive(Serialize)]
struct Asked {
    id: QuestionId,
}

#[tracing::instrument(skip_all, fields(event = %eid))]
pub async fn ask(
    State(app): State<AppState>,
    EventPath(eid): EventPath,
    Voter(token): Voter,
    ClientAddress(address): ClientAddress,
    JsonBody(body): JsonBody<AskBody>,
) -> Result<impl IntoResponse, ApiError> {
    // Validate everything before touching storage.
    let question = match body.id.as_deref() {
        Some(id) => id.parse::<QuestionId>()?,
        None => QuestionId::from_ulid(app.mint()),
    };
    let text = QuestionText::parse(&body.text)?;
    let author = AuthorName::parse_optional(body.author.as_deref())?;
    let meta = app.event(eid).await?;
    let asker = VoterId::derive(eid, &token);
    let command = Command::Ask(Ask {
        question,
        asker,
        text,
        author,
    });
    let client = client_hash(&app, eid, address);
    let asked = app
        .recent_versions(eid)
        .await?
        .map_or(0, |versions| versions.questions);
    // Limited only when there is something to store: resending an
    // acknowledged question must never be refused.
    app.executor
        .execute_admitted(&meta, &command, client, || {
            if asked >= app.config.max_questions {
                return Err(ApiError::QuestionLimit(app.config.max_questions));
            }
            app.limits().ask(eid, asker, address)
        })
        .await?;
    let id = question;
    Ok((StatusCode::CREATED, Json(Asked { id })))
}

#[derive(Deserialize)]
pub struct VoteBody {
    up: bool,
}

#[tracing::instrument(skip_all, fields(event = %eid, question = %qid))]
pub async fn vote(
    State(app): State<AppState>,
    QuestionPath(eid, qid): QuestionPath,
    Voter(token): Voter,
    ClientAddress(address): ClientAddress,
    JsonBody(body): JsonBody<VoteBody>,
) -> Result<RecordAccepted, ApiError> {
    let meta = app.event(eid).await?;
    let voter = VoterId::derive(eid, &token);
    app.limits().vote(eid, voter, address)?;
    let client = client_hash(&app, eid, address);
    let command = Command::Vote(Vote {
        question: qid,
        voter,
        up: body.up,
    });
    let executed = app.executor.execute(&meta, &command, client).await?;
    Ok(RecordAccepted::from(executed))
}

#[tracing::instrument(skip_all, fields(event = %eid))]
pub async fn guest_view(
    State(app): State<AppState>,
    EventPath(eid): EventPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let meta = app.event(eid).await?;
    let unchanged = not_modified(
        &app,
        &meta,
        &headers,
        |v| &v.guest,
        GUEST_VIEW_CACHE_CONTROL,
    );
    if let Some((response, _)) = unchanged.await? {
        return Ok(response);
    }
    let view = stored_view(&app, &meta).await?;
    Ok(serve_view(&headers, &view.guest, GUEST_VIEW_CACHE_CONTROL))
}
