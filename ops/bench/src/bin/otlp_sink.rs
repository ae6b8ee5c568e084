//! An OTLP/HTTP receiver for benchmarks (loopback only): it accepts what an
//! exporter sends to `/v1/traces` and `/v1/metrics`, decodes it (so the
//! exporter pays for real delivery) and counts it. `GET /stats` answers the
//! counts as JSON. `ops/bench/telemetry.sh` runs the server against it.
//!
//! Usage: `openfloor-otlp-sink --listen 127.0.0.1:4318`

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    /// Where to listen; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:4318")]
    listen: SocketAddr,
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    bytes: AtomicU64,
    spans: AtomicU64,
    metric_points: AtomicU64,
    undecodable: AtomicU64,
}

async fn traces(State(counts): State<Arc<Counts>>, body: Bytes) -> &'static str {
    counts.requests.fetch_add(1, Ordering::Relaxed);
    counts.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            let spans: usize = request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            counts.spans.fetch_add(spans as u64, Ordering::Relaxed);
        }
        Err(_) => {
            counts.undecodable.fetch_add(1, Ordering::Relaxed);
        }
    }
    ""
}

async fn metrics(State(counts): State<Arc<Counts>>, body: Bytes) -> &'static str {
    counts.requests.fetch_add(1, Ordering::Relaxed);
    counts.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    match ExportMetricsServiceRequest::decode(body) {
        Ok(request) => {
            let metrics: usize = request
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .map(|s| s.metrics.len())
                .sum();
            counts
                .metric_points
                .fetch_add(metrics as u64, Ordering::Relaxed);
        }
        Err(_) => {
            counts.undecodable.fetch_add(1, Ordering::Relaxed);
        }
    }
    ""
}

async fn stats(State(counts): State<Arc<Counts>>) -> Json<Value> {
    let read = |n: &AtomicU64| n.load(Ordering::Relaxed);
    Json(json!({
        "requests": read(&counts.requests),
        "bytes": read(&counts.bytes),
        "spans": read(&counts.spans),
        "metrics": read(&counts.metric_points),
        "undecodable": read(&counts.undecodable),
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        bail!("the sink listens on loopback only, not {}", args.listen);
    }
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(metrics))
        .route("/stats", get(stats))
        .with_state(Arc::new(Counts::default()));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    println!("otlp sink listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
