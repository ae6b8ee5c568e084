//! Limits that hold a script, not a room: per client address across voter
//! tokens, behind proxies by the address no client wrote, and a cap on the
//! questions of one event.

use reqwest::StatusCode;
use serde_json::{json, Value};

use openfloor_testing::api::{assert_error, voter};

use crate::helpers::{spawn_app, spawn_app_with};

/// Statuses of `votes` votes on one question, each by a new voter token;
/// a refusal must say when to try again.
async fn votes_by_new_voters(
    app: &openfloor_testing::api::ApiClient,
    eid: &str,
    qid: &str,
    votes: usize,
) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for i in 0..votes {
        let request = app.vote_request(eid, qid, &voter(&format!("script{i}")), true);
        let r = request.send().await.unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers().contains_key("retry-after"));
        }
        statuses.push(r.status());
    }
    statuses
}

#[tokio::test]
async fn a_new_voter_token_per_vote_does_not_escape_the_address_limit() {
    let app = spawn_app().await;
    let event = app.create_event("Scripted").await;
    let qid = app.ask(&event.id, "Vote for me?").await;
    // The default quota: 300 new voters at once from one address, then
    // five a second; the asker was one. 400 in a few seconds cannot all
    // pass.
    let statuses = votes_by_new_voters(&app, &event.id, &qid, 400).await;
    let accepted = statuses
        .iter()
        .filter(|s| **s == StatusCode::ACCEPTED)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(accepted + limited, 400, "{statuses:?}");
    assert!((299..360).contains(&accepted), "{accepted} accepted");
    // The board counts the accepted votes, and only those (the wait fails
    // unless the count is exactly that).
    app.wait_for_guest(&event.id, |v| {
        openfloor_testing::api::votes_of(v, &qid) == Some(accepted as u64)
    })
    .await;
}

#[tokio::test]
async fn events_per_address_are_limited_with_retry_after() {
    let app = spawn_app().await;
    for i in 0..20 {
        app.create_event(&format!("Event {i}")).await;
    }
    let r = app
        .post("/api/events")
        .json(&json!({"title": "One too many"}))
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("retry-after"));
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn behind_a_proxy_the_client_written_forwarded_entries_do_not_count() {
    let app = spawn_app_with(|args| args.trusted_proxies = 1).await;
    let create = |chain: String| {
        app.post("/api/events")
            .header("x-forwarded-for", chain)
            .json(&json!({"title": "Proxied"}))
            .send()
    };
    // The proxy appended 203.0.113.9 each time; the client varied what it
    // wrote before it. Twenty pass, the next is held.
    for i in 0..20 {
        let r = create(format!("10.9.{i}.1, 203.0.113.9")).await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let r = create("10.9.99.1, 203.0.113.9".into()).await.unwrap();
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Another client behind the same proxy is not held.
    let r = create("198.51.100.4".into()).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn an_event_takes_questions_up_to_its_cap_and_retries_still_pass() {
    let app = spawn_app_with(|args| args.max_questions = 3).await;
    let event = app.create_event("Capped").await;
    let mut asked = Vec::new();
    for i in 0..3 {
        let id = app
            .ask_as(
                &event.id,
                &voter(&format!("asker{i}")),
                &format!("Question {i}?"),
            )
            .await;
        asked.push(id);
    }
    // The cap is checked against the projected count.
    app.wait_for_host(&event, |v| {
        v["questions"].as_array().is_some_and(|q| q.len() == 3)
    })
    .await;
    let r = app
        .post_question(&event.id, &voter("asker9"), json!({"text": "A fourth?"}))
        .await;
    assert_error(r, StatusCode::CONFLICT, "question_limit").await;
    // Resending an acknowledged question is not a new one.
    let r = app
        .post_question(
            &event.id,
            &voter("asker2"),
            json!({"id": asked[2], "text": "Question 2?"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // What is stored, not what is projected yet: three questions.
    let r = app.records(&event.id, &event.secret, "").await;
    assert_eq!(r.status(), StatusCode::OK);
    let asked = r
        .text()
        .await
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|record| record["kind"] == "question_asked")
        .count();
    assert_eq!(asked, 3);
}
