use reqwest::StatusCode;
use serde_json::{json, Value};

use openfloor_testing::api::{assert_error, ids, voter, votes_of};

use crate::helpers::spawn_app;

#[tokio::test]
async fn host_routes_need_the_events_own_secret() {
    let app = spawn_app().await;
    let a = app.create_event("A").await;
    let b = app.create_event("B").await;
    let qb = app.ask(&b.id, "B's question").await;
    let host_view = |eid: String, secret: Option<String>| {
        let mut req = app.get(&format!("/api/events/{eid}/host/questions"));
        if let Some(s) = secret {
            req = req.bearer_auth(s);
        }
        req.send()
    };
    for secret in [
        None,
        Some("wrong".to_owned()),
        Some(a.secret.clone()),
        Some(String::new()),
    ] {
        let r = host_view(b.id.clone(), secret).await.unwrap();
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    // A's secret cannot change B.
    for (path, body) in [
        (format!("/questions/{qb}/hidden"), json!({"value": true})),
        (format!("/questions/{qb}/answered"), json!({"value": true})),
        (format!("/questions/{qb}/text"), json!({"text": "hijacked"})),
        ("/open".to_owned(), json!({"value": false})),
    ] {
        let r = app.host_put_with(&b.id, &a.secret, &path, body).await;
        assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let r = app.records(&b.id, &a.secret, "").await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let view = app
        .wait_for_host(&b, |v| !ids(v, "questions").is_empty())
        .await;
    assert_eq!(view["questions"][0]["text"], "B's question");
    assert_eq!(view["questions"][0]["hidden"], false);
    assert_eq!(view["event"]["open"], true);
}

#[tokio::test]
async fn hiding_removes_a_question_from_guests_and_blocks_votes() {
    let app = spawn_app().await;
    let event = app.create_event("Hide").await;
    let keep = app.ask(&event.id, "keep").await;
    let hide = app.ask(&event.id, "hide me").await;
    let r = app
        .host_put(
            &event,
            &format!("/questions/{hide}/hidden"),
            json!({"value": true}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let guest = app
        .wait_for_guest(&event.id, |v| ids(v, "questions") == [keep.clone()])
        .await;
    assert!(!guest.to_string().contains("hide me"));
    let host = app
        .wait_for_host(&event, |v| ids(v, "questions").len() == 2)
        .await;
    let hidden: Vec<_> = host["questions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["hidden"] == true)
        .collect();
    assert_eq!(hidden.len(), 1);
    assert_eq!(hidden[0]["id"], hide.as_str());
    let r = app.vote(&event.id, &hide, &voter("a"), true).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    // Unhiding brings it back.
    app.host_put(
        &event,
        &format!("/questions/{hide}/hidden"),
        json!({"value": false}),
    )
    .await;
    app.wait_for_guest(&event.id, |v| ids(v, "questions").len() == 2)
        .await;
    assert_eq!(
        app.vote(&event.id, &hide, &voter("a"), true).await.status(),
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn answered_questions_move_to_the_answered_list_latest_first() {
    let app = spawn_app().await;
    let event = app.create_event("Answer").await;
    let q1 = app.ask(&event.id, "one").await;
    let q2 = app.ask(&event.id, "two").await;
    let q3 = app.ask(&event.id, "three").await;
    app.vote(&event.id, &q1, &voter("a"), true).await;
    for q in [&q1, &q2] {
        let r = app
            .host_put(
                &event,
                &format!("/questions/{q}/answered"),
                json!({"value": true}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let view = app
        .wait_for_guest(&event.id, |v| ids(v, "answered").len() == 2)
        .await;
    assert_eq!(ids(&view, "answered"), [q2.clone(), q1.clone()]);
    assert_eq!(ids(&view, "questions"), [q3]);
    assert!(
        view["answered"][0]["answered_at"].as_u64().unwrap()
            >= view["answered"][1]["answered_at"].as_u64().unwrap()
    );
    assert_eq!(votes_of(&view, &q1), Some(1));
    // Setting the same value again writes nothing new.
    let before = app
        .host_put(
            &event,
            &format!("/questions/{q2}/answered"),
            json!({"value": true}),
        )
        .await;
    let before: Value = before.json().await.unwrap();
    let again: Value = app
        .host_put(
            &event,
            &format!("/questions/{q2}/answered"),
            json!({"value": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before["record"], again["record"]);
}

#[tokio::test]
async fn the_host_can_correct_a_questions_text() {
    let app = spawn_app().await;
    let event = app.create_event("Fix").await;
    let q = app.ask(&event.id, "teh typo").await;
    let r = app
        .host_put(
            &event,
            &format!("/questions/{q}/text"),
            json!({"text": "the typo"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    app.wait_for_guest(&event.id, |v| v["questions"][0]["text"] == "the typo")
        .await;
    let r = app
        .host_put(&event, &format!("/questions/{q}/text"), json!({"text": ""}))
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    let r = app
        .host_put(
            &event,
            &format!("/questions/{}/text", ulid::Ulid::new()),
            json!({"text": "x"}),
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn a_closed_event_refuses_new_questions_until_reopened() {
    let app = spawn_app().await;
    let event = app.create_event("Close").await;
    let asked_before = ulid::Ulid::new().to_string();
    let r = app
        .post_question(
            &event.id,
            &voter("a"),
            json!({"id": asked_before, "text": "early"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        app.host_put(&event, "/open", json!({"value": false}))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let r = app
        .post_question(&event.id, &voter("a"), json!({"text": "too late"}))
        .await;
    assert_error(r, StatusCode::CONFLICT, "event_closed").await;
    // A retry of a question acknowledged before closing still answers the same.
    let r = app
        .post_question(
            &event.id,
            &voter("a"),
            json!({"id": asked_before, "text": "early"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let info: Value = app
        .get(&format!("/api/events/{}", event.id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["open"], false);
    app.wait_for_guest(&event.id, |v| v["event"]["open"] == false)
        .await;
    app.host_put(&event, "/open", json!({"value": true})).await;
    let r = app
        .post_question(&event.id, &voter("a"), json!({"text": "welcome back"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn records_export_as_ndjson_in_record_id_order_with_paging() {
    let app = spawn_app().await;
    let event = app.create_event("Export").await;
    let q = app.ask(&event.id, "export me").await;
    for v in ["a", "b", "c"] {
        app.vote(&event.id, &q, &voter(v), true).await;
    }
    let get = async |query: &str| app.records(&event.id, &event.secret, query).await;
    let r = get("").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 5, "created, asked, three votes");
    assert_eq!(records[0]["kind"], "event_created");
    let ids: Vec<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert!(!text.contains("voter-"), "tokens never appear in records");

    let page: Vec<Value> = get(&format!("?after={}&limit=2", ids[1]))
        .await
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        page.iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ids[2..4]
    );
    for query in ["?limit=0", "?limit=x", "?limit=100000", "?after=bad"] {
        assert_error(get(query).await, StatusCode::BAD_REQUEST, "bad_request").await;
    }
}

/// The host's view says how long ago the projector made it, by the
/// server's clock, on a `304` as on a `200`; a guest's view does not (a
/// CDN may keep it, and the figure would go stale there).
#[tokio::test]
async fn the_host_view_says_how_fresh_it_is() {
    let app = spawn_app().await;
    let event = app.create_event("Fresh").await;
    let q = app.ask(&event.id, "How fresh is the board?").await;
    app.wait_for_guest(&event.id, |v| v["questions"][0]["id"] == q.as_str())
        .await;
    let url = format!("/api/events/{}/host/questions", event.id);
    let age_of = |r: &reqwest::Response| -> u64 {
        r.headers()["x-view-age-ms"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let first = app
        .get(&url)
        .bearer_auth(&event.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let age = age_of(&first);
    assert!(age < 60_000, "a view projected just now is {age} ms old");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();

    // Time passes, nothing changes: the same view, older.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let again = app
        .get(&url)
        .bearer_auth(&event.secret)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(
        age_of(&again) >= age + 300,
        "{} after {age}",
        age_of(&again)
    );

    let guest = app
        .get(&format!("/api/events/{}/questions", event.id))
        .send()
        .await
        .unwrap();
    assert!(guest.headers().get("x-view-age-ms").is_none());
}
