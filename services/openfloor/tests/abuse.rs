//! A bounded abuse test of the real binary: one client floods event
//! creation, questions and votes (a new voter token for every request),
//! each for a few seconds, then holds hundreds of idle connections. The
//! server's memory and disk stay bounded, the flood gets `429`s past its
//! quotas, and another client is served throughout.
//!
//! The two clients are told apart as a proxy would tell them: the server
//! trusts one proxy (`--trusted-proxies 1`), and each client's requests
//! carry the address that proxy appended.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openfloor_testing::api::{voter, ApiClient};
use openfloor_testing::process::Server;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::json;

const OPENFLOOR: &str = env!("CARGO_BIN_EXE_openfloor");

/// The flooding client's address, as the trusted proxy appends it.
const FLOODER: &str = "203.0.113.66";
/// A guest elsewhere, served while the flood goes on.
const GUEST: &str = "198.51.100.7";
/// How long each flood lasts.
const FLOOD: Duration = Duration::from_secs(3);
/// Requests in flight at once during a flood.
const WORKERS: usize = 8;

/// The server's resident memory, in bytes (Linux).
fn rss(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
        .expect("the server's /proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

/// Bytes under `dir`.
fn disk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                disk(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

/// Sends `request(i)` from [`WORKERS`] tasks for [`FLOOD`]; counts the
/// answers by status, failing on any that is neither success nor `429`.
async fn flood(
    request: impl Fn(usize) -> RequestBuilder + Send + Sync + 'static,
) -> (usize, usize) {
    let request = Arc::new(request);
    let (accepted, limited, sent) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let until = Instant::now() + FLOOD;
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (request, accepted, limited, sent) = (
            request.clone(),
            accepted.clone(),
            limited.clone(),
            sent.clone(),
        );
        workers.push(tokio::spawn(async move {
            while Instant::now() < until {
                let i = sent.fetch_add(1, Ordering::Relaxed);
                let status = request(i).send().await.unwrap().status();
                match status {
                    s if s.is_success() => accepted.fetch_add(1, Ordering::Relaxed),
                    StatusCode::TOO_MANY_REQUESTS => limited.fetch_add(1, Ordering::Relaxed),
                    other => panic!("the flood got {other}"),
                };
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    (
        accepted.load(Ordering::Relaxed),
        limited.load(Ordering::Relaxed),
    )
}

/// The guest, elsewhere, asks and votes in `eid` and reads the board.
async fn guest_is_served(api: &ApiClient, eid: &str, round: usize) {
    let token = voter(&format!("guest{round}"));
    let asked = api
        .post(&format!("/api/events/{eid}/questions"))
        .header("x-forwarded-for", GUEST)
        .header("x-voter", &token)
        .json(&json!({"text": format!("A real question, round {round}?")}))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), StatusCode::CREATED);
    let qid = asked.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let voted = api
        .vote_request(eid, &qid, &token, true)
        .header("x-forwarded-for", GUEST)
        .send()
        .await
        .unwrap();
    assert_eq!(voted.status(), StatusCode::ACCEPTED);
    let view = api
        .get(&format!("/api/events/{eid}/questions"))
        .send()
        .await
        .unwrap();
    assert_eq!(view.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_are_held_to_their_quotas_in_bounded_memory_and_disk() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        OPENFLOOR,
        data.path(),
        &[
            "--trusted-proxies",
            "1",
            "--max-connections",
            "64",
            "--header-timeout",
            "2s",
        ],
    );
    let api = ApiClient::new(&server.base);
    let event = api.create_event("Under attack").await;
    let eid = event.id.clone();
    let target = api.ask(&eid, "The question the flood votes on?").await;
    guest_is_served(&api, &eid, 0).await;
    let (rss_before, disk_before) = (rss(&server), disk(data.path()));

    let flooder = api.clone();
    let (created, _) = flood(move |_| {
        flooder
            .post("/api/events")
            .header("x-forwarded-for", FLOODER)
            .json(&json!({"title": "Spam"}))
    })
    .await;
    guest_is_served(&api, &eid, 1).await;

    let (flooder, in_event) = (api.clone(), eid.clone());
    let (asked, _) = flood(move |i| {
        flooder
            .post(&format!("/api/events/{in_event}/questions"))
            .header("x-forwarded-for", FLOODER)
            .header("x-voter", voter(&format!("asker{i}")))
            .json(&json!({"text": "x".repeat(1_000)}))
    })
    .await;
    guest_is_served(&api, &eid, 2).await;

    let (flooder, in_event, on) = (api.clone(), eid.clone(), target.clone());
    let (voted, limited_votes) = flood(move |i| {
        flooder
            .vote_request(&in_event, &on, &voter(&format!("voter{i}")), true)
            .header("x-forwarded-for", FLOODER)
    })
    .await;
    guest_is_served(&api, &eid, 3).await;

    // Held to the quotas (API.md), with a few seconds of refill: events
    // 20 at once then one a minute; questions 60 then one a second; new
    // voters 300 then five a second (the askers were new voters too).
    eprintln!(
        "flood: {created} events, {asked} questions, {voted} votes accepted \
         ({limited_votes} votes refused)"
    );
    assert!(created <= 21, "{created} events created");
    assert!(asked <= 60 + 4, "{asked} questions asked");
    assert!(asked + voted <= 300 + 5 * 12, "{voted} votes by new voters");
    assert!(
        limited_votes > 0,
        "the vote flood was refused at some point"
    );

    // Idle connections: four times the connection limit, sending nothing.
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..256 {
        idle.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    // Served once idle connections time out (--header-timeout 2s), however
    // many wait: a generous bound, not a measure of speed.
    let health = tokio::time::timeout(Duration::from_secs(30), api.get("/healthz").send())
        .await
        .expect("served despite idle connections")
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    guest_is_served(&api, &eid, 4).await;
    drop(idle);

    let (rss_after, disk_after) = (rss(&server), disk(data.path()));
    eprintln!(
        "memory {} → {} MB; data directory {} → {} KB",
        rss_before >> 20,
        rss_after >> 20,
        disk_before >> 10,
        disk_after >> 10
    );
    // What was accepted is small (≤ 21 events, 64 questions of 1 KB, 360
    // votes); the store's write-ahead log may hold up to 4 MB before a
    // checkpoint.
    assert!(
        disk_after - disk_before < 8 << 20,
        "the data directory grew by {} KB",
        (disk_after - disk_before) >> 10
    );
    assert!(
        rss_after.saturating_sub(rss_before) < 64 << 20,
        "memory grew by {} MB",
        (rss_after - rss_before) >> 20
    );
}
