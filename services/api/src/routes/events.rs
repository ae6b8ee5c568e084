//! Creating and describing events.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use openfloor_commands::NewEvent;
use openfloor_domain::fold::EventState;
use openfloor_domain::input::Title;
use openfloor_domain::record::Sequence;
use openfloor_store::Lookup;
use serde::{Deserialize, Serialize};

use crate::client_address::ClientAddress;
use crate::error::ApiError;
use crate::extract::{EventPath, JsonBody};
use crate::regions::{Coordinates, Region};
use crate::routing::{region_path, send_to_region, PathRegion};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct CreateEvent {
    #[serde(default)]
    title: Option<String>,
    /// The home region the host chose; else the one nearest the host.
    #[serde(default)]
    region: Option<String>,
}

/// The `region` a create's query names. A create sent on to its chosen
/// region carries it, so that the region there does not choose again (two
/// regions placed differently could otherwise send it back and forth).
/// Decoded as any query is; an empty value is no value; two different ones
/// are a mistake.
fn region_in_query(query: Option<&str>) -> Result<Option<String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(format!("malformed query: {e}")))?;
    let mut named = pairs
        .into_iter()
        .filter(|(key, value)| key == "region" && !value.is_empty())
        .map(|(_, value)| value);
    let first = named.next();
    if named.any(|other| Some(&other) != first.as_ref()) {
        return Err(ApiError::BadRequest("the query names two regions".into()));
    }
    Ok(first)
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
    path_region: Option<Extension<PathRegion>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ClientAddress(address): ClientAddress,
    JsonBody(body): JsonBody<CreateEvent>,
) -> Result<Response, ApiError> {
    let title = Title::parse(body.title.as_deref().unwrap_or(""))?;
    let regions = &app.config.regions;
    let in_query = region_in_query(query.as_deref())?;
    let named = body.region.as_deref().or(in_query.as_deref());
    let home = regions.choose_home(named, Coordinates::of_viewer(&headers))?;
    if home != regions.serving {
        // Only the home region writes an event's records; it creates it.
        let path = format!("/api/events?region={home}");
        return Ok(send_to_region(
            regions,
            home,
            &path,
            path_region.as_ref().map(|r| &r.0),
        ));
    }
    app.limits().create_event(address)?;
    let created = app
        .executor
        .create_event(NewEvent {
            title,
            region: regions.serving.clone(),
            shards: app.config.shards,
            retention: app.config.retention,
        })
        .await?;
    let id = created.meta.id;
    tracing::Span::current().record("event", tracing::field::display(id));
    tracing::info!(region = %created.meta.region, "event created");
    // With several regions, links name the event's region, so that the
    // one address sends every request straight there.
    let page = if regions.is_multi_region() {
        format!("{}/event/{id}", region_path(&created.meta.region))
    } else {
        format!("/event/{id}")
    };
    Ok((
        StatusCode::CREATED,
        Json(Created {
            id: id.to_string(),
            secret: created.secret.expose().to_owned(),
            title: created.meta.title.as_str().to_owned(),
            region: created.meta.region,
            // The secret rides in the fragment: browsers never send it to
            // servers, CDN logs or Referer headers.
            host_url: format!("{page}/host#{}", created.secret.expose()),
            guest_url: page,
        }),
    )
        .into_response())
}

#[derive(Serialize)]
struct RegionsInfo<'a> {
    /// The region answering.
    serving: &'a str,
    /// Where a create from this client would live if it named none.
    suggested: &'a str,
    /// Whether that is the region nearest the viewer (else the serving
    /// region: the viewer's location is unknown).
    nearest: bool,
    regions: Vec<&'a Region>,
}

/// The deployment's regions, for a host choosing where an event lives.
pub async fn regions(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let regions = &app.config.regions;
    let nearest = Coordinates::of_viewer(&headers).and_then(|viewer| regions.nearest(viewer));
    let mut response = Json(RegionsInfo {
        serving: &regions.serving,
        suggested: nearest.unwrap_or(&regions.serving),
        nearest: nearest.is_some(),
        regions: regions.all.values().collect(),
    })
    .into_response();
    // The suggestion depends on where the viewer is.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("private, no-store"),
    );
    response
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

#[cfg(test)]
mod tests {
    use super::region_in_query;

    #[test]
    fn the_region_in_a_creates_query() {
        for (query, region) in [
            (None, None),
            (Some(""), None),
            (Some("region="), None),
            (Some("region=eu-west-1"), Some("eu-west-1")),
            (Some("x=1&region=eu%2Dwest%2D1"), Some("eu-west-1")),
            (Some("region=eu-west-1&region=eu-west-1"), Some("eu-west-1")),
        ] {
            assert_eq!(
                region_in_query(query).unwrap().as_deref(),
                region,
                "{query:?}"
            );
        }
        assert!(region_in_query(Some("region=a&region=b")).is_err());
    }
}
