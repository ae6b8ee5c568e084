//! The operator commands, run as a person would: on the data directory of
//! a real server that hosted an event.

use std::process::Output;

use openfloor_testing::api::ApiClient;
use openfloor_testing::process::{self, Server};
use serde_json::{json, Value};

/// The binary under test.
const OPENFLOOR: &str = env!("CARGO_BIN_EXE_openfloor");

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
async fn host_an_event(data: &std::path::Path) -> (String, String, Value) {
    let server = Server::start(OPENFLOOR, data, &[]);
    let api = ApiClient::new(&server.base);
    let event = api.create_event("Audit me").await;
    let eid = &event.id;
    let q1 = api.ask_as(eid, TOKENS[0], "teh typo").await;
    let q2 = api.ask_as(eid, TOKENS[1], "second").await;
    for token in TOKENS {
        api.vote(eid, &q1, token, true).await;
    }
    api.vote(eid, &q1, TOKENS[2], false).await;
    for (path, body) in [
        (format!("/questions/{q1}/text"), json!({"text": "the typo"})),
        (format!("/questions/{q2}/hidden"), json!({"value": true})),
        (format!("/questions/{q2}/hidden"), json!({"value": false})),
        (format!("/questions/{q1}/answered"), json!({"value": true})),
    ] {
        api.host_put(&event, &path, body).await;
    }
    // Wait for the projector, then keep the guest view as served.
    let guest = api
        .wait_for_guest(eid, |v| {
            let served = v.to_string();
            served.contains(r#""answered":[{"#)
                && served.contains("the typo")
                && served.contains(r#""votes":2"#)
        })
        .await;
    drop(server);
    (event.id, event.secret, guest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_shows_from_and_to_and_never_a_token_secret_or_address() {
    let data = tempfile::tempdir().unwrap();
    let (eid, secret, _) = host_an_event(data.path()).await;
    let out = text(&process::run(
        OPENFLOOR,
        data.path(),
        &["audit", &eid],
        None,
    ));
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
    let json = text(&process::run(
        OPENFLOOR,
        data.path(),
        &["audit", &eid, "--json"],
        None,
    ));
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

    let replayed: Value = serde_json::from_str(&text(&process::run(
        OPENFLOOR,
        data.path(),
        &["replay", &eid],
        None,
    )))
    .unwrap();
    assert_eq!(replayed["guest"], served, "replay equals the live view");
    let before: Value = serde_json::from_str(&text(&process::run(
        OPENFLOOR,
        data.path(),
        &["replay", &eid, "--at", "2020-01-01T00:00:00Z"],
        None,
    )))
    .unwrap();
    assert_eq!(before["guest"]["questions"], json!([]));

    let verified = text(&process::run(
        OPENFLOOR,
        data.path(),
        &["verify", "--all"],
        None,
    ));
    assert!(verified.contains(&format!("{eid}: ok")), "{verified}");

    let export = process::run(OPENFLOOR, data.path(), &["export", &eid], None).stdout;
    assert!(text(&process::run(
        OPENFLOOR,
        data.path(),
        &["check-export", "-"],
        Some(&export)
    ))
    .contains("hash chain intact"));
    let elsewhere = tempfile::tempdir().unwrap();
    let imported = text(&process::run(
        OPENFLOOR,
        elsewhere.path(),
        &["import"],
        Some(&export),
    ));
    assert!(imported.contains("event created"), "{imported}");
    let again = text(&process::run(
        OPENFLOOR,
        elsewhere.path(),
        &["import"],
        Some(&export),
    ));
    assert!(again.contains("(0 new)"), "{again}");
    assert_eq!(
        text(&process::run(
            OPENFLOOR,
            elsewhere.path(),
            &["replay", &eid],
            None
        )),
        text(&process::run(
            OPENFLOOR,
            data.path(),
            &["replay", &eid],
            None
        ))
    );
    assert!(text(&process::run(
        OPENFLOOR,
        elsewhere.path(),
        &["verify", &eid],
        None
    ))
    .contains("ok"));

    let mut damaged = export.clone();
    let at = damaged.windows(8).position(|w| w == b"the typo").unwrap();
    damaged[at] = b'T';
    let refused = process::run(
        OPENFLOOR,
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

    // Signed with the operator's key; checked and imported only against it.
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("operator.key");
    let key_arg = key_file.to_str().unwrap();
    let public = text(&process::run(
        OPENFLOOR,
        data.path(),
        &["new-signing-key", key_arg],
        None,
    ));
    let public = public.trim();
    assert_eq!(public.len(), 64, "{public}");
    let again = process::run(OPENFLOOR, data.path(), &["new-signing-key", key_arg], None);
    assert!(!again.status.success(), "an existing key is never replaced");
    let signed = process::run(
        OPENFLOOR,
        data.path(),
        &["export", &eid, "--signing-key", key_arg],
        None,
    )
    .stdout;
    let checked = text(&process::run(
        OPENFLOOR,
        data.path(),
        &["check-export", "-", "--public-key", public],
        Some(&signed),
    ));
    assert!(checked.contains("signed by the trusted key"), "{checked}");
    let unsigned = text(&process::run(
        OPENFLOOR,
        data.path(),
        &["check-export", "-"],
        Some(&export),
    ));
    assert!(unsigned.contains("unsigned"), "{unsigned}");
    let refused = process::run(
        OPENFLOOR,
        tempfile::tempdir().unwrap().path(),
        &["import", "--public-key", public],
        Some(&export),
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not signed"));

    let unknown = process::run(
        OPENFLOOR,
        data.path(),
        &["replay", &ulid::Ulid::new().to_string()],
        None,
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no event"));
}

/// The stderr of a command that must have failed.
fn refusal(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "should have been refused: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One writing process per data directory: a second server and the
/// writing operator commands are refused beside a running server, with the
/// reason; the reading commands run beside it; once it stops, the writing
/// commands run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beside_a_running_server_only_the_reading_commands_run() {
    let data = tempfile::tempdir().unwrap();
    let (eid, _, _) = host_an_event(data.path()).await;
    let export = text(&process::run(
        OPENFLOOR,
        data.path(),
        &["export", &eid],
        None,
    ));
    let elsewhere = tempfile::tempdir().unwrap();
    let server = Server::start(OPENFLOOR, elsewhere.path(), &[]);

    let second = refusal(&process::run(
        OPENFLOOR,
        elsewhere.path(),
        &["--listen", "127.0.0.1:0"],
        None,
    ));
    assert!(second.contains("openfloor.lock"), "{second}");
    for writing in [
        vec!["import"],
        vec!["verify", "--all", "--repair"],
        vec!["purge-expired"],
    ] {
        let refused = refusal(&process::run(
            OPENFLOOR,
            elsewhere.path(),
            &writing,
            Some(export.as_bytes()),
        ));
        assert!(
            refused.contains("another openfloor process is writing"),
            "{writing:?}: {refused}"
        );
    }
    // Nothing was imported: the running server does not know the event.
    let api = ApiClient::new(&server.base);
    let r = api.get(&format!("/api/events/{eid}")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // Reading commands run beside the server.
    let verified = text(&process::run(
        OPENFLOOR,
        elsewhere.path(),
        &["verify", "--all"],
        None,
    ));
    assert!(verified.contains("0 events verified"), "{verified}");

    drop(server);
    let imported = text(&process::run(
        OPENFLOOR,
        elsewhere.path(),
        &["import"],
        Some(export.as_bytes()),
    ));
    assert!(imported.contains("event created"), "{imported}");
}

/// A mistyped --data: the commands that need a store say so and create
/// nothing, instead of reporting "0 events verified" on a new empty one.
#[test]
fn a_directory_without_a_store_is_refused_and_left_as_it_was() {
    let parent = tempfile::tempdir().unwrap();
    let typo = parent.path().join("openfloor-dta");
    for command in [
        vec!["verify", "--all"],
        vec!["verify", "--all", "--repair"],
        vec!["purge-expired"],
        vec!["replay", "01JD0000000000000000000001"],
    ] {
        let refused = refusal(&process::run(OPENFLOOR, &typo, &command, None));
        assert!(
            refused.contains("holds no openfloor store"),
            "{command:?}: {refused}"
        );
        assert!(!typo.exists(), "{command:?} created {}", typo.display());
    }
}

/// The database file inside a data directory.
fn database(data: &std::path::Path) -> std::path::PathBuf {
    data.join("openfloor.sqlite3")
}

/// Two events hosted through HTTP; the newest record of the first is then
/// overwritten with bytes that are not a record (a failing disk, a stray
/// tool). Returns the damaged event, its damaged record's key, and the
/// intact event.
async fn two_events_one_damaged(data: &std::path::Path) -> (String, String, String) {
    let (damaged, _, _) = host_an_event(data).await;
    let (intact, _, _) = host_an_event(data).await;
    let conn = rusqlite::Connection::open(database(data)).unwrap();
    let key: String = conn
        .query_row(
            "UPDATE records SET body = '{\"kind\": \"ans' WHERE event = ?1 AND seq = \
             (SELECT MAX(seq) FROM records WHERE event = ?1) RETURNING key",
            [&damaged],
            |r| r.get(0),
        )
        .unwrap();
    (damaged, key, intact)
}

/// `verify --all` names each damaged event and its bad record, verifies
/// the others, and fails at the end with a summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_all_names_a_damaged_record_and_goes_on() {
    let data = tempfile::tempdir().unwrap();
    let (damaged, key, intact) = two_events_one_damaged(data.path()).await;
    let out = process::run(OPENFLOOR, data.path(), &["verify", "--all"], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{damaged}: DAMAGED")) && stdout.contains(&key),
        "the event and its record are named: {stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("{intact}: ok")),
        "the other event is verified: {stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("2 events verified") && stdout.contains("1 damaged"),
        "{stdout}"
    );

    // A damaged directory entry leaves its event out of the listing, and
    // verify names it too.
    let conn = rusqlite::Connection::open(database(data.path())).unwrap();
    conn.execute(
        "UPDATE events SET meta = '{not json' WHERE id = ?1",
        [intact.to_string()],
    )
    .unwrap();
    drop(conn);
    let out = process::run(OPENFLOOR, data.path(), &["verify", "--all"], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("{intact}: DAMAGED: its directory entry")),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 events verified") && stdout.contains("2 damaged"),
        "{stdout}"
    );
}

/// A server over a damaged record keeps serving, its event included, and
/// says so: `/healthz` answers 200 "degraded" naming the event, and
/// `/metrics` counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_over_a_damaged_record_serves_and_says_degraded() {
    let data = tempfile::tempdir().unwrap();
    let (damaged, _, intact) = two_events_one_damaged(data.path()).await;
    let server = Server::start(OPENFLOOR, data.path(), &[]);
    let api = ApiClient::new(&server.base);
    // The damaged event takes new questions, and its view shows them.
    api.ask(&damaged, "after the damage").await;
    api.wait_for_guest(&damaged, |v| v.to_string().contains("after the damage"))
        .await;
    assert_eq!(
        api.get(&format!("/api/events/{intact}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let health = api.get("/healthz").send().await.unwrap();
    assert_eq!(health.status(), 200, "one damaged event is no outage");
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["damaged_events"], json!([damaged]), "{health}");
    let metrics = api
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l == "openfloor_damaged_events 1"),
        "{metrics}"
    );
}

/// Runs the server over `data` expecting it to refuse to start: returns
/// what it wrote to stderr. A server still running after a while started
/// where it should not have; it is killed and the test fails.
fn refused_start(data: &std::path::Path, extra: &[&str]) -> String {
    let mut child = std::process::Command::new(OPENFLOOR)
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(extra)
        .env("OPENFLOOR_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the server starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server started on {}", data.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A data directory whose database is gone (deleted, a volume not
/// mounted in its place) is not a new store: the server refuses to start
/// and names the ways out; told to, it starts a new, empty store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_that_lost_its_database_is_refused_unless_told() {
    let data = tempfile::tempdir().unwrap();
    let (eid, _, _) = host_an_event(data.path()).await;
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("openfloor.sqlite3{suffix}");
        let _ = std::fs::remove_file(data.path().join(file));
    }
    let refused = refused_start(data.path(), &[]);
    assert!(
        refused.contains("openfloor.sqlite3")
            && refused.contains("Restore")
            && refused.contains("--accept-lost-data"),
        "{refused}"
    );
    assert!(!database(data.path()).exists(), "nothing was created");

    let server = Server::start(OPENFLOOR, data.path(), &["--accept-lost-data"]);
    let api = ApiClient::new(&server.base);
    let r = api.get(&format!("/api/events/{eid}")).send().await.unwrap();
    assert_eq!(r.status(), 404, "a new, empty store");
}

/// A database whose pages are damaged fails SQLite's quick integrity
/// check, and the server refuses to start on it, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_failing_its_integrity_check_is_refused() {
    let data = tempfile::tempdir().unwrap();
    host_an_event(data.path()).await;
    // Every page in the database file itself, then the records' first page
    // overwritten with a page type SQLite does not have.
    openfloor_testing::damage::damage_the_records_root_page(&database(data.path()));

    let refused = refused_start(data.path(), &[]);
    assert!(refused.contains("integrity check"), "{refused}");
}
