//! The voter cookie: where the deployment serves HTTPS only, `Secure`, with
//! the `__Host-` prefix, and only that name is an identity; anywhere, the
//! first well-formed one of several is the voter.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use openfloor_api::{router, ApiConfig, AppState, Regions, SystemClock};
use openfloor_domain::ids::EventId;
use openfloor_store::memory::MemoryStore;
use openfloor_store::LocalTrigger;
use openfloor_testing::fixtures;
use tower::ServiceExt;

async fn secure_app() -> (axum::Router, EventId) {
    app(true).await
}

async fn app(secure_cookies: bool) -> (axum::Router, EventId) {
    let store = MemoryStore::store();
    let meta = fixtures::event_meta(EventId::from_ulid(ulid::Ulid::new()))
        .region("eu-west-1")
        .live_for(std::time::Duration::from_secs(3_600))
        .build();
    store.directory.create(&meta).await.unwrap();
    let config = ApiConfig {
        regions: Regions::single("eu-west-1"),
        secure_cookies,
        ..ApiConfig::default()
    };
    let app = router(AppState::new(
        store,
        Arc::new(LocalTrigger::new()),
        config,
        Arc::new(SystemClock),
    ));
    (app, meta.id)
}

async fn get_event(
    app: &axum::Router,
    event: EventId,
    cookie: Option<&str>,
) -> axum::response::Response {
    let mut request = Request::get(format!("/api/events/{event}"));
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    app.clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_secure_deployment_issues_a_host_prefixed_secure_cookie() {
    let (app, event) = secure_app().await;
    let r = get_event(&app, event, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-openfloor_voter="), "{cookie}");
    for part in ["; Secure", "; HttpOnly", "; Path=/", "SameSite=Lax"] {
        assert!(cookie.contains(part), "{part}: {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    assert_eq!(r.headers()[header::CACHE_CONTROL], "private, no-store");

    // That cookie is the voter: no new one.
    let pair = cookie.split(';').next().unwrap();
    let again = get_event(&app, event, Some(pair)).await;
    assert!(again.headers().get(header::SET_COOKIE).is_none());

    // The unprefixed name, which any subdomain or plain-HTTP page could
    // set, is not an identity here: a new cookie is issued.
    let token = pair.split_once('=').unwrap().1;
    let planted = format!("openfloor_voter={token}");
    let r = get_event(&app, event, Some(&planted)).await;
    let fresh = r.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(fresh.starts_with("__Host-openfloor_voter="), "{fresh}");
    assert!(!fresh.contains(token), "a planted token is not adopted");
}

/// A browser may send several cookies of one name (a stale one left by an
/// older path or domain, or one tampered with). A malformed one before a
/// valid one does not hide it, whether in one `Cookie` header or in two:
/// the valid one is the voter, and no new cookie is issued over it.
#[tokio::test]
async fn a_malformed_cookie_does_not_hide_a_valid_one_after_it() {
    let (app, event) = app(false).await;
    let first = get_event(&app, event, None).await;
    let issued = first.headers()[header::SET_COOKIE].to_str().unwrap();
    let valid = issued.split(';').next().unwrap().to_owned();
    assert!(valid.starts_with("openfloor_voter="), "{valid}");

    let together = format!("openfloor_voter=short; {valid}");
    let r = get_event(&app, event, Some(&together)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get(header::SET_COOKIE).is_none(), "{together}");

    let request = Request::get(format!("/api/events/{event}"))
        .header(header::COOKIE, "openfloor_voter=has spaces")
        .header(header::COOKIE, valid.as_str())
        .body(Body::empty())
        .unwrap();
    let r = app.clone().oneshot(request).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get(header::SET_COOKIE).is_none(), "two headers");

    // Malformed alone: a fresh identity, not an error.
    let r = get_event(&app, event, Some("openfloor_voter=short")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get(header::SET_COOKIE).is_some());
}
