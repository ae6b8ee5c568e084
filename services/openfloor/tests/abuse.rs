//! A bounded abuse test of the real binary: one client floods event
//! creation, questions and votes (a new voter token for every request),
//! each a fixed number of requests (a few seconds here), then holds
//! hundreds of idle connections. The
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

/// What a flood got: requests accepted and refused, and how long it took
/// (the quotas refill with time).
struct Flooded {
    accepted: usize,
    limited: usize,
    seconds: u64,
}

/// Sends `requests` requests `request(i)` from [`WORKERS`] tasks; counts
/// the answers by status, failing on any that is neither success nor `429`.
async fn flood(
    requests: usize,
    request: impl Fn(usize) -> RequestBuilder + Send + Sync + 'static,
) -> Flooded {
    let started = Instant::now();
    let request = Arc::new(request);
    let (accepted, limited, sent) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (request, accepted, limited, sent) = (
            request.clone(),
            accepted.clone(),
            limited.clone(),
            sent.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = sent.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
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
    Flooded {
        accepted: accepted.load(Ordering::Relaxed),
        limited: limited.load(Ordering::Relaxed),
        // Rounded up: a begun second may have refilled a quota.
        seconds: started.elapsed().as_secs() + 1,
    }
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
    let events = flood(200, move |_| {
        flooder
            .post("/api/events")
            .header("x-forwarded-for", FLOODER)
            .json(&json!({"title": "Spam"}))
    })
    .await;
    guest_is_served(&api, &eid, 1).await;

    let (flooder, in_event) = (api.clone(), eid.clone());
    let asks = flood(400, move |i| {
        flooder
            .post(&format!("/api/events/{in_event}/questions"))
            .header("x-forwarded-for", FLOODER)
            .header("x-voter", voter(&format!("asker{i}")))
            .json(&json!({"text": "x".repeat(1_000)}))
    })
    .await;
    guest_is_served(&api, &eid, 2).await;

    let (flooder, in_event, on) = (api.clone(), eid.clone(), target.clone());
    let votes = flood(1_000, move |i| {
        flooder
            .vote_request(&in_event, &on, &voter(&format!("voter{i}")), true)
            .header("x-forwarded-for", FLOODER)
    })
    .await;
    guest_is_served(&api, &eid, 3).await;

    // Held to the quotas (API.md), with what they refilled meanwhile:
    // events 20 at once then one a minute; questions 60 then one a second;
    // new voters 300 then five a second (the askers were new voters too,
    // and so was the one who asked the target question).
    eprintln!(
        "flood: {} of 200 events ({} s), {} of 400 questions ({} s), \
         {} of 1,000 votes ({} s) accepted",
        events.accepted, events.seconds, asks.accepted, asks.seconds, votes.accepted, votes.seconds
    );
    assert!(events.accepted as u64 <= 20 + events.seconds / 60 + 1);
    assert!(asks.accepted as u64 <= 60 + asks.seconds);
    let new_voters = (1 + asks.accepted + votes.accepted) as u64;
    let seconds = events.seconds + asks.seconds + votes.seconds;
    assert!(
        new_voters <= 300 + 5 * (seconds + 2),
        "{new_voters} new voters"
    );
    assert!(events.limited > 0 && asks.limited > 0 && votes.limited > 0);

    // Idle connections: four times the connection limit, sending nothing.
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..256 {
        idle.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    // A new connection, behind them in the accept queue, is served once
    // idle ones time out (--header-timeout 2s): a generous bound, not a
    // measure of speed.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let health = tokio::time::timeout(
        Duration::from_secs(30),
        fresh.get(api.url("/healthz")).send(),
    )
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
