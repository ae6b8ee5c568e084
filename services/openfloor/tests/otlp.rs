//! The binary exports its traces and metrics over OTLP/HTTP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set: a small receiver started here (as
//! a collector would be) gets the spans of a vote and the projection that
//! showed it, and the metrics, from a real `openfloor` process.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use openfloor_testing::api::ApiClient;
use openfloor_testing::process::Server;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

const OPENFLOOR: &str = env!("CARGO_BIN_EXE_openfloor");

/// What the receiver got: span names with their service, and metric names.
#[derive(Default)]
struct Received {
    spans: Vec<(String, String)>,
    metrics: Vec<String>,
}

async fn traces(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf spans");
    let mut received = received.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .map(|v| format!("{:?}", v.value))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                received.spans.push((span.name, service.clone()));
            }
        }
    }
    ""
}

async fn metrics(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> &'static str {
    let request = ExportMetricsServiceRequest::decode(body).expect("OTLP protobuf metrics");
    let mut received = received.lock().unwrap();
    for resource in request.resource_metrics {
        for scope in resource.scope_metrics {
            received
                .metrics
                .extend(scope.metrics.into_iter().map(|m| m.name));
        }
    }
    ""
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_and_metrics_reach_an_otlp_receiver() {
    let received = Arc::new(Mutex::new(Received::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(metrics))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start_with_env(
        OPENFLOOR,
        data.path(),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.as_str()),
            ("OTEL_SERVICE_NAME", "openfloor-under-test"),
            // Metrics are sent at least this often (and at the stop).
            ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ],
    );
    let api = ApiClient::new(&server.base);
    let created = api.create_event("Exported").await;
    let qid = api.ask(&created.id, "Does it reach the collector?").await;
    assert_eq!(
        api.vote(&created.id, &qid, "otlp-voter-0000000001", true)
            .await
            .status(),
        202
    );
    api.wait_for_guest(&created.id, |v| v["questions"][0]["votes"] == 1)
        .await;
    // A clean stop flushes what is buffered.
    server.stop_gracefully();

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        {
            let received = received.lock().unwrap();
            let has = |name: &str| received.spans.iter().any(|(n, _)| n == name);
            if has("request")
                && has("command")
                && has("projection")
                && received
                    .metrics
                    .iter()
                    .any(|m| m == "openfloor_projection_lag_seconds")
            {
                assert!(received
                    .spans
                    .iter()
                    .all(|(_, service)| service.contains("openfloor-under-test")));
                return;
            }
            assert!(
                Instant::now() < deadline,
                "spans {:?}, metrics {:?}",
                received.spans,
                received.metrics
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
