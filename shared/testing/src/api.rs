//! A typed HTTP client for the API of a running server (in-process, a
//! child process, or the API on the AWS stand-in), and what tests check
//! its answers with.
//!
//! The typed helpers unwrap transport errors: a test that expects the
//! server to be gone builds its request with the methods that return a
//! [`RequestBuilder`] and sends it itself.

use std::future::Future;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

/// How long [`ApiClient::wait_for_guest`] and
/// [`ApiClient::wait_for_host`] wait for the projector: views are projected
/// asynchronously, in well under a second on a test machine.
pub const VIEW_WAIT: Duration = Duration::from_secs(5);

/// How often a wait reads the view again.
const VIEW_POLL: Duration = Duration::from_millis(20);

/// The API at `base` (`http://127.0.0.1:PORT`), over one connection pool.
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub http: reqwest::Client,
    pub base: String,
}

/// An event as `POST /api/events` answered it.
#[derive(Debug, Clone)]
pub struct CreatedEvent {
    pub id: String,
    /// The host secret, the bearer token of the host routes.
    pub secret: String,
    /// The whole answer.
    pub body: Value,
}

/// A distinct, valid voter token (`x-voter`) per name.
pub fn voter(name: &str) -> String {
    format!("voter-{name:0>16}")
}

impl ApiClient {
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.into(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    pub fn put(&self, path: &str) -> RequestBuilder {
        self.request(Method::PUT, path)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.request(Method::DELETE, path)
    }

    /// Creates an event, asserting `201 Created`.
    pub async fn create_event(&self, title: &str) -> CreatedEvent {
        let r = send(self.post("/api/events").json(&json!({"title": title}))).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let body: Value = r.json().await.unwrap();
        CreatedEvent {
            id: body["id"].as_str().unwrap().to_owned(),
            secret: body["secret"].as_str().unwrap().to_owned(),
            body,
        }
    }

    /// Posts `body` as a question, as the voter holding `voter_token`.
    pub async fn post_question(&self, eid: &str, voter_token: &str, body: Value) -> Response {
        send(
            self.post(&format!("/api/events/{eid}/questions"))
                .header("x-voter", voter_token)
                .json(&body),
        )
        .await
    }

    /// Asks `text` as the voter holding `voter_token`, asserting
    /// `201 Created`; returns the question id.
    pub async fn ask_as(&self, eid: &str, voter_token: &str, text: &str) -> String {
        let r = self
            .post_question(eid, voter_token, json!({"text": text}))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// [`ask_as`](Self::ask_as) the voter `asker`.
    pub async fn ask(&self, eid: &str, text: &str) -> String {
        self.ask_as(eid, &voter("asker"), text).await
    }

    /// The vote (`up`) or withdrawal of the voter holding `voter_token`,
    /// not yet sent.
    pub fn vote_request(
        &self,
        eid: &str,
        qid: &str,
        voter_token: &str,
        up: bool,
    ) -> RequestBuilder {
        self.put(&format!("/api/events/{eid}/questions/{qid}/vote"))
            .header("x-voter", voter_token)
            .json(&json!({"up": up}))
    }

    pub async fn vote(&self, eid: &str, qid: &str, voter_token: &str, up: bool) -> Response {
        send(self.vote_request(eid, qid, voter_token, up)).await
    }

    /// A host action (`PUT /api/events/{id}{path}`) with the event's secret.
    pub async fn host_put(&self, event: &CreatedEvent, path: &str, body: Value) -> Response {
        self.host_put_with(&event.id, &event.secret, path, body)
            .await
    }

    /// A host action on event `eid` with whatever `secret` is given.
    pub async fn host_put_with(
        &self,
        eid: &str,
        secret: &str,
        path: &str,
        body: Value,
    ) -> Response {
        send(
            self.put(&format!("/api/events/{eid}{path}"))
                .bearer_auth(secret)
                .json(&body),
        )
        .await
    }

    /// The event's records as NDJSON (`query` is `?after=…&limit=…` or
    /// empty), with whatever `secret` is given.
    pub async fn records(&self, eid: &str, secret: &str, query: &str) -> Response {
        send(
            self.get(&format!("/api/events/{eid}/records{query}"))
                .bearer_auth(secret),
        )
        .await
    }

    /// The guest view, asserting `200 OK`.
    pub async fn guest_view(&self, eid: &str) -> Value {
        let r = send(self.get(&format!("/api/events/{eid}/questions"))).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    /// The host view, asserting `200 OK`.
    pub async fn host_view(&self, event: &CreatedEvent) -> Value {
        let r = send(
            self.get(&format!("/api/events/{}/host/questions", event.id))
                .bearer_auth(&event.secret),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    /// Polls the guest view until `ok` holds, failing after [`VIEW_WAIT`].
    pub async fn wait_for_guest(&self, eid: &str, ok: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_guest_within(eid, VIEW_WAIT, ok).await
    }

    /// Polls the guest view until `ok` holds, failing after `within`.
    pub async fn wait_for_guest_within(
        &self,
        eid: &str,
        within: Duration,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        wait_for(within, || self.guest_view(eid), ok).await
    }

    /// Polls the host view until `ok` holds, failing after [`VIEW_WAIT`].
    pub async fn wait_for_host(&self, event: &CreatedEvent, ok: impl Fn(&Value) -> bool) -> Value {
        wait_for(VIEW_WAIT, || self.host_view(event), ok).await
    }
}

async fn send(request: RequestBuilder) -> Response {
    request.send().await.expect("the server answers")
}

async fn wait_for<F: Future<Output = Value>>(
    within: Duration,
    get: impl Fn() -> F,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let v = get().await;
        if ok(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "view never reached the expected state: {v:#}"
        );
        tokio::time::sleep(VIEW_POLL).await;
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

/// The ids of the questions in `list` (`questions` or `answered`) of a
/// view, in view order.
pub fn ids(view: &Value, list: &str) -> Vec<String> {
    view[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The votes of question `qid` in a view, answered or not.
pub fn votes_of(view: &Value, qid: &str) -> Option<u64> {
    ["questions", "answered"]
        .iter()
        .flat_map(|l| view[*l].as_array().unwrap().iter())
        .find(|q| q["id"] == qid)
        .map(|q| q["votes"].as_u64().unwrap())
}
