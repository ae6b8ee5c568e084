//! Home-region routing, through the router without sockets.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use openfloor_api::routing::REPLICATION_PATIENCE_MS;
use openfloor_api::{router, ApiConfig, AppState, Regions, SystemClock};
use openfloor_domain::ids::EventId;
use openfloor_store::memory::MemoryStore;
use openfloor_store::{LocalTrigger, Store};
use openfloor_testing::fixtures;
use tower::ServiceExt;

/// Region eu-west-1 of a deployment whose other regions have `region_urls`
/// (and, when `others` names more, regions reached only through the edge).
fn app(store: Store, region_urls: HashMap<String, String>) -> axum::Router {
    app_with(store, region_urls, &[])
}

fn app_with(store: Store, region_urls: HashMap<String, String>, others: &[&str]) -> axum::Router {
    let config = ApiConfig {
        regions: Regions::new(
            "eu-west-1".into(),
            others.iter().map(|s| (*s).to_owned()),
            region_urls.into_iter().collect(),
            BTreeMap::new(),
        ),
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

async fn json(r: axum::response::Response) -> serde_json::Value {
    let body = http_body_util::BodyExt::collect(r.into_body())
        .await
        .unwrap()
        .to_bytes();
    serde_json::from_slice(&body).unwrap()
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
    assert_eq!(json(r).await["error"]["code"], "not_here_yet");
    // An id older than any replication lag is simply unknown.
    let old = EventId::from_ulid(ulid::Ulid::from_parts(
        fixtures::now_ms() - REPLICATION_PATIENCE_MS - 1_000,
        1,
    ));
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

/// Through the one address for browsers (the region named in the path), a
/// request for an event homed elsewhere is sent to the same origin's path
/// for its region: a browser follows that with no CORS and keeps its cookie.
#[tokio::test]
async fn through_the_one_address_the_redirect_stays_on_the_same_origin() {
    let store = MemoryStore::store();
    let us = event_in(&store, "us-east-1").await;
    let urls = HashMap::from([("us-east-1".to_owned(), "https://us.example.com".to_owned())]);
    // A stale hint (eu-west-1), or the edge's default path, reaching here.
    let r = get(
        app(store.clone(), urls.clone()),
        &format!("/r/eu-west-1/api/events/{us}/questions?x=1"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        r.headers()["location"],
        format!("/r/us-east-1/api/events/{us}/questions?x=1").as_str()
    );
    assert_eq!(r.headers()["cache-control"], "no-store");
    // The home region's own path reaching another region: the edge is
    // misrouted, and a redirect to the same path would loop. Refused.
    let r = get(
        app(store.clone(), urls.clone()),
        &format!("/r/us-east-1/api/events/{us}/questions"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(r).await["error"]["code"], "homed_elsewhere");
    // A region the deployment does not have: the edge has no path for it.
    let ap = event_in(&store, "ap-south-1").await;
    let r = get(
        app(store.clone(), HashMap::new()),
        &format!("/r/eu-west-1/api/events/{ap}"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(r).await["error"]["code"], "homed_elsewhere");

    // An event homed here is served here, whatever the hint said.
    let eu = event_in(&store, "eu-west-1").await;
    for path in [
        format!("/r/eu-west-1/api/events/{eu}"),
        format!("/r/us-east-1/api/events/{eu}"),
    ] {
        let r = get(app(store.clone(), urls.clone()), &path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(json(r).await["region"], "eu-west-1");
    }
    // The pages are served under a region's path too (the share link).
    for path in [
        format!("/r/eu-west-1/event/{eu}"),
        format!("/r/eu-west-1/event/{eu}/host"),
        "/r/eu-west-1/".to_owned(),
    ] {
        let r = get(app(store.clone(), urls.clone()), &path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
    // A malformed region in the path is no region: no such route.
    let r = get(app(store, urls), &format!("/r/EU_WEST/api/events/{eu}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

async fn create(
    app: axum::Router,
    uri: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> axum::response::Response {
    let mut request = Request::post(uri).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    app.oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap()
}

/// A new event lives in the region the host names; else the one nearest
/// the host; else the one serving. Only that region creates it: another
/// sends the create on.
#[tokio::test]
async fn a_new_event_lives_where_the_host_chooses_or_nearest_the_host() {
    let store = MemoryStore::store();
    let urls = HashMap::from([("us-east-1".to_owned(), "https://us.example.com".to_owned())]);
    let deployment = || app_with(store.clone(), urls.clone(), &["ap-southeast-2"]);
    const NEW_YORK: [(&str, &str); 2] = [
        ("cloudfront-viewer-latitude", "40.71"),
        ("cloudfront-viewer-longitude", "-74.01"),
    ];

    // Named: sent on to that region's path, naming it so it does not choose
    // again; directly, to its URL.
    let r = create(
        deployment(),
        "/r/eu-west-1/api/events",
        r#"{"title":"t","region":"ap-southeast-2"}"#,
        &NEW_YORK,
    )
    .await;
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        r.headers()["location"],
        "/r/ap-southeast-2/api/events?region=ap-southeast-2"
    );
    let r = create(
        deployment(),
        "/api/events",
        r#"{"title":"t","region":"us-east-1"}"#,
        &[],
    )
    .await;
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        r.headers()["location"],
        "https://us.example.com/api/events?region=us-east-1"
    );
    // A region with no URL cannot be reached directly: an operator's fix.
    let r = create(
        deployment(),
        "/api/events",
        r#"{"region":"ap-southeast-2"}"#,
        &[],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(r).await["error"]["code"], "homed_elsewhere");
    // Not one of the deployment's: a clear 400, nothing created.
    let r = create(
        deployment(),
        "/r/eu-west-1/api/events",
        r#"{"region":"mars-north-1"}"#,
        &[],
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let error = json(r).await;
    assert_eq!(error["error"]["code"], "invalid_input");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("mars-north-1"));

    // Unnamed: the region nearest the host (a host in New York).
    let r = create(
        deployment(),
        "/r/eu-west-1/api/events",
        r#"{"title":"t"}"#,
        &NEW_YORK,
    )
    .await;
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        r.headers()["location"],
        "/r/us-east-1/api/events?region=us-east-1"
    );

    // Named here (as a create sent on arrives), or nothing to go by: here.
    for (uri, headers) in [
        ("/r/eu-west-1/api/events?region=eu-west-1", &NEW_YORK[..]),
        ("/r/eu-west-1/api/events", &[][..]),
    ] {
        let r = create(deployment(), uri, r#"{"title":"here"}"#, headers).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{uri}");
        let created = json(r).await;
        assert_eq!(created["region"], "eu-west-1");
        let id = created["id"].as_str().unwrap();
        // The share links name the region, for the one address.
        assert_eq!(created["guest_url"], format!("/r/eu-west-1/event/{id}"));
        assert!(created["host_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("/r/eu-west-1/event/{id}/host#")));
        let meta = store
            .directory
            .get(id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(meta.region, "eu-west-1");
    }

    // One region: links as ever, and a named other region is unknown.
    let single = || app(store.clone(), HashMap::new());
    let r = create(single(), "/api/events", r#"{"title":"solo"}"#, &NEW_YORK).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created = json(r).await;
    assert_eq!(
        created["guest_url"],
        format!("/event/{}", created["id"].as_str().unwrap())
    );
    let r = create(single(), "/api/events", r#"{"region":"us-east-1"}"#, &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_regions_are_listed_with_the_one_a_host_here_would_get() {
    let store = MemoryStore::store();
    let deployment = app_with(store, HashMap::new(), &["us-east-1", "ap-southeast-2"]);
    let r = deployment
        .oneshot(
            Request::get("/r/eu-west-1/api/regions")
                .header("cloudfront-viewer-latitude", "-37.81")
                .header("cloudfront-viewer-longitude", "144.96")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    let info = json(r).await;
    assert_eq!(info["serving"], "eu-west-1");
    assert_eq!(info["suggested"], "ap-southeast-2", "a host in Melbourne");
    assert_eq!(info["nearest"], true);
    let names: Vec<_> = info["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ap-southeast-2", "eu-west-1", "us-east-1"]);
    assert_eq!(info["regions"][1]["label"], "Europe (Ireland)");

    // Nobody knows where this viewer is: the serving region, and it says so.
    let r = app_with(MemoryStore::store(), HashMap::new(), &["us-east-1"])
        .oneshot(Request::get("/api/regions").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let info = json(r).await;
    assert_eq!(info["suggested"], "eu-west-1");
    assert_eq!(info["nearest"], false);
}

/// The region check reads the event id as the handlers do: an id spelled
/// with percent-escapes is the same id, and is sent on all the same (it
/// must never be written here, split from its home's counts).
#[tokio::test]
async fn an_escaped_event_id_is_routed_like_any_other() {
    let store = MemoryStore::store();
    let us = event_in(&store, "us-east-1").await;
    let urls = HashMap::from([("us-east-1".to_owned(), "https://us.example.com".to_owned())]);
    let escaped: String = us
        .to_string()
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect();
    let r = app(store.clone(), urls)
        .oneshot(
            Request::post(format!("/r/eu-west-1/api/events/{escaped}/questions"))
                .header("content-type", "application/json")
                .header("x-voter", "a-voter-token-0001")
                .body(Body::from(r#"{"text": "split?"}"#))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    let meta = store.directory.get(us).await.unwrap().unwrap();
    assert_eq!(store.log.read_event(meta.log()).await.unwrap().len(), 0);
}
