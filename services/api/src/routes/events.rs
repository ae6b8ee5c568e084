//! Creating and describing events.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use openfloor_commands::NewEvent;
use openfloor_domain::fold::EventState;
use openfloor_domain::input::Title;
use openfloor_domain::record::Sequence;
use openfloor_store::Lookup;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::{EventPath, JsonBody};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct CreateEvent {
    #[serde(default)]
    title: Option<String>,
}

#[derive(Serialize)]
struct Created {
    id: String,
    secret: String,
    title: String,
    region: String,
    guest_url: String,
    host_url: String,
}

#[tracing::instrument(skip_all, fields(event))]
pub async fn create(
    State(app): State<AppState>,
    JsonBody(body): JsonBody<CreateEvent>,
) -> Result<impl IntoResponse, ApiError> {
    let title = Title::parse(body.title.as_deref().unwrap_or(""))?;
    let created = app
        .executor
        .create_event(NewEvent {
            title,
            region: app.config.region.clone(),
            shards: app.config.shards,
            retention: app.config.retention,
        })
        .await?;
    let id = created.meta.id;
    tracing::Span::current().record("event", tracing::field::display(id));
    tracing::info!("event created");
    Ok((
        StatusCode::CREATED,
        Json(Created {
            id: id.to_string(),
            secret: created.secret.expose().to_owned(),
            title: created.meta.title.as_str().to_owned(),
            region: created.meta.region,
            guest_url: format!("/event/{id}"),
            // The secret rides in the fragment: browsers never send it to
            // servers, CDN logs or Referer headers.
            host_url: format!("/event/{id}/host#{}", created.secret.expose()),
        }),
    ))
}

#[derive(Serialize)]
struct EventInfo {
    id: String,
    title: String,
    region: String,
    created_at: u64,
    expires_at: u64,
    open: bool,
}

#[tracing::instrument(skip_all, fields(event = %eid))]
pub async fn get(
    State(app): State<AppState>,
    EventPath(eid): EventPath,
) -> Result<impl IntoResponse, ApiError> {
    let meta = app.event(eid).await?;
    let found = app
        .store
        .log
        .lookup(meta.log(), &[Lookup::Latest(Sequence::Open)])
        .await?;
    let open = EventState::fold(meta.id, found.iter().flatten()).is_open();
    Ok(Json(EventInfo {
        id: meta.id.to_string(),
        title: meta.title.as_str().to_owned(),
        region: meta.region.clone(),
        created_at: meta.created_at,
        expires_at: meta.expires_at,
        open,
    }))
}
