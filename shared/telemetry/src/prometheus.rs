//! OpenTelemetry metrics in Prometheus's text exposition format (0.0.4), as
//! the OpenTelemetry-to-Prometheus compatibility rules map them: a
//! monotonic sum is a counter named `…_total`, any other sum or a gauge is
//! a gauge, a histogram has cumulative `_bucket{le=…}` series with `_sum`
//! and `_count`; names and label names keep `[a-zA-Z0-9_:]` only.

use std::fmt::Write as _;

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, Gauge, Histogram, Metric, MetricData, ResourceMetrics, Sum,
};

pub fn encode(metrics: &ResourceMetrics) -> String {
    let mut out = String::new();
    for scope in metrics.scope_metrics() {
        for metric in scope.metrics() {
            match metric.data() {
                AggregatedMetrics::F64(data) => write_metric(&mut out, metric, data),
                AggregatedMetrics::U64(data) => write_metric(&mut out, metric, data),
                AggregatedMetrics::I64(data) => write_metric(&mut out, metric, data),
            }
        }
    }
    out
}

/// A number as Prometheus writes it.
trait Number: Copy {
    fn text(self) -> String;
}

impl Number for f64 {
    fn text(self) -> String {
        if self.is_nan() {
            "NaN".into()
        } else if self.is_infinite() {
            if self > 0.0 { "+Inf" } else { "-Inf" }.into()
        } else {
            self.to_string()
        }
    }
}

impl Number for u64 {
    fn text(self) -> String {
        self.to_string()
    }
}

impl Number for i64 {
    fn text(self) -> String {
        self.to_string()
    }
}

fn write_metric<T: Number>(out: &mut String, metric: &Metric, data: &MetricData<T>) {
    let name = sanitize(metric.name());
    let help = metric
        .description()
        .replace('\\', "\\\\")
        .replace('\n', "\\n");
    match data {
        MetricData::Sum(sum) => write_sum(out, &name, &help, sum),
        MetricData::Gauge(gauge) => write_gauge(out, &name, &help, gauge),
        MetricData::Histogram(histogram) => write_histogram(out, &name, &help, histogram),
        // openfloor makes no exponential histograms.
        MetricData::ExponentialHistogram(_) => {}
    }
}

fn write_sum<T: Number>(out: &mut String, name: &str, help: &str, sum: &Sum<T>) {
    let (name, kind) = if sum.is_monotonic() {
        let total = if name.ends_with("_total") {
            name.to_owned()
        } else {
            format!("{name}_total")
        };
        (total, "counter")
    } else {
        (name.to_owned(), "gauge")
    };
    header(out, &name, help, kind);
    for point in sum.data_points() {
        let _ = writeln!(
            out,
            "{name}{} {}",
            labels(point.attributes(), None),
            point.value().text()
        );
    }
}

fn write_gauge<T: Number>(out: &mut String, name: &str, help: &str, gauge: &Gauge<T>) {
    header(out, name, help, "gauge");
    for point in gauge.data_points() {
        let _ = writeln!(
            out,
            "{name}{} {}",
            labels(point.attributes(), None),
            point.value().text()
        );
    }
}

fn write_histogram<T: Number>(out: &mut String, name: &str, help: &str, histogram: &Histogram<T>) {
    header(out, name, help, "histogram");
    for point in histogram.data_points() {
        let mut cumulative = 0;
        let bounds: Vec<String> = point
            .bounds()
            .map(Number::text)
            .chain(["+Inf".into()])
            .collect();
        for (bound, count) in bounds.iter().zip(point.bucket_counts()) {
            cumulative += count;
            let labels = labels(point.attributes(), Some(bound));
            let _ = writeln!(out, "{name}_bucket{labels} {cumulative}");
        }
        let plain = labels(point.attributes(), None);
        let _ = writeln!(out, "{name}_sum{plain} {}", point.sum().text());
        let _ = writeln!(out, "{name}_count{plain} {}", point.count());
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    if !help.is_empty() {
        let _ = writeln!(out, "# HELP {name} {help}");
    }
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// `{a="1",b="2"}` (with `le` last when given), or nothing.
fn labels<'a>(attributes: impl Iterator<Item = &'a KeyValue>, le: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = attributes
        .map(|kv| (sanitize(kv.key.as_str()), kv.value.as_str().into_owned()))
        .collect();
    pairs.sort();
    if let Some(le) = le {
        pairs.push(("le".into(), le.into()));
    }
    if pairs.is_empty() {
        return String::new();
    }
    let body: Vec<String> = pairs
        .iter()
        .map(|(key, value)| {
            let value = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{key}=\"{value}\"")
        })
        .collect();
    format!("{{{}}}", body.join(","))
}

/// A metric or label name Prometheus accepts.
fn sanitize(name: &str) -> String {
    let mut clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.starts_with(|c: char| c.is_ascii_digit()) {
        clean.insert(0, '_');
    }
    clean
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry::KeyValue;
    use opentelemetry_sdk::metrics::reader::MetricReader;
    use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};

    use super::*;
    use crate::SharedReader;

    #[test]
    fn counters_gauges_and_histograms_as_prometheus_reads_them() {
        let reader = Arc::new(ManualReader::builder().build());
        let provider = SdkMeterProvider::builder()
            .with_reader(SharedReader(reader.clone()))
            .build();
        let meter = provider.meter("test");
        let requests = meter
            .u64_counter("openfloor.requests")
            .with_description("Requests answered")
            .build();
        requests.add(
            2,
            &[
                KeyValue::new("route", "/api/x"),
                KeyValue::new("status class", "2xx"),
            ],
        );
        requests.add(
            1,
            &[
                KeyValue::new("route", "/api/x"),
                KeyValue::new("status class", "2xx"),
            ],
        );
        meter
            .i64_up_down_counter("queue_depth")
            .build()
            .add(-3, &[]);
        let lag = meter
            .f64_histogram("lag_seconds")
            .with_boundaries(vec![0.1, 1.0])
            .build();
        for seconds in [0.05, 0.5, 0.7, 3.0] {
            lag.record(seconds, &[KeyValue::new("path", "a\"b")]);
        }
        let mut collected = ResourceMetrics::default();
        MetricReader::collect(reader.as_ref(), &mut collected).unwrap();
        let text = encode(&collected);
        for line in [
            "# HELP openfloor_requests_total Requests answered",
            "# TYPE openfloor_requests_total counter",
            "openfloor_requests_total{route=\"/api/x\",status_class=\"2xx\"} 3",
            "# TYPE queue_depth gauge",
            "queue_depth -3",
            "# TYPE lag_seconds histogram",
            "lag_seconds_bucket{path=\"a\\\"b\",le=\"0.1\"} 1",
            "lag_seconds_bucket{path=\"a\\\"b\",le=\"1\"} 3",
            "lag_seconds_bucket{path=\"a\\\"b\",le=\"+Inf\"} 4",
            "lag_seconds_sum{path=\"a\\\"b\"} 4.25",
            "lag_seconds_count{path=\"a\\\"b\"} 4",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn names_are_made_fit() {
        assert_eq!(sanitize("a.b-c d"), "a_b_c_d");
        assert_eq!(sanitize("9lives"), "_9lives");
    }
}
