//! The HTTP API of openfloor (API.md). [`router`] is the one function that
//! builds it; the local server, the tests and the Lambda entry point all
//! call it, so they cannot drift apart.

pub mod client_address;
pub mod error;
pub mod extract;
pub mod head_limits;
pub mod limits;
pub mod regions;
pub mod routes;
pub mod routing;
pub mod serve;
pub mod state;
pub mod telemetry;
pub mod voter;

use axum::extract::DefaultBodyLimit;
use axum::extract::MatchedPath;
use axum::http::{header, HeaderValue, Method};
use axum::response::IntoResponse;
use axum::routing::{get, post, put, MethodRouter};
use axum::{middleware, Json, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

pub use client_address::ClientAddressSource;
pub use error::ApiError;
pub use limits::Quotas;
pub use openfloor_domain::clock::{Clock, SystemClock};
pub use regions::Regions;
pub use serve::{serve, serve_with, ConnectionLimits};
pub use state::{ApiConfig, AppState, CacheSizes, VIEW_REUSE_BEHIND_A_CDN};

use routes::{client, events, host, questions};

/// One documented route: method, path template and handler. The router is
/// built from [`EVENT_ROUTES`] and [`SERVICE_ROUTES`], and the OpenAPI
/// document (`docs/openapi.json`, served at `/api/openapi.json`) must list
/// exactly these pairs: a test compares them, so the contract cannot drift
/// from the router.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    handler: fn() -> MethodRouter<AppState>,
}

/// The routes about one event (and creating one): they know their voter and
/// are routed to the event's home region.
pub const EVENT_ROUTES: &[Route] = &[
    Route {
        method: Method::POST,
        path: "/api/events",
        handler: || post(events::create),
    },
    Route {
        method: Method::GET,
        path: "/api/events/{eid}",
        handler: || get(events::get),
    },
    Route {
        method: Method::POST,
        path: "/api/events/{eid}/questions",
        handler: || post(questions::ask),
    },
    Route {
        method: Method::GET,
        path: "/api/events/{eid}/questions",
        handler: || get(questions::guest_view),
    },
    Route {
        method: Method::PUT,
        path: "/api/events/{eid}/questions/{qid}/vote",
        handler: || put(questions::vote),
    },
    Route {
        method: Method::PUT,
        path: "/api/events/{eid}/questions/{qid}/answered",
        handler: || put(host::answered),
    },
    Route {
        method: Method::PUT,
        path: "/api/events/{eid}/questions/{qid}/hidden",
        handler: || put(host::hidden),
    },
    Route {
        method: Method::PUT,
        path: "/api/events/{eid}/questions/{qid}/text",
        handler: || put(host::text),
    },
    Route {
        method: Method::PUT,
        path: "/api/events/{eid}/open",
        handler: || put(host::open),
    },
    Route {
        method: Method::GET,
        path: "/api/events/{eid}/host/questions",
        handler: || get(host::host_view),
    },
    Route {
        method: Method::GET,
        path: "/api/events/{eid}/records",
        handler: || get(host::records),
    },
];

/// The routes about the service itself.
pub const SERVICE_ROUTES: &[Route] = &[
    Route {
        method: Method::GET,
        path: "/healthz",
        handler: || get(health),
    },
    Route {
        method: Method::GET,
        path: "/api/regions",
        handler: || get(events::regions),
    },
    Route {
        method: Method::GET,
        path: "/api/qr",
        handler: || get(client::qr),
    },
    Route {
        method: Method::GET,
        path: "/metrics",
        handler: || get(telemetry::metrics),
    },
    Route {
        method: Method::GET,
        path: "/api/openapi.json",
        handler: || get(openapi),
    },
];

/// The contract, machine-readable (OpenAPI 3.1), as committed in `docs/`.
pub const OPENAPI_DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// A router of `table`'s routes (routes of one path merge their methods).
fn routes(table: &[Route]) -> Router<AppState> {
    table.iter().fold(Router::new(), |router, route| {
        router.route(route.path, (route.handler)())
    })
}

/// Builds the whole service: API, health check and web client, each also
/// under a region's path prefix (`/r/{region}/…`, see [`routing`]).
pub fn router(app: AppState) -> Router {
    // The prefix comes off before routing, so one route table serves both.
    Router::new()
        .fallback_service(site(app))
        .layer(middleware::from_fn(routing::strip_region_prefix))
        .layer(middleware::from_fn(head_limits::measure_heads))
}

