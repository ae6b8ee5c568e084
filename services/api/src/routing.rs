//! Home-region routing (DESIGN.md, "Regions"). Only an event's home region
//! touches its records and views; another region that receives a request
//! for it sends the client on with a `307`, never calling another region's
//! tables.
//!
//! Browsers reach every region through one address (the CDN), the region
//! named in the path: `/r/{region}/api/…`, each prefix routed to that
//! region's API by the CDN alone. [`strip_region_prefix`] takes the prefix
//! off before routing and keeps it as [`PathRegion`]. A request that came
//! that way is sent to the same origin's path for the right region, which a
//! browser follows like any same-origin request (no CORS, the cookie and the
//! `Authorization` header kept). A client that calls a region's API directly
//! is sent to the home region's URL (`--region-url`).
//!
//! The directory is global but replicates with a lag, so an event created a
//! moment ago in another region may not be known here yet: that is
//! [`ApiError::NotHereYet`] (503 with `Retry-After`), never "gone".

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use openfloor_domain::ids::EventId;

use crate::error::ApiError;
use crate::extract::EventPath;
use crate::regions::{is_region_name, Regions};
use crate::state::AppState;

/// How long after its id was minted an event unknown here is presumed to be
/// replicating from another region. Global tables are typically a second or
/// two behind; this is patient far beyond that, so that a slow replication
/// reads as "waiting", never as "not found". The cost: a mistyped link to a
/// young event waits this long before it is called unknown (the page says
/// what it waits for meanwhile).
pub const REPLICATION_PATIENCE_MS: u64 = 15 * 60 * 1000;

/// The region a request's path named (`/r/{region}/…`): it came through the
/// one address for browsers, the CDN. Only a hint: the event's home region
/// decides where it is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRegion(pub String);

/// Before routing: `/r/{region}/rest` is routed as `/rest`, the region kept
/// as a [`PathRegion`] extension. Any other path is left alone.
pub async fn strip_region_prefix(mut req: Request, next: Next) -> Response {
    if let Some((region, rest)) = split_region_prefix(req.uri().path()) {
        let region = PathRegion(region.to_owned());
        let rest = match req.uri().query() {
            Some(query) => format!("{rest}?{query}"),
            None => rest.to_owned(),
        };
        let mut parts = req.uri().clone().into_parts();
        match rest.parse() {
            Ok(path_and_query) => parts.path_and_query = Some(path_and_query),
            Err(_) => return ApiError::BadRequest("malformed path".into()).into_response(),
        }
        match axum::http::Uri::from_parts(parts) {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => return ApiError::BadRequest("malformed path".into()).into_response(),
        }
        req.extensions_mut().insert(region);
    }
    next.run(req).await
}

/// `("eu-west-1", "/api/events")` for `/r/eu-west-1/api/events`; `/` for
/// the bare `/r/eu-west-1`.
fn split_region_prefix(path: &str) -> Option<(&str, &str)> {
    let after = path.strip_prefix("/r/")?;
    let (region, rest) = match after.find('/') {
        Some(slash) => after.split_at(slash),
        None => (after, "/"),
    };
    is_region_name(region).then_some((region, rest))
}

/// The path of `region`'s prefix: `/r/{region}`.
pub fn region_path(region: &str) -> String {
    format!("/r/{region}")
}

/// Routes each request about an event to the event's home region. It runs
/// after routing, on the event id as the handler will see it (the same
/// extractor, percent-decoding included), so no spelling of an id can slip
/// past it. Routes without an event (a create) and malformed ids (which the
/// handler refuses) pass through.
pub async fn home_region(
    State(app): State<AppState>,
    event: Result<EventPath, ApiError>,
    req: Request,
    next: Next,
) -> Response {
    let Ok(EventPath(event)) = event else {
        return next.run(req).await;
    };
    let regions = &app.config.regions;
    match app.event(event).await {
        // Whatever the configuration, a region never serves, writes or
        // projects another region's event: that would split its counts.
        Ok(meta) if meta.region != regions.serving => send_to_region(
            regions,
            &meta.region,
            req.uri().path_and_query().map_or("/", |p| p.as_str()),
            req.extensions().get::<PathRegion>(),
        ),
        Err(ApiError::NotFound(_))
            if regions.is_multi_region() && still_replicating(event, app.clock.now_ms()) =>
        {
            ApiError::NotHereYet.into_response()
        }
        _ => next.run(req).await,
    }
}

