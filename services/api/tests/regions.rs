//! Home-region routing, through the router without sockets.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use openfloor_api::{router, ApiConfig, AppState, SystemClock};
use openfloor_domain::ids::EventId;
use openfloor_store::memory::MemoryStore;
use openfloor_store::{LocalTrigger, Store};
use openfloor_testing::fixtures;
use tower::ServiceExt;

fn app(store: Store, region_urls: HashMap<String, String>) -> axum::Router {
    let config = ApiConfig {
        region: "eu-west-1".into(),
        region_urls,
        ..ApiConfig::default()
    };
    router(AppState::new(
        store,
        Arc::new(LocalTrigger::new()),
        config,
        Arc::new(SystemClock),
    ))
}

async fn event_in(store: &Store, region: &str) -> EventId {
    let meta = fixtures::event_meta(EventId::from_ulid(ulid::Ulid::new()))
        .title("elsewhere")
        .region(region)
        .live_for(std::time::Duration::from_secs(3_600))
        .build();
    store.directory.create(&meta).await.unwrap();
    meta.id
}

async fn get(app: axum::Router, uri: &str) -> axum::response::Response {
    app.oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn requests_for_an_event_homed_elsewhere_are_redirected_there() {
    let store = MemoryStore::store();
    let us = event_in(&store, "us-east-1").await;
    let urls = HashMap::from([("us-east-1".to_owned(), "https://us.example.com/".to_owned())]);
    let r = get(
        app(store.clone(), urls.clone()),
        &format!("/api/events/{us}/questions?x=1"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        r.headers()["location"],
        format!("https://us.example.com/api/events/{us}/questions?x=1").as_str()
    );

    // A local event is served here.
    let eu = event_in(&store, "eu-west-1").await;
    let r = get(
        app(store.clone(), urls.clone()),
        &format!("/api/events/{eu}"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);

    // A home region nobody can reach: retry later, do not touch it here.
    let nowhere = event_in(&store, "ap-south-1").await;
    let r = get(app(store.clone(), urls), &format!("/api/events/{nowhere}")).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn a_brand_new_event_not_replicated_yet_is_retried_not_gone() {
    let store = MemoryStore::store();
    let urls = HashMap::from([("us-east-1".to_owned(), "https://us.example.com".to_owned())]);
    let fresh = EventId::from_ulid(ulid::Ulid::new());
    let r = get(
        app(store.clone(), urls.clone()),
        &format!("/api/events/{fresh}/questions"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "1");
    let old = EventId::from_ulid(ulid::Ulid::from_parts(fixtures::now_ms() - 60_000, 1));
    let r = get(
        app(store.clone(), urls),
        &format!("/api/events/{old}/questions"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // With one region there is no replication: unknown is unknown.
    let r = get(
        app(store, HashMap::new()),
        &format!("/api/events/{fresh}/questions"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// Whatever its configuration, a region never serves another region's
/// event: with no region URLs at all, it says so with a 503, and stores
/// nothing (no split counts).
#[tokio::test]
async fn a_region_without_region_urls_refuses_another_regions_event() {
    let store = MemoryStore::store();
    let us = event_in(&store, "us-east-1").await;
    for (method, path, body) in [
        ("GET", format!("/api/events/{us}"), ""),
        ("GET", format!("/api/events/{us}/questions"), ""),
        (
            "POST",
            format!("/api/events/{us}/questions"),
            r#"{"text": "split?"}"#,
        ),
    ] {
        let r = app(store.clone(), HashMap::new())
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(&path)
                    .header("x-voter", "a-voter-token-0001")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}"
        );
        let body = http_body_util::BodyExt::collect(r.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "homed_elsewhere");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("us-east-1"));
    }
    let meta = store.directory.get(us).await.unwrap().unwrap();
    assert_eq!(store.log.read_event(meta.log()).await.unwrap().len(), 0);
}