fn site(app: AppState) -> Router {
    let api = routes(EVENT_ROUTES)
        .layer(middleware::from_fn_with_state(
            app.clone(),
            voter::voter_identity,
        ))
        .layer(middleware::from_fn_with_state(
            app.clone(),
            routing::home_region,
        ));

    Router::new()
        .merge(api)
        .merge(routes(SERVICE_ROUTES))
        .route("/", get(client::home))
        .route("/event/{eid}", get(client::event_page))
        .route("/event/{eid}/host", get(client::event_page))
        .route("/event/{eid}/present", get(client::present_page))
        .route("/assets/{build}/{name}", get(client::asset))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        // Inside the layers below, so its refusals carry the security
        // headers and a request id, and are counted and traced.
        .layer(middleware::from_fn(head_limits::refuse_oversized_heads))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        // Pages set their own policy; anything else opened as a document
        // (an SVG, a JSON answer) may run nothing and load nothing.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(NOT_A_PAGE_POLICY),
        ))
        // Inside the trace layer, so a count happens within its request.
        .layer(middleware::from_fn(telemetry::count_requests))
        // Failures are logged where their cause is known (`ApiError`: a 503
        // as a warning with its cause, a 500 as an error); the trace layer's
        // own line for every 5xx would only repeat them, as errors.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        // Outside the trace layer, so the request's span carries its id;
        // a client's or proxy's own `x-request-id` is kept.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUlid))
        .layer(CatchPanicLayer::custom(
            |panic: Box<dyn std::any::Any + Send>| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                ApiError::internal(format!("a handler panicked: {what}")).into_response()
            },
        ))
        .with_state(app)
}

/// Request ids are ULIDs: unique, and sortable by when they were made.
#[derive(Clone, Copy)]
struct MakeRequestUlid;

impl MakeRequestId for MakeRequestUlid {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&ulid::Ulid::new().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// One span per request: method, route template (never the raw path, which
/// may carry ids in bulk) and request id. Handlers add the event and
/// question; nothing secret is ever a field (the host secret is a header,
/// and the voter token a cookie or header, neither of which is recorded).
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unmatched)", MatchedPath::as_str);
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // The region the path named, if any (`/r/{region}/…`): ties a 307 to
    // the hint that caused it.
    let path_region = request
        .extensions()
        .get::<routing::PathRegion>()
        .map_or("", |r| r.0.as_str());
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        path_region,
        request_id,
        trace_id = tracing::field::Empty,
    );
    // Continue the client's or the CDN's trace, and put its id in the logs
    // (where traces are exported; without them there is no trace id).
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let _ = span.set_parent(telemetry::incoming_context(request.headers()));
    let trace_id = opentelemetry::trace::TraceContextExt::span(&span.context())
        .span_context()
        .trace_id();
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
    span
}

/// How many damaged events `/healthz` names (it counts them all).
const HEALTH_NAMES_DAMAGED: usize = 20;

/// 200 while the store answers, "degraded" when events are known to be
/// damaged. Still 200 then: a load balancer taking the instance out would
/// take every other event with it, and the damaged one too, whose readable
/// records are still served. Whoever looks sees which events (the first
/// [`HEALTH_NAMES_DAMAGED`]); alerts watch `openfloor_damaged_events`.
async fn health(
    axum::extract::State(app): axum::extract::State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // A directory read proves the store answers.
    let probe = openfloor_domain::ids::EventId::from_ulid(ulid::Ulid::nil());
    app.store.directory.get(probe).await?;
    let region = &app.config.regions.serving;
    let damaged = app.store.damage.events();
    if damaged.is_empty() {
        return Ok(Json(serde_json::json!({"status": "ok", "region": region})));
    }
    let named: Vec<String> = damaged
        .iter()
        .take(HEALTH_NAMES_DAMAGED)
        .map(ToString::to_string)
        .collect();
    Ok(Json(serde_json::json!({
        "status": "degraded",
        "region": region,
        "damaged_events": named,
        "damaged_event_count": damaged.len(),
    })))
}

async fn openapi() -> axum::response::Response {
    routes::bytes_response(OPENAPI_DOCUMENT, "application/json", "public, max-age=300")
}

/// The content security policy of every response that is not a page.
pub const NOT_A_PAGE_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
