//! What the API tells operators (README, "Telemetry"): a count of requests
//! by route and status class, the refusals (429 and 503) by reason, each
//! request's trace (honouring the client's or the CDN's `traceparent`), and
//! the process's metrics as Prometheus text at `/metrics`.

use std::sync::LazyLock;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use opentelemetry::metrics::Counter;
use opentelemetry::KeyValue;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

struct Instruments {
    requests: Counter<u64>,
    refusals: Counter<u64>,
}

static INSTRUMENTS: LazyLock<Instruments> = LazyLock::new(|| {
    let meter = openfloor_telemetry::meter();
    Instruments {
        requests: meter
            .u64_counter("openfloor_http_requests")
            .with_description("Requests answered, by route template, method and status class")
            .build(),
        refusals: meter
            .u64_counter("openfloor_http_refusals")
            .with_description("429 and 503 answers, by status and reason (the error code)")
            .build(),
    }
});

/// Counts each answered request (route template, never the raw path).
pub async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unmatched)", MatchedPath::as_str)
        .to_owned();
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status();
    let class = match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    let instruments = &*INSTRUMENTS;
    instruments.requests.add(
        1,
        &[
            KeyValue::new("route", route),
            KeyValue::new("method", method),
            KeyValue::new("status_class", class),
        ],
    );
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        let reason = response
            .extensions()
            .get::<ErrorCode>()
            .map_or("unknown", |code| code.0);
        instruments.refusals.add(
            1,
            &[
                KeyValue::new("status", i64::from(status.as_u16())),
                KeyValue::new("reason", reason),
            ],
        );
    }
    response
}

/// `GET /metrics`: every instrument of the process, as Prometheus text; a
/// 404 where the deployment switched it off (`--metrics false`).
pub async fn metrics(State(app): State<AppState>) -> Response {
    let Some(metrics) = app.metrics() else {
        return ApiError::NotFound("metrics are switched off here").into_response();
    };
    let mut response = metrics.render().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The trace context a client or the CDN sent (`traceparent`), for the
/// request's span to continue.
pub fn incoming_context(headers: &axum::http::HeaderMap) -> opentelemetry::Context {
    struct Headers<'a>(&'a axum::http::HeaderMap);
    impl opentelemetry::propagation::Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key)?.to_str().ok()
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(axum::http::HeaderName::as_str).collect()
        }
    }
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&Headers(headers))
    })
}
