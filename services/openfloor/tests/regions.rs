//! Two regions on one machine (DESIGN.md, "Regions"): two `openfloor`
//! processes on the AWS backend, eu-west-1 and us-east-1 of one moto server
//! (moto keeps regions apart by signing region), the directory replicated
//! between them by the test replicator, and the local edge in front as the
//! one address browsers use. Everything a guest or host does goes through
//! the edge, as it would through the CDN.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use openfloor_aws::{Aws, AwsSettings};
use openfloor_regions::edge::{self, EdgeRoutes};
use openfloor_regions::replicator::Replicator;
use openfloor_testing::aws as stand_in;
use openfloor_testing::process::Server;
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const OPENFLOOR: &str = env!("CARGO_BIN_EXE_openfloor");
const A: &str = "eu-west-1";
const B: &str = "us-east-1";

/// The two regions, the replicator and the edge; dropped, all stop.
struct TwoRegions {
    /// The one address (the edge's base URL).
    edge: String,
    replicator: Arc<Replicator>,
    settings: BTreeMap<&'static str, AwsSettings>,
    _servers: Vec<Server>,
    _data: tempfile::TempDir,
    stop: CancellationToken,
}

impl Drop for TwoRegions {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn two_regions(endpoint: &str) -> TwoRegions {
    // Fresh table names shared by both regions (each region has its own
    // tables of those names, as each AWS region would).
    let names = stand_in::fresh_settings(endpoint);
    let data = tempfile::tempdir().unwrap();
    let mut servers = Vec::new();
    let mut routes = BTreeMap::new();
    let mut settings = BTreeMap::new();
    for region in [A, B] {
        let these = AwsSettings {
            region: region.into(),
            ..names.clone()
        };
        let flags = [
            "--backend=aws".to_owned(),
            "--create-resources".to_owned(),
            format!("--aws-region={region}"),
            format!("--aws-endpoint-url={endpoint}"),
            format!("--events-table={}", these.events_table),
            format!("--records-table={}", these.records_table),
            format!("--views-table={}", these.views_table),
            format!("--queue-name={}", these.queue_name),
            // Bucket names are global: one per region.
            format!(
                "--states-bucket={}-{region}",
                these.states_bucket.as_deref().unwrap()
            ),
            format!("--regions={A},{B}"),
            "--client-salt=two-regions".to_owned(),
        ];
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let server = Server::start(OPENFLOOR, &data.path().join(region), &flags);
        routes.insert(region.to_owned(), server.base.clone());
        servers.push(server);
        settings.insert(region, these);
    }
    let stop = CancellationToken::new();
    let replicator = Arc::new(
        Replicator::connect(Some(endpoint), &[A.into(), B.into()], &names.events_table).await,
    );
    tokio::spawn({
        let (replicator, stop) = (replicator.clone(), stop.clone());
        async move { replicator.run(Duration::from_millis(100), stop).await }
    });
    // Unprefixed paths go to B, so that a host choosing A is sent on.
    let routes = EdgeRoutes::new(routes, B.into()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let edge = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn({
        let stop = stop.clone();
        async move { edge::serve(listener, routes, stop).await }
    });
    TwoRegions {
        edge,
        replicator,
        settings,
        _servers: servers,
        _data: data,
        stop,
    }
}

/// A browser-like client of the edge: follows redirects (same origin, so it
/// keeps its headers) and keeps its voter cookie.
struct Person {
    http: reqwest::Client,
    edge: String,
    cookie: std::sync::Mutex<Option<String>>,
    secret: Option<String>,
}

impl Person {
    fn new(edge: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            edge: edge.to_owned(),
            cookie: std::sync::Mutex::default(),
            secret: None,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self.http.request(method, format!("{}{path}", self.edge));
        if let Some(cookie) = self.cookie.lock().unwrap().clone() {
            request = request.header("cookie", cookie);
        }
        if let Some(secret) = &self.secret {
            request = request.bearer_auth(secret);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        if let Some(set) = response.headers().get("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            *self.cookie.lock().unwrap() = Some(pair);
        }
        response
    }

    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let r = self.send(method, path, body).await;
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Polls `path` until `ok` (or panics after `within`), returning it.
    async fn wait_for(
        &self,
        path: &str,
        within: Duration,
        ok: impl Fn(StatusCode, &Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let (status, body) = self.json(reqwest::Method::GET, path, None).await;
            if ok(status, &body) {
                return body;
            }
            assert!(start.elapsed() < within, "{path}: still {status} {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Every item of `table` in `region` that mentions `event`.
async fn items_of(settings: &AwsSettings, table: &str, event: &str) -> usize {
    let aws = Aws::connect(settings.clone()).await;
    let mut count = 0;
    let mut start = None;
    loop {
        let page = aws
            .dynamo
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        count += page
            .items()
            .iter()
            .filter(|item| {
                item.values()
                    .any(|v| matches!(v, AttributeValue::S(s) if s.contains(event)))
            })
            .count();
        start = page.last_evaluated_key;
        if start.is_none() {
            return count;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_lives_in_one_region_and_anyone_anywhere_joins_it() {
    let Some(endpoint) = stand_in::endpoint() else {
        return;
    };
    let regions = two_regions(&endpoint).await;
    use reqwest::Method;

    // The host creates through the one address, choosing A; the edge sends
    // unprefixed paths to B, which sends the create on to A.
    let host = Person::new(&regions.edge);
    let (status, created) = host
        .json(
            Method::POST,
            "/api/events",
            Some(json!({"title": "Dublin", "region": A})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["region"], A);
    let eid = created["id"].as_str().unwrap().to_owned();
    let guest_url = created["guest_url"].as_str().unwrap();
    assert_eq!(guest_url, format!("/r/{A}/event/{eid}"));
    let host = Person {
        secret: Some(created["secret"].as_str().unwrap().to_owned()),
        ..host
    };

    // A host who names no region gets the one nearest them, whichever
    // region the create reaches first: New York reaching A goes to B, and
    // Dublin reaching B goes to A.
    for (reaches, latitude, longitude, home) in
        [(A, "40.71", "-74.01", B), (B, "53.35", "-6.26", A)]
    {
        let r = host
            .http
            .post(format!("{}/r/{reaches}/api/events", regions.edge))
            .header("cloudfront-viewer-latitude", latitude)
            .header("cloudfront-viewer-longitude", longitude)
            .json(&json!({"title": "nearest"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.url().path(), format!("/r/{home}/api/events"), "sent on");
        assert_eq!(r.json::<Value>().await.unwrap()["region"], home);
    }

    // A guest opens the share link: the page, then the API under A's path.
    let guest = Person::new(&regions.edge);
    let page = guest.send(Method::GET, guest_url, None).await;
    assert_eq!(page.status(), StatusCode::OK);
    let api = format!("/r/{A}/api/events/{eid}");
    let (status, asked) = guest
        .json(
            Method::POST,
            &format!("{api}/questions"),
            Some(json!({"text": "Where is the data?"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{asked}");
    let qid = asked["id"].as_str().unwrap().to_owned();
    let (status, _) = guest
        .json(
            Method::PUT,
            &format!("{api}/questions/{qid}/vote"),
            Some(json!({"up": true})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // A second guest has a stale hint (B). Once B knows the event (the
    // directory replicates), B sends the vote on to A's path on the same
    // origin, and the guest's client follows with its cookie.
    let second = Person::new(&regions.edge);
    let stale = format!("/r/{B}/api/events/{eid}");
    second
        .wait_for(&stale, Duration::from_secs(10), |status, _| {
            status == StatusCode::OK
        })
        .await;
    let no_follow = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let r = no_follow
        .put(format!("{}{stale}/questions/{qid}/vote", regions.edge))
        .json(&json!({"up": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        r.headers()["location"],
        format!("{api}/questions/{qid}/vote").as_str()
    );
    let (status, _) = second
        .json(
            Method::PUT,
            &format!("{stale}/questions/{qid}/vote"),
            Some(json!({"up": true})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The same guest again: still one voter (the cookie came along).
    let (status, _) = second
        .json(
            Method::PUT,
            &format!("{stale}/questions/{qid}/vote"),
            Some(json!({"up": true})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // The host sees the exact count, with the host secret sent along too
    // (through a stale hint as well).
    for path in [
        format!("{api}/host/questions"),
        format!("{stale}/host/questions"),
    ] {
        let view = host
            .wait_for(&path, Duration::from_secs(20), |status, view| {
                status == StatusCode::OK && view["questions"][0]["votes"] == 2
            })
            .await;
        assert_eq!(view["questions"].as_array().unwrap().len(), 1);
    }
    // And it stays exact once every acknowledged vote is projected (a lost
    // cookie would have made the repeated vote a third voter).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (_, view) = host
        .json(Method::GET, &format!("{api}/host/questions"), None)
        .await;
    assert_eq!(view["questions"][0]["votes"], 2);

    // Nothing of the event was written in B: only its directory entry
    // arrived there, by replication.
    let b = &regions.settings[B];
    assert_eq!(items_of(b, &b.records_table, &eid).await, 0);
    assert_eq!(items_of(b, &b.views_table, &eid).await, 0);
    assert_eq!(items_of(b, &b.events_table, &eid).await, 1);
    let a = &regions.settings[A];
    assert!(
        items_of(a, &a.records_table, &eid).await >= 4,
        "A holds the records"
    );
    // Its views' head, their versions, and its projection state's item.
    assert_eq!(items_of(a, &a.views_table, &eid).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_of_a_brand_new_event_waits_for_replication_never_not_found() {
    let Some(endpoint) = stand_in::endpoint() else {
        return;
    };
    let regions = two_regions(&endpoint).await;
    use reqwest::Method;

    regions.replicator.pause();
    let host = Person::new(&regions.edge);
    let (status, created) = host
        .json(
            Method::POST,
            &format!("/r/{A}/api/events"),
            Some(json!({"title": "new"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["region"], A);
    let eid = created["id"].as_str().unwrap();

    // A hand-typed link (no region): the edge sends it to B, which has not
    // heard of the event yet: waiting, with a retry hint.
    let guest = Person::new(&regions.edge);
    let path = format!("/api/events/{eid}/questions");
    for _ in 0..3 {
        let r = guest.send(Method::GET, &path, None).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()["retry-after"], "1");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_here_yet");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Replication resumes: the same request reaches A, and the board.
    regions.replicator.resume();
    let view = guest
        .wait_for(&path, Duration::from_secs(10), |status, _| {
            status == StatusCode::OK
        })
        .await;
    assert_eq!(view["event"]["title"], "new");
}
