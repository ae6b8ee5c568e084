use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use openfloor_testing::api::{assert_error, ids, voter, votes_of};

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_question_appears_in_the_guest_view() {
    let app = spawn_app().await;
    let event = app.create_event("Q").await;
    let r = app
        .post_question(
            &event.id,
            &voter("a"),
            json!({"text": "  Why is the sky blue?  ", "author": "Ada"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let qid = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let view = app
        .wait_for_guest(&event.id, |v| ids(v, "questions") == [qid.clone()])
        .await;
    let q = &view["questions"][0];
    assert_eq!(q["text"], "Why is the sky blue?", "text is trimmed");
    assert_eq!(q["author"], "Ada");
    assert_eq!(q["votes"], 0);
    assert!(q["asked_at"].as_u64().unwrap() > 1_700_000_000_000);
}

#[tokio::test]
async fn a_retried_ask_with_a_client_id_is_stored_once_and_a_reused_id_conflicts() {
    let app = spawn_app().await;
    let event = app.create_event("Q").await;
    let id = ulid::Ulid::new().to_string();
    for _ in 0..3 {
        let r = app
            .post_question(&event.id, &voter("a"), json!({"id": id, "text": "Once?"}))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.json::<Value>().await.unwrap()["id"], id.as_str());
    }
    let r = app
        .post_question(&event.id, &voter("a"), json!({"id": id, "text": "Other"}))
        .await;
    assert_error(r, StatusCode::CONFLICT, "question_id_reused").await;
    let view = app
        .wait_for_guest(&event.id, |v| !ids(v, "questions").is_empty())
        .await;
    assert_eq!(ids(&view, "questions"), [id]);
}

#[tokio::test]
async fn question_text_and_author_are_validated() {
    let app = spawn_app().await;
    let event = app.create_event("Q").await;
    let cases = [
        json!({"text": ""}),
        json!({"text": "   \n "}),
        json!({"text": "x".repeat(1001)}),
        json!({"text": "ok", "author": "a".repeat(101)}),
        json!({"text": "nul \u{0} byte"}),
    ];
    for body in cases {
        let r = app
            .post_question(&event.id, &voter("a"), body.clone())
            .await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    }
    // 1000 characters of four-byte UTF-8 are accepted (limits count characters).
    let r = app
        .post_question(&event.id, &voter("a"), json!({"text": "😀".repeat(1000)}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    for body in [
        json!({"text": 5}),
        json!({"nope": "x"}),
        json!({"text": "ok", "id": "not-a-ulid"}),
    ] {
        let r = app.post_question(&event.id, &voter("a"), body).await;
        assert_error(r, StatusCode::BAD_REQUEST, "bad_request").await;
    }
}

#[tokio::test]
async fn voting_twice_counts_once_and_withdrawing_removes_the_vote() {
    let app = spawn_app().await;
    let event = app.create_event("V").await;
    let qid = app.ask(&event.id, "Count me once").await;
    for _ in 0..3 {
        let r = app.vote(&event.id, &qid, &voter("a"), true).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert!(r.json::<Value>().await.unwrap()["record"].is_string());
    }
    app.vote(&event.id, &qid, &voter("b"), true).await;
    app.wait_for_guest(&event.id, |v| votes_of(v, &qid) == Some(2))
        .await;
    app.vote(&event.id, &qid, &voter("a"), false).await;
    app.vote(&event.id, &qid, &voter("a"), false).await;
    app.wait_for_guest(&event.id, |v| votes_of(v, &qid) == Some(1))
        .await;
    app.vote(&event.id, &qid, &voter("a"), true).await;
    app.wait_for_guest(&event.id, |v| votes_of(v, &qid) == Some(2))
        .await;
    // Withdrawing a vote never cast is a no-op.
    let r = app.vote(&event.id, &qid, &voter("c"), false).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.json::<Value>().await.unwrap()["record"], Value::Null);
}

#[tokio::test]
async fn concurrent_identical_votes_count_once() {
    let app = spawn_app().await;
    let event = app.create_event("Race").await;
    let qid = app.ask(&event.id, "Race me").await;
    let racer = voter("racer");
    let results = join_all((0..40).map(|_| app.vote(&event.id, &qid, &racer, true))).await;
    assert!(results.iter().all(|r| r.status() == StatusCode::ACCEPTED));
    let records = app
        .records(&event.id, &event.secret, "")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        records
            .lines()
            .filter(|l| l.contains(r#""kind":"vote""#))
            .count(),
        1
    );
    app.wait_for_guest(&event.id, |v| votes_of(v, &qid) == Some(1))
        .await;
}

#[tokio::test]
async fn the_ranking_orders_by_votes_then_age() {
    let app = spawn_app().await;
    let event = app.create_event("Rank").await;
    let first = app.ask(&event.id, "first").await;
    let second = app.ask(&event.id, "second").await;
    let third = app.ask(&event.id, "third").await;
    for v in ["a", "b"] {
        app.vote(&event.id, &third, &voter(v), true).await;
    }
    app.vote(&event.id, &second, &voter("a"), true).await;
    let view = app
        .wait_for_guest(&event.id, |v| {
            votes_of(v, &third) == Some(2) && votes_of(v, &second) == Some(1)
        })
        .await;
    assert_eq!(ids(&view, "questions"), [third, second, first]);
}

#[tokio::test]
async fn the_cookie_identifies_a_browser_that_sends_no_voter_header() {
    let app = spawn_app().await;
    let event = app.create_event("Cookie").await;
    let qid = app.ask(&event.id, "cookie?").await;
    let path = format!("/api/events/{}/questions/{qid}/vote", event.id);
    let r = app
        .put(&path)
        .json(&json!({"up": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("openfloor_voter="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP gets no Secure flag");
    let pair = cookie.split(';').next().unwrap().to_owned();
    // The same cookie is the same voter: no second vote, no new cookie.
    let r = app
        .put(&path)
        .header("cookie", &pair)
        .json(&json!({"up": true}))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("set-cookie").is_none());
    app.wait_for_guest(&event.id, |v| votes_of(v, &qid) == Some(1))
        .await;
    // Secure is the deployment's to say: a client's X-Forwarded-Proto
    // changes nothing.
    let r = app
        .put(&path)
        .header("x-forwarded-proto", "https")
        .json(&json!({"up": true}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(!cookie.contains("Secure"), "{cookie}");
    // A response that hands out an identity is never stored by a cache.
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    // A shareable guest view never carries a cookie.
    let r = app
        .get(&format!("/api/events/{}/questions", event.id))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn the_guest_view_is_cacheable_and_revalidates_with_etags() {
    let app = spawn_app().await;
    let event = app.create_event("Etag").await;
    let path = format!("/api/events/{}/questions", event.id);
    let r = app.get(&path).send().await.unwrap();
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=1, s-maxage=1, stale-while-revalidate=5"
    );
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(etag, format!("\"{}\"", body["version"].as_str().unwrap()));
    let r = app
        .get(&path)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()["etag"], etag.as_str());
    app.ask(&event.id, "changes the version").await;
    app.wait_for_guest(&event.id, |v| v["version"] != body["version"])
        .await;
    let r = app
        .get(&path)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn votes_on_unknown_or_malformed_questions_are_refused() {
    let app = spawn_app().await;
    let event = app.create_event("Bad votes").await;
    let qid = app.ask(&event.id, "real").await;
    let r = app
        .vote(&event.id, &ulid::Ulid::new().to_string(), &voter("a"), true)
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app.vote(&event.id, "nope", &voter("a"), true).await;
    assert_error(r, StatusCode::BAD_REQUEST, "bad_request").await;
    let path = format!("/api/events/{}/questions/{qid}/vote", event.id);
    for body in [r#"{"up":"yes"}"#, r#"{}"#, "not json", r#"{"up":true"#] {
        let r = app
            .put(&path)
            .header("x-voter", voter("a"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_error(r, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    let r = app
        .put(&path)
        .header("x-voter", "short")
        .json(&json!({"up": true}))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "bad_request").await;
    // A question id from another event is unknown here.
    let other = app.create_event("Other").await;
    let r = app.vote(&other.id, &qid, &voter("a"), true).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    // None of this left a vote anywhere.
    let view = app
        .wait_for_guest(&event.id, |v| votes_of(v, &qid).is_some())
        .await;
    assert_eq!(votes_of(&view, &qid), Some(0));
}

#[tokio::test]
async fn a_flood_of_asks_from_one_voter_is_rate_limited_and_changes_nothing() {
    let app = spawn_app().await;
    let event = app.create_event("Flood").await;
    let mut limited = None;
    for i in 0..8 {
        let r = app
            .post_question(
                &event.id,
                &voter("flooder"),
                json!({"text": format!("spam {i}")}),
            )
            .await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((i, r));
            break;
        }
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let (at, r) = limited.expect("the flood was never limited");
    assert_eq!(at, 5, "five asks pass, the sixth is limited");
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&wait), "{wait}");
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Another voter is not affected, and the refused question was not stored.
    let r = app
        .post_question(
            &event.id,
            &voter("someone-else"),
            json!({"text": "my turn"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let view = app
        .wait_for_guest(&event.id, |v| ids(v, "questions").len() == 6)
        .await;
    assert!(!view.to_string().contains("spam 5"));
}

#[tokio::test]
async fn a_malformed_voter_cookie_gets_a_fresh_identity_not_an_error() {
    let app = spawn_app().await;
    let event = app.create_event("Cookies").await;
    let qid = app.ask(&event.id, "cookie jar").await;
    let path = format!("/api/events/{}/questions/{qid}/vote", event.id);
    for cookie in [
        "openfloor_voter=short",
        "openfloor_voter=has spaces and more",
        "openfloor_voter=",
        "garbage",
        "openfloor_voter=é-not-ascii-at-all-really",
    ] {
        let r = app
            .put(&path)
            .header("cookie", cookie)
            .json(&json!({"up": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED, "{cookie}");
        assert!(
            r.headers()["set-cookie"]
                .to_str()
                .unwrap()
                .starts_with("openfloor_voter="),
            "{cookie}"
        );
    }
    // Each got its own fresh identity, so each vote counted.
    app.wait_for_guest(&event.id, |v| votes_of(v, &qid) == Some(5))
        .await;
}
