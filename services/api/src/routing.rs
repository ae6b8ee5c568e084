//! Home-region routing (DESIGN.md, "Regions"). Only an event's home region
//! touches its records and views; another region that receives a request
//! for it answers `307` to the same path in the home region, never calling
//! another region's tables. The directory is global but replicates with a
//! lag, so an event created a moment ago may not be known here yet: that
//! gets `503` with `Retry-After`, never "gone".

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use openfloor_domain::ids::EventId;

use crate::error::ApiError;
use crate::state::AppState;

/// How long after its id was minted an unknown event is presumed to be
/// still replicating (global tables are typically 0.5–2.5 s behind).
const REPLICATION_GRACE_MS: u64 = 10_000;

/// The event a request is about, from `/api/events/{eid}/…`.
fn event_of(path: &str) -> Option<EventId> {
    path.strip_prefix("/api/events/")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

pub async fn home_region(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let Some(event) = event_of(req.uri().path()) else {
        return next.run(req).await;
    };
    match app.event(event).await {
        // Whatever the configuration, a region never serves, writes or
        // projects another region's event: that would split its counts.
        Ok(meta) if meta.region != app.config.region => {
            match app.config.region_urls.get(&meta.region) {
                Some(base) => {
                    let target = format!(
                        "{}{}",
                        base.trim_end_matches('/'),
                        req.uri().path_and_query().map_or("", |p| p.as_str())
                    );
                    let mut response = (
                        StatusCode::TEMPORARY_REDIRECT,
                        axum::Json(serde_json::json!({"region": meta.region, "location": target})),
                    )
                        .into_response();
                    if let Ok(v) = HeaderValue::from_str(&target) {
                        response.headers_mut().insert(header::LOCATION, v);
                    }
                    response
                }
                None => ApiError::HomedElsewhere {
                    region: meta.region.clone(),
                }
                .into_response(),
            }
        }
        Err(ApiError::NotFound(_))
            if !app.config.region_urls.is_empty() && recently_minted(event, app.clock.now_ms()) =>
        {
            // Probably created in another region a moment ago.
            ApiError::unavailable(format!(
                "event {event} is not in this region's directory yet (replicating?)"
            ))
            .into_response()
        }
        _ => next.run(req).await,
    }
}

fn recently_minted(event: EventId, now: u64) -> bool {
    let minted = event.timestamp_ms();
    minted <= now.saturating_add(REPLICATION_GRACE_MS)
        && now.saturating_sub(minted) < REPLICATION_GRACE_MS
}
