//! The trigger role: "event X has news". The in-process implementation
//! coalesces: however many times an event is notified while the projector is
//! busy, it is handed out once.

use std::collections::BTreeMap;
use std::sync::Mutex;

use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use openfloor_domain::ids::EventId;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// One record appended to an event, as a change stream reports it (on AWS,
/// the records table's DynamoDB Stream). The records are the truth; this
/// only says which event has news, and where in the stream it was, so that
/// a failed event's position can be reported back for a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touched {
    pub event: EventId,
    /// The stream's sequence number of the change.
    pub position: String,
    /// When the stream got the change, in milliseconds (DynamoDB gives
    /// whole seconds), for the stream's age; `None` where unknown.
    pub created_at: Option<u64>,
    /// The appended record, where the stream carries it (its new image):
    /// then the projector applies it without reading the log.
    pub record: Option<openfloor_domain::record::Record>,
    /// The trace context of the request that appended the record, where
    /// the stream carries it: the projection links back to it.
    pub traceparent: Option<String>,
}

/// Where to read again the changes of a stream batch that its consumer gave
/// up on. On AWS, the records stream's event source mapping sends a
/// description of such a batch (shard and sequence range) to its failure
/// destination, the projector's queue; the stream still holds the changes
/// (for 24 hours; the mapping gives up after at most one).
#[async_trait::async_trait]
pub trait StreamBatches: Send + Sync {
    /// The changes `notice` describes; `None` if `notice` is not the
    /// description of a given-up batch.
    async fn reread(&self, notice: &str) -> Option<crate::StoreResult<Vec<Touched>>>;
}

/// What the projector can be asked to do, as queued on AWS (one JSON
/// message each: `{"command": "project", "event": "…"}`). The projector
/// handles them; the AWS queue carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum ProjectorCommand {
    /// Re-project one event (it has new records).
    Project { event: EventId },
    /// Recompute one event's views from its log and report differences.
    Verify { event: EventId },
    /// Re-project every live event of this region whose view is behind
    /// (repairs lost nudges).
    Sweep,
}

pub trait Trigger: Send + Sync {
    /// Tells the projector that `event` has new records. Cheap, never fails:
    /// a lost notification only delays a view (the sweep repairs it).
    fn notify(&self, event: EventId);
}

/// An event with news, and the traces of the requests that made it (for
/// the projection's span to link to; none where nothing is traced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirty {
    pub event: EventId,
    pub links: Vec<SpanContext>,
}

/// At most this many requests' traces are kept for one projection to link
/// to: enough to follow a vote, bounded under a burst.
pub const MAX_LINKS: usize = 32;

/// An in-process trigger: a set of dirty events plus a wake-up.
#[derive(Default)]
pub struct LocalTrigger {
    /// A set, not a queue: bursts for one event collapse into one entry.
    dirty: Mutex<BTreeMap<EventId, Vec<SpanContext>>>,
    wake: Notify,
}

impl LocalTrigger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until at least one event is dirty, then takes all of them.
    pub async fn next_batch(&self) -> Vec<Dirty> {
        loop {
            let taken = self.take_pending();
            if !taken.is_empty() {
                return taken;
            }
            self.wake.notified().await;
        }
    }

    /// Takes the events dirty now, without waiting (a stop's last round).
    pub fn take_pending(&self) -> Vec<Dirty> {
        std::mem::take(&mut *self.lock())
            .into_iter()
            .map(|(event, links)| Dirty { event, links })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<EventId, Vec<SpanContext>>> {
        // A panic while holding this lock cannot leave the set half-updated
        // (insert and take are single operations), so poisoning is ignored.
        self.dirty.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Trigger for LocalTrigger {
    fn notify(&self, event: EventId) {
        // The span of the request whose append this is (when traced).
        let traced = tracing::Span::current().context();
        let traced = traced.span().span_context().clone();
        let mut dirty = self.lock();
        let links = dirty.entry(event).or_default();
        if traced.is_valid() && links.len() < MAX_LINKS {
            links.push(traced);
        }
        drop(dirty);
        // `notify_one` stores a permit if nobody waits, so a notification
        // between `take` and `notified()` is not lost.
        self.wake.notify_one();
    }
}
