//! `spawn_app()`: a server on a random port with its own data directory,
//! and typed request helpers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use openfloor::cli::{AwsArgs, Backend, ServeArgs, StoreArgs};
use openfloor::server::serve_with_clock;
use openfloor_api::Clock;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;

/// A clock tests can move forward.
#[derive(Default)]
pub struct TestClock {
    skew_ms: AtomicU64,
}

impl TestClock {
    pub fn advance(&self, by: Duration) {
        self.skew_ms
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_millis(self.skew_ms.load(Ordering::SeqCst))
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Arc<TestClock>,
    pub data: Arc<TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

pub struct Event {
    pub id: String,
    pub secret: String,
    pub body: Value,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_in(Arc::new(tempfile::tempdir().unwrap())).await
}

/// A server on an existing data directory (for restart tests).
pub async fn spawn_app_in(data: Arc<TempDir>) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let args = ServeArgs {
        listen: listener.local_addr().unwrap(),
        region: "local".into(),
        shards: 1,
        client_salt: None,
        retention_days: 30,
        trust_forwarded_for: false,
        region_urls: Vec::new(),
    };
    let store_args = StoreArgs {
        backend: Backend::Embedded,
        data: data.path().to_owned(),
        aws: AwsArgs {
            aws_region: "us-east-1".into(),
            aws_endpoint_url: None,
            events_table: String::new(),
            records_table: String::new(),
            views_table: String::new(),
            queue_name: String::new(),
            create_resources: false,
        },
    };
    let clock = Arc::new(TestClock::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let clock = clock.clone();
        async move {
            serve_with_clock(listener, &store_args, &args, clock, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        }
    });
    TestApp {
        base,
        client: reqwest::Client::new(),
        clock,
        data,
        stop: Some(stop),
        server: Some(server),
    }
}

/// A distinct, valid voter token per name.
pub fn voter(name: &str) -> String {
    format!("voter-{name:0>16}")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server gracefully and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }

    pub async fn create_event(&self, title: &str) -> Event {
        let r = self
            .client
            .post(self.url("/api/events"))
            .json(&json!({"title": title}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let body: Value = r.json().await.unwrap();
        Event {
            id: body["id"].as_str().unwrap().to_owned(),
            secret: body["secret"].as_str().unwrap().to_owned(),
            body,
        }
    }

    pub async fn post_question(&self, eid: &str, voter_token: &str, body: Value) -> Response {
        self.client
            .post(self.url(&format!("/api/events/{eid}/questions")))
            .header("x-voter", voter_token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Asks and returns the question id.
    pub async fn ask(&self, eid: &str, text: &str) -> String {
        let r = self
            .post_question(eid, &voter("asker"), json!({"text": text}))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn vote(&self, eid: &str, qid: &str, voter_token: &str, up: bool) -> Response {
        self.client
            .put(self.url(&format!("/api/events/{eid}/questions/{qid}/vote")))
            .header("x-voter", voter_token)
            .json(&json!({"up": up}))
            .send()
            .await
            .unwrap()
    }

    pub async fn host_put(&self, event: &Event, path: &str, body: Value) -> Response {
        self.host_put_with(&event.id, &event.secret, path, body)
            .await
    }

    pub async fn host_put_with(
        &self,
        eid: &str,
        secret: &str,
        path: &str,
        body: Value,
    ) -> Response {
        self.client
            .put(self.url(&format!("/api/events/{eid}{path}")))
            .bearer_auth(secret)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn guest_view(&self, eid: &str) -> Value {
        let r = self
            .client
            .get(self.url(&format!("/api/events/{eid}/questions")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    pub async fn host_view(&self, event: &Event) -> Value {
        let r = self
            .client
            .get(self.url(&format!("/api/events/{}/host/questions", event.id)))
            .bearer_auth(&event.secret)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    /// Polls the guest view until `ok` holds (views are projected
    /// asynchronously), failing after five seconds.
    pub async fn wait_for_guest(&self, eid: &str, ok: impl Fn(&Value) -> bool) -> Value {
        wait_for(|| self.guest_view(eid), ok).await
    }

    pub async fn wait_for_host(&self, event: &Event, ok: impl Fn(&Value) -> bool) -> Value {
        wait_for(|| self.host_view(event), ok).await
    }
}

async fn wait_for<F: std::future::Future<Output = Value>>(
    get: impl Fn() -> F,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let v = get().await;
        if ok(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "view never reached the expected state: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts the JSON error envelope with `status` and `code`.
pub async fn assert_error(r: Response, status: StatusCode, code: &str) {
    assert_eq!(r.status(), status, "unexpected status");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "errors are JSON"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// The ids of the unanswered questions, in view order.
pub fn ids(view: &Value, list: &str) -> Vec<String> {
    view[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap().to_owned())
        .collect()
}

pub fn votes_of(view: &Value, qid: &str) -> Option<u64> {
    ["questions", "answered"]
        .iter()
        .flat_map(|l| view[*l].as_array().unwrap().iter())
        .find(|q| q["id"] == qid)
        .map(|q| q["votes"].as_u64().unwrap())
}
