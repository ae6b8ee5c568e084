//! What the projector tells operators (README, "Telemetry").

use std::sync::LazyLock;
use std::time::Duration;

use openfloor_domain::clock::{Clock as _, SystemClock};

use openfloor_store::StoredView;
use openfloor_telemetry::SECONDS_BUCKETS;
use opentelemetry::metrics::{Counter, Histogram};
use opentelemetry::KeyValue;

struct Instruments {
    lag: Histogram<f64>,
    duration: Histogram<f64>,
    records: Histogram<u64>,
    view_bytes: Histogram<u64>,
    verified: Counter<u64>,
    differences: Counter<u64>,
    queue_age: Histogram<f64>,
    stream_age: Histogram<f64>,
}

static INSTRUMENTS: LazyLock<Instruments> = LazyLock::new(|| {
    let meter = openfloor_telemetry::meter();
    Instruments {
        lag: meter
            .f64_histogram("openfloor_projection_lag_seconds")
            .with_description(
                "From a record's acknowledgement (its id's time) to the stored view that \
                 first includes it",
            )
            .with_boundaries(SECONDS_BUCKETS.to_vec())
            .build(),
        duration: meter
            .f64_histogram("openfloor_projection_duration_seconds")
            .with_description("How long one projection took: read, fold, render, store")
            .with_boundaries(SECONDS_BUCKETS.to_vec())
            .build(),
        records: meter
            .u64_histogram("openfloor_projection_records")
            .with_description("Records folded by one projection (only the new ones where kept)")
            .with_boundaries(vec![1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 1e3, 1e4, 1e5, 1e6])
            .build(),
        view_bytes: meter
            .u64_histogram("openfloor_view_bytes")
            .with_description("Size of each stored view, by view (guest or host)")
            .with_boundaries(vec![1e3, 1e4, 5e4, 1e5, 3.9e5, 1e6, 4e6, 1.6e7])
            .build(),
        verified: meter
            .u64_counter("openfloor_verify_events")
            .with_description("Events whose stored views were compared with their log")
            .build(),
        differences: meter
            .u64_counter("openfloor_verify_differences")
            .with_description("Differences verify found between stored views and their log")
            .build(),
        queue_age: meter
            .f64_histogram("openfloor_queue_age_seconds")
            .with_description(
                "How long a projector command waited in the queue (AWS): from SQS's \
                 SentTimestamp to its handling",
            )
            .with_boundaries(SECONDS_BUCKETS.to_vec())
            .build(),
        stream_age: meter
            .f64_histogram("openfloor_stream_age_seconds")
            .with_description(
                "How old a records-stream change was when the projector took it (AWS): from \
                 the stream's approximate creation time (whole seconds) to its handling",
            )
            .with_boundaries(SECONDS_BUCKETS.to_vec())
            .build(),
    }
});

/// A queued command taken, sent at `sent_at` (milliseconds).
pub fn dequeued(sent_at: u64) {
    INSTRUMENTS.queue_age.record(seconds_since(sent_at), &[]);
}

/// A stream change taken, made at `created_at` (milliseconds).
pub fn streamed(created_at: u64) {
    INSTRUMENTS
        .stream_age
        .record(seconds_since(created_at), &[]);
}

/// Seconds from `at` (milliseconds since the epoch) to now; zero for a time
/// ahead of this clock.
fn seconds_since(at: u64) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "milliseconds of age fit an f64")]
    let seconds = SystemClock.now_ms().saturating_sub(at) as f64 / 1000.0;
    seconds
}

/// One event verified: how many differences it showed, and whether they
/// were to be repaired.
pub fn verified(differences: usize, repair: bool) {
    let instruments = &*INSTRUMENTS;
    let attributes = [KeyValue::new("repair", repair)];
    instruments.verified.add(1, &attributes);
    let differences = u64::try_from(differences).unwrap_or(u64::MAX);
    instruments.differences.add(differences, &attributes);
}

/// One projection: how long it took and how many records it folded; and,
/// when it stored a view, the view's sizes and the lag of each record it
/// newly shows (by the time minted into the record's id).
pub fn projected(took: Duration, folded: u64, stored: Option<&StoredView>, minted: &[u64]) {
    let instruments = &*INSTRUMENTS;
    instruments.duration.record(took.as_secs_f64(), &[]);
    instruments.records.record(folded, &[]);
    let Some(view) = stored else {
        return;
    };
    for (name, rendered) in [("guest", &view.guest), ("host", &view.host)] {
        let bytes = u64::try_from(rendered.json.len()).unwrap_or(u64::MAX);
        instruments
            .view_bytes
            .record(bytes, &[KeyValue::new("view", name)]);
    }
    for &at in minted {
        instruments.lag.record(seconds_since(at), &[]);
    }
}
