//! The operator commands, run as a person would: on the data directory of
//! a real server that hosted an event.

mod support;

use std::process::Output;

use serde_json::{json, Value};
use support::{ask, create_event, openfloor, start};

fn text(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

const TOKENS: [&str; 3] = [
    "alpha-token-0000000001",
    "bravo-token-0000000002",
    "charlie-token-000000003",
];

/// Hosts a small event through HTTP and stops the server; returns the
/// event id, the host secret and the guest view as served.
async fn host_an_event(data: &std::path::Path) -> (String, String, String) {
    let server = start(data);
    let c = reqwest::Client::new();
    let base = &server.base;
    let (eid, secret, _) = create_event(&c, base, "Audit me").await;
    let q1 = ask(&c, base, &eid, TOKENS[0], "teh typo").await;
    let q2 = ask(&c, base, &eid, TOKENS[1], "second").await;
    for token in TOKENS {
        c.put(format!("{base}/api/events/{eid}/questions/{q1}/vote"))
            .header("x-voter", token)
            .json(&json!({"up": true}))
            .send()
            .await
            .unwrap();
    }
    c.put(format!("{base}/api/events/{eid}/questions/{q1}/vote"))
        .header("x-voter", TOKENS[2])
        .json(&json!({"up": false}))
        .send()
        .await
        .unwrap();
    let host = |path: String, body: Value| {
        c.put(format!("{base}/api/events/{eid}{path}"))
            .bearer_auth(&secret)
            .json(&body)
            .send()
    };
    host(format!("/questions/{q1}/text"), json!({"text": "the typo"}))
        .await
        .unwrap();
    host(format!("/questions/{q2}/hidden"), json!({"value": true}))
        .await
        .unwrap();
    host(format!("/questions/{q2}/hidden"), json!({"value": false}))
        .await
        .unwrap();
    host(format!("/questions/{q1}/answered"), json!({"value": true}))
        .await
        .unwrap();
    // Wait for the projector, then keep the guest view as served.
    let mut guest = String::new();
    for _ in 0..200 {
        guest = c
            .get(format!("{base}/api/events/{eid}/questions"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if guest.contains(r#""answered":[{"#)
            && guest.contains("the typo")
            && guest.contains(r#""votes":2"#)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(server);
    (eid, secret, guest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_shows_from_and_to_and_never_a_token_secret_or_address() {
    let data = tempfile::tempdir().unwrap();
    let (eid, secret, _) = host_an_event(data.path()).await;
    let out = text(&openfloor(data.path(), &["audit", &eid], None));
    assert!(
        out.contains(r#"text_corrected"#) && out.contains(r#""teh typo" -> "the typo""#),
        "{out}"
    );
    assert!(
        out.contains("hidden") && out.contains("false -> true") && out.contains("true -> false"),
        "{out}"
    );
    assert!(out.contains("withdraw_vote"), "{out}");
    assert!(
        out.contains(": 2 now"),
        "vote timeline ends at two votes: {out}"
    );
    let json = text(&openfloor(data.path(), &["audit", &eid, "--json"], None));
    let lines: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let hides: Vec<&Value> = lines.iter().filter(|l| l["action"] == "hidden").collect();
    assert_eq!(
        (hides[0]["from"].clone(), hides[0]["to"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(
        (hides[1]["from"].clone(), hides[1]["to"].clone()),
        (json!(true), json!(false))
    );
    for output in [&out, &json] {
        for token in TOKENS {
            assert!(!output.contains(token), "a voter token leaked");
        }
        assert!(!output.contains(&secret), "the host secret leaked");
        assert!(!output.contains("127.0.0.1"), "a client address leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_verify_export_and_import_from_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let (eid, _, served) = host_an_event(data.path()).await;

    let replayed: Value =
        serde_json::from_str(&text(&openfloor(data.path(), &["replay", &eid], None))).unwrap();
    assert_eq!(
        replayed["guest"],
        serde_json::from_str::<Value>(&served).unwrap(),
        "replay equals the live view"
    );
    let before: Value = serde_json::from_str(&text(&openfloor(
        data.path(),
        &["replay", &eid, "--at", "2020-01-01T00:00:00Z"],
        None,
    )))
    .unwrap();
    assert_eq!(before["guest"]["questions"], json!([]));

    let verified = text(&openfloor(data.path(), &["verify", "--all"], None));
    assert!(verified.contains(&format!("{eid}: ok")), "{verified}");

    let export = openfloor(data.path(), &["export", &eid], None).stdout;
    assert!(text(&openfloor(
        data.path(),
        &["check-export", "-"],
        Some(&export)
    ))
    .contains("hash chain intact"));
    let elsewhere = tempfile::tempdir().unwrap();
    let imported = text(&openfloor(elsewhere.path(), &["import"], Some(&export)));
    assert!(imported.contains("event created"), "{imported}");
    let again = text(&openfloor(elsewhere.path(), &["import"], Some(&export)));
    assert!(again.contains("(0 new)"), "{again}");
    assert_eq!(
        text(&openfloor(elsewhere.path(), &["replay", &eid], None)),
        text(&openfloor(data.path(), &["replay", &eid], None))
    );
    assert!(text(&openfloor(elsewhere.path(), &["verify", &eid], None)).contains("ok"));

    let mut damaged = export.clone();
    let at = damaged.windows(8).position(|w| w == b"the typo").unwrap();
    damaged[at] = b'T';
    let refused = openfloor(
        tempfile::tempdir().unwrap().path(),
        &["import"],
        Some(&damaged),
    );
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("line ") && message.contains("was changed"),
        "{message}"
    );

    let unknown = openfloor(
        data.path(),
        &["replay", &ulid::Ulid::new().to_string()],
        None,
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no event"));
}
