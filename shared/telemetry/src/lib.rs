//! openfloor's telemetry, set up once by each entry point (the server, the
//! Lambdas, the operator tools) with [`init`]:
//!
//! - **Logs**: `tracing` to standard error, filtered by `OPENFLOOR_LOG`, as
//!   text or, with `OPENFLOOR_LOG_FORMAT=json`, as one JSON object a line
//!   carrying the fields of the spans around it (a request's `trace_id`
//!   among them), so that logs and traces join.
//! - **Traces**: `tracing` spans bridged to OpenTelemetry and exported over
//!   OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the other standard
//!   `OTEL_*` variables apply (service name, resource attributes, headers,
//!   sampler); which spans, by `OPENFLOOR_TRACES` (a `tracing` filter,
//!   default `info`). Unset, no span is exported and the bridge is not
//!   installed, so tracing costs what plain `tracing` costs.
//! - **Metrics**: OpenTelemetry instruments (each crate defines its own,
//!   see [`meter`]), exported over OTLP with the traces, and always
//!   readable as Prometheus text ([`Metrics::render`], served at
//!   `/metrics`). Prometheus's text is encoded here because the
//!   OpenTelemetry Prometheus exporter is discontinued (its last release
//!   depends on an unmaintained protobuf crate).
//!
//! On Lambda, [`Telemetry::flush`] must run before each invocation returns:
//! a frozen function exports nothing.

mod prometheus;

use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The meter every openfloor crate makes its instruments with. Instruments
/// must be made after [`init`] (a meter taken before it records nothing),
/// so crates keep theirs in a `LazyLock` first touched by real work.
pub fn meter() -> opentelemetry::metrics::Meter {
    opentelemetry::global::meter("openfloor")
}

/// The current span's trace context as a W3C `traceparent`, for a message
/// that leaves the process (a queued projector command); `None` where
/// nothing is traced.
pub fn current_traceparent() -> Option<String> {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let context = tracing::Span::current().context();
    let mut carrier = std::collections::HashMap::new();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut carrier);
    });
    carrier.remove("traceparent")
}

/// The span a `traceparent` names (a queued message's), for a span link;
/// `None` when it names none.
pub fn linked_span(traceparent: &str) -> Option<opentelemetry::trace::SpanContext> {
    use opentelemetry::trace::TraceContextExt as _;
    let carrier =
        std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let context =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&carrier));
    let span = context.span().span_context().clone();
    span.is_valid().then_some(span)
}

/// Bucket bounds for durations in seconds: 1 ms to a minute.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// What is running, for the logs and the telemetry's resource.
pub struct Service {
    /// `service.name` unless `OTEL_SERVICE_NAME` says otherwise.
    pub name: &'static str,
    /// JSON logs unless `OPENFLOOR_LOG_FORMAT` says otherwise (on Lambda,
    /// where CloudWatch reads them).
    pub json_logs_by_default: bool,
}

/// The installed telemetry; keep it for the life of the process.
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
    meters: SdkMeterProvider,
    metrics: Metrics,
}

/// The process's metrics, readable as Prometheus text.
#[derive(Clone, Debug)]
pub struct Metrics(Arc<ManualReader>);

impl Metrics {
    /// The current value of every instrument, in Prometheus's text format.
    pub fn render(&self) -> String {
        let mut collected = ResourceMetrics::default();
        match self.0.collect(&mut collected) {
            Ok(()) => prometheus::encode(&collected),
            Err(error) => format!("# metrics could not be collected: {error}\n"),
        }
    }
}

/// Lets the meter provider own a reader that [`Metrics`] also reads.
#[derive(Debug)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// Whether the standard variables ask for OTLP export.
fn exporting() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Logs as JSON lines (`OPENFLOOR_LOG_FORMAT=json`) or text (`=text`).
fn json_logs(by_default: bool) -> bool {
    match std::env::var("OPENFLOOR_LOG_FORMAT") {
        Ok(format) if format.eq_ignore_ascii_case("json") => true,
        Ok(format) if format.eq_ignore_ascii_case("text") => false,
        _ => by_default,
    }
}

/// Installs logging, tracing and metrics for this process. Call once, first
/// thing, inside the Tokio runtime.
pub fn init(service: Service) -> anyhow::Result<Telemetry> {
    let resource = if std::env::var_os("OTEL_SERVICE_NAME").is_some() {
        Resource::builder().build()
    } else {
        Resource::builder().with_service_name(service.name).build()
    };
    let exporting = exporting();

    // W3C trace context in and out (requests' `traceparent`, SQS attributes).
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );

    let traces = if exporting {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .context("building the OTLP span exporter")?;
        Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource.clone())
                .build(),
        )
    } else {
        None
    };

    let scrape = Arc::new(ManualReader::builder().build());
    let mut meters = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(SharedReader(scrape.clone()));
    if exporting {
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .build()
            .context("building the OTLP metric exporter")?;
        meters = meters.with_periodic_exporter(exporter);
    }
    let meters = meters.build();
    opentelemetry::global::set_meter_provider(meters.clone());

    let filter =
        || EnvFilter::try_from_env("OPENFLOOR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = if json_logs(service.json_logs_by_default) {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed()
    };
    // Spans reach OpenTelemetry by their own filter (`OPENFLOOR_TRACES`,
    // default `info`): quiet logs need not mean no traces.
    let otel = traces.as_ref().map(|provider| {
        let spans =
            EnvFilter::try_from_env("OPENFLOOR_TRACES").unwrap_or_else(|_| EnvFilter::new("info"));
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("openfloor"))
            .with_filter(spans)
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(otel)
        .try_init()
        .context("installing the tracing subscriber")?;
    if exporting {
        tracing::info!("exporting traces and metrics over OTLP");
    }
    Ok(Telemetry {
        traces,
        meters,
        metrics: Metrics(scrape),
    })
}

impl Telemetry {
    /// The metrics, for `/metrics`.
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// Sends what is buffered (a Lambda calls this before each invocation
    /// returns, since a frozen function sends nothing).
    pub fn flush(&self) {
        if let Some(traces) = &self.traces {
            if let Err(error) = traces.force_flush() {
                tracing::warn!(%error, "flushing spans failed");
            }
        }
        if self.traces.is_some() {
            if let Err(error) = self.meters.force_flush() {
                tracing::warn!(%error, "flushing metrics failed");
            }
        }
    }

    /// Flushes and stops the exporters (at the end of the process).
    pub fn shutdown(self) {
        self.flush();
        if let Some(traces) = self.traces {
            let _ = traces.shutdown();
        }
        let _ = self.meters.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_names_the_span_to_link_to_and_garbage_names_none() {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let span = linked_span("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("a valid traceparent");
        assert_eq!(
            span.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(span.span_id().to_string(), "00f067aa0ba902b7");
        assert!(span.is_remote());
        for garbage in [
            "",
            "not a traceparent",
            // All-zero ids name no span.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            assert_eq!(linked_span(garbage), None, "{garbage:?}");
        }
        // Outside any traced span there is nothing to send.
        assert_eq!(current_traceparent(), None);
    }
}
