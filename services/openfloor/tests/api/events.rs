use reqwest::StatusCode;
use serde_json::{json, Value};

use openfloor_testing::api::{assert_error, voter, votes_of};

use crate::helpers::{spawn_app, spawn_app_in};

#[tokio::test]
async fn creating_an_event_returns_its_links_and_a_secret() {
    let app = spawn_app().await;
    let event = app.create_event("Town hall").await;
    let b = &event.body;
    assert_eq!(b["title"], "Town hall");
    assert_eq!(b["region"], "local");
    assert_eq!(event.id.len(), 26);
    assert_eq!(b["guest_url"], format!("/event/{}", event.id));
    assert_eq!(
        b["host_url"],
        format!("/event/{}/host#{}", event.id, event.secret)
    );
    assert!(event.secret.len() >= 32);

    let r = app
        .get(&format!("/api/events/{}", event.id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["title"], "Town hall");
    assert_eq!(info["open"], true);
    assert!(info["expires_at"].as_u64().unwrap() > info["created_at"].as_u64().unwrap());
    assert!(info.get("secret").is_none() && !info.to_string().contains(&event.secret));
}

#[tokio::test]
async fn the_title_is_optional_and_bounded() {
    let app = spawn_app().await;
    let r = app
        .post("/api/events")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .post("/api/events")
        .json(&json!({"title": "t".repeat(201)}))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    let r = app
        .post("/api/events")
        .json(&json!({"title": 7}))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "bad_request").await;
}

#[tokio::test]
async fn a_new_event_has_an_empty_view_with_its_title_at_once() {
    let app = spawn_app().await;
    let event = app.create_event("Fresh").await;
    let view = app.guest_view(&event.id).await;
    assert_eq!(view["event"]["title"], "Fresh");
    assert_eq!(view["event"]["open"], true);
    assert_eq!(view["questions"], json!([]));
    assert_eq!(view["answered"], json!([]));
}

#[tokio::test]
async fn unknown_and_expired_events_are_not_found() {
    let app = spawn_app().await;
    let r = app
        .get(&format!("/api/events/{}", ulid::Ulid::new()))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;

    let event = app.create_event("Short lived").await;
    app.clock
        .advance(std::time::Duration::from_secs(31 * 24 * 3600));
    for path in ["", "/questions"] {
        let r = app
            .get(&format!("/api/events/{}{path}", event.id))
            .send()
            .await
            .unwrap();
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    }
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let app = spawn_app().await;
    let event = app.create_event("Persistent").await;
    let qid = app.ask(&event.id, "Still there?").await;
    assert_eq!(
        app.vote(&event.id, &qid, &voter("a"), true).await.status(),
        StatusCode::ACCEPTED
    );
    let data = app.data.clone();
    app.stop().await;

    let app = spawn_app_in(data).await;
    let view = app
        .wait_for_guest(&event.id, |v| votes_of(v, &qid) == Some(1))
        .await;
    assert_eq!(view["questions"][0]["text"], "Still there?");
    // The secret still works; the same voter still counts once.
    assert_eq!(app.host_view(&event).await["questions"][0]["votes"], 1);
    app.vote(&event.id, &qid, &voter("a"), true).await;
    let view = app.guest_view(&event.id).await;
    assert_eq!(votes_of(&view, &qid), Some(1));
}