/// A `307` that sends a request for `path_and_query` on to `region`: to the
/// same origin's path for it when the request came through the one address
/// (its path named a region), else to the region's API URL. With neither,
/// `503 homed_elsewhere`: only an operator can fix that. (A `307` keeps the
/// method and body, so a vote or a create is sent again as it was.)
///
/// Through the one address, only to a region of the deployment (the CDN
/// routes no other), and never back to the path that came here: a request
/// under the home region's own prefix reaching another region means the
/// edge is misrouted, and a redirect to itself would loop.
pub fn send_to_region(
    regions: &Regions,
    region: &str,
    path_and_query: &str,
    path_region: Option<&PathRegion>,
) -> Response {
    let unroutable = || {
        ApiError::HomedElsewhere {
            region: region.to_owned(),
        }
        .into_response()
    };
    let target = match path_region {
        Some(PathRegion(hint)) => {
            if hint == region || !regions.all.contains_key(region) || !is_region_name(region) {
                return unroutable();
            }
            format!("{}{path_and_query}", region_path(region))
        }
        None => match regions.urls.get(region) {
            Some(base) => format!("{}{path_and_query}", base.trim_end_matches('/')),
            None => return unroutable(),
        },
    };
    let Ok(location) = HeaderValue::from_str(&target) else {
        return ApiError::internal(format!("no valid Location from {target:?}")).into_response();
    };
    let mut response = (
        StatusCode::TEMPORARY_REDIRECT,
        axum::Json(serde_json::json!({"region": region, "location": target})),
    )
        .into_response();
    response.headers_mut().insert(header::LOCATION, location);
    // Where an event lives never changes, but a shared cache need not keep
    // this: the next request may carry the right hint.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Whether an event unknown here may still be on its way: its id (which
/// carries its creation time) was minted within
/// [`REPLICATION_PATIENCE_MS`], and not in the future beyond clock skew.
fn still_replicating(event: EventId, now: u64) -> bool {
    const CLOCK_SKEW_MS: u64 = 10_000;
    let minted = event.timestamp_ms();
    minted <= now.saturating_add(CLOCK_SKEW_MS)
        && now.saturating_sub(minted) < REPLICATION_PATIENCE_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_prefixes() {
        assert_eq!(
            split_region_prefix("/r/eu-west-1/api/events"),
            Some(("eu-west-1", "/api/events"))
        );
        assert_eq!(
            split_region_prefix("/r/eu-west-1"),
            Some(("eu-west-1", "/"))
        );
        assert_eq!(
            split_region_prefix("/r/eu-west-1/"),
            Some(("eu-west-1", "/"))
        );
        assert_eq!(split_region_prefix("/api/events"), None);
        assert_eq!(split_region_prefix("/r/EU/api"), None);
        assert_eq!(split_region_prefix("/r//api"), None);
        assert_eq!(split_region_prefix("/rx/eu-west-1/api"), None);
    }

    #[test]
    fn patience_with_unknown_events_is_bounded_by_the_ids_age() {
        let now = 1_800_000_000_000;
        let minted = |at: u64| EventId::from_ulid(ulid::Ulid::from_parts(at, 7));
        assert!(still_replicating(minted(now - 1_000), now));
        assert!(still_replicating(
            minted(now - REPLICATION_PATIENCE_MS + 1),
            now
        ));
        assert!(!still_replicating(
            minted(now - REPLICATION_PATIENCE_MS),
            now
        ));
        assert!(still_replicating(minted(now + 5_000), now), "skew");
        assert!(!still_replicating(minted(now + 60_000), now), "the future");
    }
}
