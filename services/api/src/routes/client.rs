//! The web client, embedded in the binary (so the Lambda package carries it
//! too). HTML is served with a short cache; assets live under
//! `/assets/{build}/…`, where `build` is a hash of every asset, so they can
//! be cached for a year and a new build is a new URL.

use std::sync::LazyLock;

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::{bytes_response, etag_matches};
use crate::error::ApiError;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../../../../client/assets/", $name)),
        }
    };
}

/// Every file under `client/assets/`.
const ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("home.js", "text/javascript; charset=utf-8"),
    asset!("event.js", "text/javascript; charset=utf-8"),
    asset!("present.js", "text/javascript; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

const INDEX_HTML: &str = include_str!("../../../../client/index.html");
const EVENT_HTML: &str = include_str!("../../../../client/event.html");
const NOT_FOUND_HTML: &str = include_str!("../../../../client/not-found.html");
const PRESENT_HTML: &str = include_str!("../../../../client/present.html");

/// The Content-Security-Policy of every page: scripts, styles and
/// connections only from this origin, no inline script, no framing.
pub const CONTENT_SECURITY_POLICY: &str = concat!(
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; ",
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; ",
    "frame-ancestors 'none'",
);

struct Build {
    id: String,
    index: String,
    event: String,
    not_found: String,
    present: String,
}

static BUILD: LazyLock<Build> = LazyLock::new(|| {
    let mut hash = Sha256::new();
    for a in ASSETS {
        hash.update(a.name.as_bytes());
        hash.update(a.bytes);
    }
    let id = openfloor_domain::ids::hex_lower(&hash.finalize()[..6]);
    let prefix = format!("/assets/{id}/");
    Build {
        index: INDEX_HTML.replace("/assets/", &prefix),
        event: EVENT_HTML.replace("/assets/", &prefix),
        not_found: NOT_FOUND_HTML.replace("/assets/", &prefix),
        present: PRESENT_HTML.replace("/assets/", &prefix),
        id,
    }
});

fn html(body: &'static str) -> Response {
    // Short: a new build must reach people within a minute.
    let mut r = bytes_response(body, "text/html; charset=utf-8", "public, max-age=60");
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    r
}

pub async fn home() -> Response {
    html(&BUILD.index)
}

/// Guest and host pages share one document; the script tells them apart by
/// the path (`…/host`) and reads the host secret from the fragment.
pub async fn event_page(
    params: Result<Path<Vec<(String, String)>>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(params) = params?;
    let eid = params.first().map(|(_, v)| v.as_str()).unwrap_or_default();
    // A link cut short or mistyped: a page that says so, not an error body.
    if eid.parse::<openfloor_domain::ids::EventId>().is_err() {
        let mut page = html(&BUILD.not_found);
        *page.status_mut() = StatusCode::NOT_FOUND;
        return Ok(page);
    }
    Ok(html(&BUILD.event))
}

/// The presenter screen: its own page, so a second screen can show it while
/// the host moderates in another tab.
pub async fn present_page(
    params: Result<Path<Vec<(String, String)>>, PathRejection>,
) -> Result<Response, ApiError> {
    let page = event_page(params).await?;
    if page.status() != StatusCode::OK {
        return Ok(page);
    }
    Ok(html(&BUILD.present))
}

pub async fn asset(
    params: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let Path((build, name)) = match params {
        Ok(params) => params,
        Err(rejection) => return ApiError::from(rejection).into_response(),
    };
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return ApiError::NotFound("no such asset").into_response();
    };
    let etag = format!("\"{}-{}\"", BUILD.id, asset.name);
    if etag_matches(&headers, &etag) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    // This build's URL never changes content; an old build's URL (a page
    // loaded before a deploy) gets today's file with a short cache.
    let cache = if build == BUILD.id {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=60"
    };
    let mut r = bytes_response(asset.bytes, asset.content_type, cache);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

#[derive(serde::Deserialize)]
pub struct QrQuery {
    text: String,
}

/// Longest text encoded: a share link is far shorter; this bounds the work.
const MAX_QR_TEXT: usize = 512;

/// Codes drawn recently, by text: drawing one takes about 1.5 ms of CPU, and
/// a room's screens and phones ask for the same few links.
static QR_CODES: LazyLock<moka::sync::Cache<String, axum::body::Bytes>> =
    LazyLock::new(|| moka::sync::Cache::new(1_000));

/// A QR code (SVG) of `text`, for projecting the guest link on a screen.
/// Made here, so the page needs no outside service.
pub async fn qr(
    query: Result<axum::extract::Query<QrQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let axum::extract::Query(QrQuery { text }) =
        query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if text.is_empty() || text.len() > MAX_QR_TEXT {
        return Err(ApiError::BadRequest(format!(
            "text must be 1 to {MAX_QR_TEXT} bytes"
        )));
    }
    let svg = match QR_CODES.get(&text) {
        Some(svg) => svg,
        None => {
            let code = qrcode::QrCode::new(text.as_bytes())
                .map_err(|e| ApiError::BadRequest(format!("cannot encode: {e}")))?;
            let svg = axum::body::Bytes::from(
                code.render::<qrcode::render::svg::Color<'_>>()
                    .min_dimensions(256, 256)
                    .quiet_zone(true)
                    .build(),
            );
            QR_CODES.insert(text, svg.clone());
            svg
        }
    };
    // The same text always gives the same picture.
    Ok(bytes_response(
        svg,
        "image/svg+xml",
        "public, max-age=86400",
    ))
}
