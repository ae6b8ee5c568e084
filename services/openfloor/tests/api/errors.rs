//! Bad input gets the envelope, and never a 500 or a panic.

use reqwest::StatusCode;
use serde_json::json;

use openfloor_testing::api::{assert_error, voter};

use crate::helpers::spawn_app;

#[tokio::test]
async fn bodies_over_sixteen_kib_are_refused() {
    let app = spawn_app().await;
    let event = app.create_event("Big").await;
    let r = app
        .post_question(
            &event.id,
            &voter("a"),
            json!({"text": "x", "author": "y".repeat(17_000)}),
        )
        .await;
    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    let r = app
        .post("/api/events")
        .header("content-type", "application/json")
        .body(vec![b' '; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

/// A page on another site cannot make a visitor's browser write: a body
/// that is not declared JSON is a 415 (a declared one needs a CORS
/// preflight, never granted), and a browser's `Sec-Fetch-Site: cross-site`
/// is a 403. Nothing is stored.
#[tokio::test]
async fn writes_must_be_declared_json_and_not_cross_site() {
    let app = spawn_app().await;
    let event = app.create_event("Forms").await;
    let path = format!("/api/events/{}/questions", event.id);
    let body = r#"{"text":"planted by another site"}"#;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = app.post(&path).header("x-voter", voter("a")).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let r = request.send().await.unwrap();
        assert_error(
            r,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
    let r = app
        .post(&path)
        .header("x-voter", voter("a"))
        .header("content-type", "application/json")
        .header("sec-fetch-site", "cross-site")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::FORBIDDEN, "cross_site").await;
    let view = app.guest_view(&event.id).await;
    assert_eq!(view["questions"], serde_json::json!([]), "nothing stored");
    // Parameters and letter case do not matter; the page's own origin is fine.
    let r = app
        .post(&path)
        .header("x-voter", voter("a"))
        .header("content-type", "Application/JSON; charset=utf-8")
        .header("sec-fetch-site", "same-origin")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

/// The largest valid ask in the most verbose JSON a client may send: every
/// character of text and author an escaped surrogate pair.
#[tokio::test]
async fn the_largest_valid_ask_fits_in_any_json_encoding() {
    let app = spawn_app().await;
    let event = app.create_event("Emoji").await;
    let escaped = |n: usize| "\\ud83d\\ude00".repeat(n);
    let body = format!(
        r#"{{"text":"{}","author":"{}"}}"#,
        escaped(1000),
        escaped(100)
    );
    assert!(body.len() > 13_000, "{} bytes", body.len());
    let r = app
        .post(&format!("/api/events/{}/questions", event.id))
        .header("x-voter", voter("a"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn malformed_ids_are_bad_requests_and_unknown_routes_are_not_found() {
    let app = spawn_app().await;
    for path in [
        "/api/events/not-an-id",
        "/api/events/01ARZ3NDEKTSV4RRFFQ69G5FA/questions",
        "/api/events/81ARZ3NDEKTSV4RRFFQ69G5FAV/questions",
        "/api/events/%00%ff/questions",
    ] {
        let r = app.get(path).send().await.unwrap();
        assert_error(r, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    for path in ["/api/nope", "/api", "/nope", "/event", "/assets/x/none.js"] {
        let r = app.get(path).send().await.unwrap();
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    // A page link cut short or mistyped is a page that says so.
    for path in ["/event/not-an-id", "/event/01ARZ3NDEKTSV4RRFFQ69G5FA/host"] {
        let r = app.get(path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(r.headers().contains_key("content-security-policy"));
        assert!(r.text().await.unwrap().contains("No such event"));
    }
    let r = app.delete("/api/events").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn hostile_input_never_breaks_the_server() {
    let app = spawn_app().await;
    let event = app.create_event("Fuzz").await;
    let q = app.ask(&event.id, "target").await;
    let bodies = [
        "",
        "null",
        "[]",
        "{}",
        "{\"text\":null}",
        "{\"text\":[1,2]}",
        "\u{feff}{}",
        "{\"text\":\"\\ud800\"}",
        "{\"up\":1}",
        "{\"value\":\"true\"}",
        "{{{{",
        "\"just a string\"",
    ];
    let paths = [
        ("POST", format!("/api/events/{}/questions", event.id)),
        (
            "PUT",
            format!("/api/events/{}/questions/{q}/vote", event.id),
        ),
        (
            "PUT",
            format!("/api/events/{}/questions/{q}/hidden", event.id),
        ),
        ("PUT", format!("/api/events/{}/open", event.id)),
        ("POST", "/api/events".to_owned()),
    ];
    for (method, path) in &paths {
        for body in bodies {
            let req = app
                .request(method.parse().unwrap(), path)
                .header("x-voter", voter("fuzz"))
                .header("content-type", "application/json")
                .bearer_auth(&event.secret)
                .body(body);
            let r = req.send().await.unwrap();
            assert!(
                r.status().is_client_error() || r.status().is_success(),
                "{method} {path} {body:?} -> {}",
                r.status()
            );
        }
    }
    // The server still works and the event is intact.
    assert_eq!(
        app.get("/healthz").send().await.unwrap().status(),
        StatusCode::OK
    );
    let view = app
        .wait_for_guest(&event.id, |v| {
            v["questions"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert!(view["questions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == q.as_str()));
}
