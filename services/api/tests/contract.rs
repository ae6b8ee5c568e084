//! The contract against the router, without sockets: the OpenAPI document
//! lists exactly the routes the router serves, is served as committed, and
//! every JSON body route refuses what is not a JSON object.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use openfloor_api::{router, ApiConfig, AppState, SystemClock, EVENT_ROUTES, SERVICE_ROUTES};
use openfloor_store::memory::MemoryStore;
use openfloor_store::{LocalTrigger, Store};
use serde_json::Value;
use tower::ServiceExt;

fn app() -> axum::Router {
    app_on(MemoryStore::store())
}

fn app_on(store: Store) -> axum::Router {
    router(AppState::new(
        store,
        Arc::new(LocalTrigger::new()),
        ApiConfig::default(),
        Arc::new(SystemClock),
    ))
}

fn document() -> Value {
    serde_json::from_str(openfloor_api::OPENAPI_DOCUMENT).expect("docs/openapi.json is JSON")
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[test]
fn the_openapi_document_lists_exactly_the_routers_routes() {
    let doc = document();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "an OpenAPI 3.1 document"
    );
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = EVENT_ROUTES
        .iter()
        .chain(SERVICE_ROUTES)
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    assert_eq!(documented, routed);
}

#[tokio::test]
async fn the_document_is_served_as_committed() {
    let r = app()
        .oneshot(
            Request::get("/api/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    let body = r.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], openfloor_api::OPENAPI_DOCUMENT.as_bytes());
}

/// Every documented route answers its documented method (no 404 "no such
/// route", no 405), even when the request itself is bad.
#[tokio::test]
async fn every_documented_route_is_routed() {
    let eid = ulid::Ulid::new();
    let qid = ulid::Ulid::new();
    for route in EVENT_ROUTES.iter().chain(SERVICE_ROUTES) {
        let uri = route
            .path
            .replace("{eid}", &eid.to_string())
            .replace("{qid}", &qid.to_string());
        let r = app()
            .oneshot(
                Request::builder()
                    .method(route.method.clone())
                    .uri(&uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_ne!(
            r.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{} {uri}",
            route.method
        );
        if r.status() == StatusCode::NOT_FOUND {
            let body = r.into_body().collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_ne!(
                body["error"]["message"], "no such route",
                "{} {uri} is not routed",
                route.method
            );
        }
    }
}

/// A JSON array or scalar where the contract wants an object is a 400 with
/// the error envelope, on every route that takes a body; nothing is stored.
#[tokio::test]
async fn json_bodies_that_are_not_objects_are_refused() {
    let eid = ulid::Ulid::new();
    let qid = ulid::Ulid::new();
    let store = MemoryStore::store();
    let app = app_on(store.clone());
    for route in EVENT_ROUTES
        .iter()
        .filter(|r| r.method == Method::POST || r.method == Method::PUT)
    {
        let uri = route
            .path
            .replace("{eid}", &eid.to_string())
            .replace("{qid}", &qid.to_string());
        for body in [r#"["x"]"#, r#"  [true]"#, "\"x\"", "true", "1", "null"] {
            let r = app
                .clone()
                .oneshot(
                    Request::builder()
                        .method(route.method.clone())
                        .uri(&uri)
                        .header(header::CONTENT_TYPE, "application/json")
                        .header(header::AUTHORIZATION, "Bearer whatever")
                        .body(Body::from(body))
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::BAD_REQUEST,
                "{} {uri} {body}",
                route.method
            );
            let bytes = r.into_body().collect().await.unwrap().to_bytes();
            let envelope: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(
                envelope["error"]["code"], "bad_request",
                "{} {uri} {body}",
                route.method
            );
        }
    }
    // Creating an event from `["x"]` used to store one titled "x".
    assert!(store.directory.list().await.unwrap().is_empty());
}

/// The JSON error envelope of an answer: its `error` object.
async fn error_of(r: axum::response::Response) -> Value {
    let json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    assert!(json, "not JSON: {}", String::from_utf8_lossy(&bytes));
    let envelope: Value = serde_json::from_slice(&bytes).unwrap();
    envelope["error"].clone()
}

/// A known path with a method it does not serve is a 405 whose code says
/// so, with the methods the path does serve in `Allow`.
#[tokio::test]
async fn a_method_a_path_does_not_serve_is_405_with_allow() {
    let eid = ulid::Ulid::new();
    for (method, uri, allowed) in [
        (Method::DELETE, "/api/events".to_owned(), "POST"),
        (Method::POST, "/healthz".to_owned(), "GET,HEAD"),
        (
            Method::PATCH,
            format!("/api/events/{eid}/questions"),
            "GET,HEAD,POST",
        ),
    ] {
        let r = app()
            .oneshot(
                Request::builder()
                    .method(method.clone())
                    .uri(&uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        let allow: BTreeSet<&str> = r
            .headers()
            .get(header::ALLOW)
            .map(|v| v.to_str().unwrap().split(',').map(str::trim).collect())
            .unwrap_or_default();
        assert_eq!(
            allow,
            allowed.split(',').collect::<BTreeSet<_>>(),
            "{method} {uri}"
        );
        let error = error_of(r).await;
        assert_eq!(error["code"], "method_not_allowed", "{method} {uri}");
    }
}

/// A page or asset path that does not percent-decode to UTF-8 is a 400 in
/// the envelope, as it is on every API route.
#[tokio::test]
async fn undecodable_page_and_asset_paths_are_400_in_the_envelope() {
    for uri in [
        "/event/%ff",
        "/event/%ff/host",
        "/assets/%ff/app.js",
        "/assets/build/%ff",
    ] {
        let r = app()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(error_of(r).await["code"], "bad_request", "{uri}");
    }
}
