//! Traces and logs as an operator reads them (README, "Telemetry"), with
//! the OpenTelemetry SDK's in-memory exporter: one vote's span tree, the
//! projection's link back to the vote's request, and nothing secret in any
//! exported span or log line.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use openfloor::poller::handle_received;
use openfloor_api::{router, ApiConfig, AppState, SystemClock};
use openfloor_aws::queue::{Command, Queue};
use openfloor_aws::stream::StreamReader;
use openfloor_domain::ids::EventId;
use openfloor_domain::record::{Record, RecordBody};
use openfloor_projector::service::ProjectorService;
use openfloor_projector::Projector;
use openfloor_store::memory::MemoryStore;
use openfloor_store::LocalTrigger;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::Value;
use tower::ServiceExt;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt;

/// Log lines written during the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const VOTER: &str = "guest-token-never-logged-0001";
const CLIENT: &str = "203.0.113.77";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CREATE_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

async fn call(app: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A request as a guest's browser behind a proxy sends it.
fn json_request(method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .header("x-voter", VOTER)
        .header("x-forwarded-for", CLIENT)
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// Spans to memory, for this thread, with W3C trace context propagation.
fn traced_to_memory() -> (InMemorySpanExporter, tracing::subscriber::DefaultGuard) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let guard = tracing::subscriber::set_default(subscriber);
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    (exporter, guard)
}

/// A live event of eu-west-1 in `store`'s directory, and its creation
/// record (not appended yet).
async fn event_to_create(store: &openfloor_store::Store) -> (openfloor_store::EventMeta, Record) {
    let meta = openfloor_testing::fixtures::event_meta(EventId::from_ulid(ulid::Ulid::new()))
        .region("eu-west-1")
        .build();
    store.directory.create(&meta).await.unwrap();
    let created = openfloor_testing::fixtures::record(
        meta.id,
        ulid::Ulid::from_parts(meta.created_at, 1),
        RecordBody::EventCreated {
            title: meta.title.clone(),
        },
    );
    (meta, created)
}

#[tokio::test]
async fn a_vote_is_traced_from_its_request_to_the_projection_that_shows_it() {
    // Spans to memory, logs (as JSON lines) to memory: the whole session.
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let logs = Captured::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_writer({
                    let logs = logs.clone();
                    move || logs.clone()
                }),
        );
    let _guard = tracing::subscriber::set_default(subscriber);
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );

    let store = MemoryStore::store();
    let trigger = Arc::new(LocalTrigger::new());
    let config = ApiConfig {
        client_address: openfloor_api::ClientAddressSource {
            trusted_proxies: 1,
            cloudfront_viewer_address: false,
            cdn_secret: None,
        },
        ..ApiConfig::default()
    };
    let app = router(AppState::new(
        store.clone(),
        trigger.clone(),
        config,
        Arc::new(SystemClock),
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let projector = tokio::spawn(Projector::new(store).run(trigger, async {
        let _ = stopped.await;
    }));

    let (status, created) = call(
        &app,
        json_request("POST", "/api/events")
            .header(
                "traceparent",
                format!("00-{CREATE_TRACE}-b7ad6b7169203331-01"),
            )
            .body(Body::from(r#"{"title": "Traced"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (eid, secret) = (
        created["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    );
    let (status, asked) = call(
        &app,
        json_request("POST", &format!("/api/events/{eid}/questions"))
            .body(Body::from(r#"{"text": "Is this traced?"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let qid = asked["id"].as_str().unwrap().to_owned();
    // The vote continues a trace the client (or the CDN) started.
    let (status, _) = call(
        &app,
        json_request("PUT", &format!("/api/events/{eid}/questions/{qid}/vote"))
            .header("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01"))
            .body(Body::from(r#"{"up": true}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The host reads the view that shows it.
    let host = || {
        Request::get(format!("/api/events/{eid}/host/questions"))
            .header("authorization", format!("Bearer {secret}"))
            .body(Body::empty())
            .unwrap()
    };
    let mut shown = false;
    for _ in 0..100 {
        let (_, view) = call(&app, host()).await;
        if view["questions"][0]["votes"] == 1 {
            shown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(shown, "the vote reached the host view");
    let _ = stop.send(());
    projector.await.unwrap();
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();

    // The vote's request continued the client's trace, by route template.
    let trace = TraceId::from_hex(TRACE).unwrap();
    let requests = named(&spans, "request");
    let vote = requests
        .iter()
        .find(|s| s.span_context.trace_id() == trace)
        .expect("the vote's request span, in the client's trace");
    assert_eq!(
        attribute(vote, "route").as_deref(),
        Some("/api/events/{eid}/questions/{qid}/vote")
    );
    assert_eq!(
        vote.parent_span_id,
        SpanId::from_hex("00f067aa0ba902b7").unwrap()
    );
    // The tree: request → handler ("vote") → command → its store calls
    // (a first vote: the optimistic check, then the append).
    let child = |parent: &SpanData, name: &str| -> SpanData {
        named(&spans, name)
            .into_iter()
            .find(|s| s.parent_span_id == parent.span_context.span_id())
            .unwrap_or_else(|| panic!("no {name} span under {}", parent.name))
            .clone()
    };
    let handler = child(vote, "vote");
    let command = child(&handler, "command");
    assert_eq!(attribute(&command, "command").as_deref(), Some("vote"));
    assert_eq!(attribute(&command, "decision").as_deref(), Some("append"));
    let check = child(&command, "store.lookup_recent");
    let append = child(&command, "store.append");
    assert!(
        check.end_time <= append.start_time,
        "checked, then appended"
    );

    // A projection that stored the view links back to the vote's trace.
    let projection = named(&spans, "projection")
        .into_iter()
        .find(|p| p.links.iter().any(|l| l.span_context.trace_id() == trace))
        .expect("a projection linked to the vote's trace");
    assert_eq!(
        attribute(projection, "event").as_deref(),
        Some(eid.as_str())
    );
    assert_eq!(attribute(projection, "stored").as_deref(), Some("true"));

    // Nothing secret in any span or log line of the whole session.
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    // The create's log line carries its request's trace id, so logs and
    // traces join.
    let created_line = logs
        .lines()
        .find(|l| l.contains("event created"))
        .expect("the create is logged");
    assert!(created_line.contains(CREATE_TRACE), "{created_line}");
    let exported = format!("{spans:?}");
    for (what, secret) in [
        ("host secret", secret.as_str()),
        ("voter token", VOTER),
        ("client address", CLIENT),
    ] {
        assert!(!exported.contains(secret), "a span carries the {what}");
        assert!(!logs.contains(secret), "a log line carries the {what}");
    }
}

/// A projector command queued inside a traced span (an operator's tool
/// asking for a projection) carries that span's context in an SQS message
/// attribute, with the time SQS took it; the projection it causes links
/// back to the sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_command_carries_its_trace_to_the_projection() {
    let Some(aws) = openfloor_testing::aws::fresh().await else {
        return;
    };
    let (exporter, _guard) = traced_to_memory();
    let store = aws.store();
    let (meta, created) = event_to_create(&store).await;
    store.log.append(meta.log(), created).await.unwrap();
    let queue = Queue::open(aws.sqs.clone(), &aws.settings.queue_name)
        .await
        .unwrap();

    let sender = tracing::info_span!("operator_project");
    let sent = sender.context().span().span_context().clone();
    assert!(sent.is_valid());
    let before = openfloor_testing::fixtures::now_ms();
    queue
        .send(&[Command::Project { event: meta.id }])
        .instrument(sender)
        .await
        .unwrap();
    let mut batch = Vec::new();
    for _ in 0..10 {
        batch.extend(queue.receive(Duration::from_secs(1)).await.unwrap());
        if !batch.is_empty() {
            break;
        }
    }
    assert_eq!(batch.len(), 1);
    let message = &batch[0];
    let expected = format!("00-{}-{}-01", sent.trace_id(), sent.span_id());
    assert_eq!(message.traceparent.as_deref(), Some(expected.as_str()));
    let sent_at = message.sent_at.expect("SQS's SentTimestamp");
    assert!(sent_at + 1000 >= before, "{sent_at} vs {before}");

    let service = ProjectorService::new(store.clone(), "eu-west-1".into());
    handle_received(&service, &queue, &batch).await;
    assert_eq!(store.views.get(meta.id).await.unwrap().unwrap().records, 1);
    let spans = exporter.get_finished_spans().unwrap();
    let projection = named(&spans, "projection")
        .into_iter()
        .find(|p| {
            p.links
                .iter()
                .any(|l| l.span_context.span_id() == sent.span_id())
        })
        .expect("the projection links to the span that queued its command");
    assert_eq!(
        attribute(projection, "event").as_deref(),
        Some(meta.id.to_string().as_str())
    );

    // A sweep is a span saying what it looked at and what it changed.
    service.sweep().await.unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let sweep = named(&spans, "sweep").pop().expect("a sweep span");
    let fields = ["events", "changed", "failed"].map(|f| attribute(sweep, f));
    assert_eq!(
        fields,
        [Some("1".into()), Some("0".into()), Some("0".into())],
        "the event's view was current"
    );
}

/// On AWS the records stream tells the projector: each record carries the
/// trace context of the request that appended it, the stream's change
/// carries the record, and the projection that shows it links back to that
/// request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_carries_its_trace_through_the_records_stream_to_the_projection() {
    let Some(aws) = openfloor_testing::aws::fresh().await else {
        return;
    };
    let (exporter, _guard) = traced_to_memory();
    let store = aws.store();
    let (meta, created) = event_to_create(&store).await;
    let request = tracing::info_span!("request");
    let sent = request.context().span().span_context().clone();
    store
        .log
        .append(meta.log(), created)
        .instrument(request)
        .await
        .unwrap();

    let mut stream = StreamReader::from_start(&aws).await.unwrap();
    let mut changes = Vec::new();
    for _ in 0..10 {
        changes.extend(stream.poll().await.unwrap());
        if !changes.is_empty() {
            break;
        }
    }
    assert_eq!(changes.len(), 1);
    let expected = format!("00-{}-{}-01", sent.trace_id(), sent.span_id());
    assert_eq!(changes[0].traceparent.as_deref(), Some(expected.as_str()));

    let service = ProjectorService::new(store.clone(), "eu-west-1".into());
    assert!(service.handle_touched(&changes).await.is_empty());
    assert_eq!(store.views.get(meta.id).await.unwrap().unwrap().records, 1);
    let spans = exporter.get_finished_spans().unwrap();
    named(&spans, "projection")
        .into_iter()
        .find(|p| {
            p.links
                .iter()
                .any(|l| l.span_context.span_id() == sent.span_id())
        })
        .expect("the projection links to the request that appended the record");
}

/// A 503 is logged once, as a warning that names its cause, and not again
/// as an error by the HTTP layer (an overloaded store is not a bug).
#[tokio::test]
async fn a_503_is_one_warning_naming_its_cause_not_an_error() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(tracing_subscriber::fmt::layer().json().with_writer({
            let logs = logs.clone();
            move || logs.clone()
        }));
    let _guard = tracing::subscriber::set_default(subscriber);
    // Nothing listens on port 9 of loopback: every store call fails.
    let settings = openfloor_testing::aws::fresh_settings("http://127.0.0.1:9");
    let aws = openfloor_aws::Aws::connect(settings).await;
    let app = router(AppState::new(
        aws.store(),
        Arc::new(LocalTrigger::new()),
        ApiConfig::default(),
        Arc::new(SystemClock),
    ));
    let (status, body) = call(
        &app,
        json_request("POST", "/api/events")
            .body(Body::from(r#"{"title": "Down"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "unavailable");

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let at = |level: &str| lines.iter().filter(|l| l["level"] == level).count();
    assert_eq!(at("ERROR"), 0, "{logs}");
    let warned = lines
        .iter()
        .filter(|l| l["level"] == "WARN")
        .map(Value::to_string)
        .collect::<Vec<_>>();
    assert!(
        warned
            .iter()
            .any(|l| l.contains("127.0.0.1:9") || l.contains("dispatch")),
        "a warning names the cause: {warned:?}"
    );
}
