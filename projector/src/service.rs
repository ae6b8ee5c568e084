//! The projector as a service of commands
//! ([`ProjectorCommand`](openfloor_store::ProjectorCommand): project, verify,
//! sweep), however they arrive: the projector Lambda's SQS batches
//! and the in-process poller of `--backend aws` on one machine both call
//! [`ProjectorService::handle`], so they cannot drift.

use std::collections::BTreeMap;
use std::sync::Arc;

use openfloor_domain::clock::{Clock, SystemClock};
use openfloor_domain::ids::EventId;
use openfloor_domain::Millis;
use openfloor_store::{
    cause_chain, EventMeta, ProjectorCommand as Command, Store, StoreResult, StreamBatches,
    Touched, MAX_LINKS,
};
use opentelemetry::trace::SpanContext;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::verify::verify_event;
use crate::{metrics, Projector, SweepReport};

pub struct ProjectorService {
    pub projector: Arc<Projector>,
    pub store: Store,
    /// Only events homed here are swept: a region never projects another
    /// region's events.
    pub region: String,
    pub clock: Arc<dyn Clock>,
    /// Where the changes of a given-up stream batch are read again, when
    /// its description arrives on the queue (AWS).
    pub stream_batches: Option<Arc<dyn StreamBatches>>,
}

/// One message's body and id, however it arrived (Lambda event or poll).
#[derive(Debug, Clone)]
pub struct Incoming {
    pub id: String,
    pub body: String,
    /// When the queue accepted it, in milliseconds (for the queue's age).
    pub sent_at: Option<u64>,
    /// The sender's trace context (W3C `traceparent`): the work it asks for
    /// links back to it.
    pub traceparent: Option<String>,
}

impl Incoming {
    /// The span that sent this message, if it was traced.
    fn linked_span(&self) -> Option<SpanContext> {
        openfloor_telemetry::linked_span(self.traceparent.as_deref()?)
    }
}

impl ProjectorService {
    pub fn new(store: Store, region: String) -> Self {
        Self::with_clock(store, region, Arc::new(SystemClock))
    }

    pub fn with_clock(store: Store, region: String, clock: Arc<dyn Clock>) -> Self {
        Self {
            projector: Projector::for_region(store.clone(), region.clone()),
            store,
            region,
            clock,
            stream_batches: None,
        }
    }

    /// This service, also taking descriptions of given-up stream batches
    /// from the queue and projecting their changes again.
    pub fn rereading(mut self, batches: Arc<dyn StreamBatches>) -> Self {
        self.stream_batches = Some(batches);
        self
    }

    /// Handles a batch; returns the ids of the messages that failed (for
    /// SQS's partial batch response), so one poison message does not fail
    /// the batch. Project commands for one event are done once.
    pub async fn handle(&self, messages: &[Incoming]) -> Vec<String> {
        let mut failed = Vec::new();
        let mut projects: BTreeMap<EventId, (Vec<&str>, Vec<SpanContext>)> = BTreeMap::new();
        let mut others: Vec<(&Incoming, Command)> = Vec::new();
        let mut given_up: Vec<(&Incoming, Vec<Touched>)> = Vec::new();
        for m in messages {
            if let Some(sent_at) = m.sent_at {
                metrics::dequeued(sent_at);
            }
            match serde_json::from_str::<Command>(&m.body) {
                Ok(Command::Project { event }) => {
                    let (ids, links) = projects.entry(event).or_default();
                    ids.push(&m.id);
                    links.extend(m.linked_span());
                }
                Ok(command) => others.push((m, command)),
                Err(error) => match self.reread(&m.body).await {
                    Some(Ok(changes)) => given_up.push((m, changes)),
                    Some(Err(e)) => {
                        tracing::warn!(
                            message = %m.id,
                            error = %cause_chain(&e),
                            "a given-up stream batch cannot be read again; retrying"
                        );
                        failed.push(m.id.clone());
                    }
                    None => {
                        tracing::warn!(message = %m.id, %error, "unreadable projector message");
                        failed.push(m.id.clone());
                    }
                },
            }
        }
        // A stream batch its mapping gave up on: its changes are projected
        // again (exact however often: the state is the fold's own). If they
        // fail again, the message is retried, then dead-lettered.
        for (message, changes) in given_up {
            tracing::warn!(
                message = %message.id,
                changes = changes.len(),
                "projecting a given-up stream batch again"
            );
            if !self.handle_touched(&changes).await.is_empty() {
                failed.push(message.id.clone());
            }
        }
        for (event, (ids, mut links)) in projects {
            links.truncate(MAX_LINKS);
            if let Err(error) = self.projector.project_linked(event, links).await {
                tracing::warn!(
                    %event,
                    error = %cause_chain(&error),
                    "projection failed; the message will be retried"
                );
                failed.extend(ids.into_iter().map(str::to_owned));
            }
        }
        for (message, command) in others {
            let span = tracing::info_span!("queued_command", message = %message.id);
            if let Some(link) = message.linked_span() {
                span.add_link(link);
            }
            let outcome = async {
                match command {
                    Command::Verify { event } => self.verify(event).await,
                    Command::Sweep => self.sweep().await.map(drop),
                    Command::Project { .. } => unreachable!("gathered above"),
                }
            }
            .instrument(span)
            .await;
            if let Err(error) = outcome {
                let id = &message.id;
                tracing::warn!(
                    message = %id,
                    error = %cause_chain(&error),
                    "command failed; it will be retried"
                );
                failed.push(id.clone());
            }
        }
        failed
    }

    async fn reread(&self, body: &str) -> Option<StoreResult<Vec<Touched>>> {
        self.stream_batches.as_ref()?.reread(body).await
    }

    /// Handles a batch of stream changes: each touched event is projected
    /// once, however many of its records the batch holds. Returns the
    /// changes whose event failed: the Lambda reports their positions in
    /// its partial batch response (the stream redelivers from the lowest),
    /// the in-process reader tries their events again. One event's failure
    /// never holds back the others in the batch.
    pub async fn handle_touched(&self, changes: &[Touched]) -> Vec<Touched> {
        let mut by_event: BTreeMap<EventId, Vec<&Touched>> = BTreeMap::new();
        for change in changes {
            if let Some(created_at) = change.created_at {
                metrics::streamed(created_at);
            }
            by_event.entry(change.event).or_default().push(change);
        }
        let mut failed = Vec::new();
        for (event, changes) in by_event {
            // The records themselves, if the stream carried every one.
            let records: Option<Vec<_>> = changes.iter().map(|c| c.record.clone()).collect();
            // Its projection links back to the requests that appended them.
            let links: Vec<SpanContext> = changes
                .iter()
                .filter_map(|c| openfloor_telemetry::linked_span(c.traceparent.as_deref()?))
                .take(MAX_LINKS)
                .collect();
            if let Err(error) = self.projector.project_news(event, links, records).await {
                tracing::warn!(
                    %event,
                    error = %cause_chain(&error),
                    "projection failed; the stream will redeliver"
                );
                failed.extend(changes.into_iter().cloned());
            }
        }
        failed
    }

    /// Reports (in the logs) how the stored views differ from the log;
    /// repairs nothing: that is an operator's decision (`verify --repair`).
    async fn verify(&self, event: EventId) -> StoreResult<()> {
        let Some(meta) = self.store.directory.get(event).await? else {
            tracing::warn!(%event, "verify: no such event");
            return Ok(());
        };
        let v = crate::verify::verify_event(&self.store, &meta, false).await?;
        if v.problems.is_empty() {
            tracing::info!(%event, records = v.log_records, "verify: views match the log");
        } else {
            for problem in &v.problems {
                tracing::error!(%event, %problem, "verify: views differ from the log");
            }
        }
        Ok(())
    }

    /// The audit of a sample of this region's live events (see
    /// [`SWEEP_SAMPLE`]): each is projected from its whole log (records
    /// the stream never delivered reach its state and views), then its
    /// views are compared with a full recompute of the log, and any
    /// difference is logged and counted (`openfloor_verify_differences`).
    /// One event's failure does not stop the others.
    pub async fn sweep(&self) -> StoreResult<SweepReport> {
        let now = self.clock.now_ms();
        let live: Vec<EventMeta> = self
            .store
            .directory
            .list()
            .await?
            .into_iter()
            .filter(|meta| !meta.is_expired(now) && meta.region == self.region)
            .collect();
        let sample = sweep_sample(live, now, SWEEP_SAMPLE);
        let mut report = self.projector.sweep_events(sample.clone()).await?;
        for meta in &sample {
            match verify_event(&self.store, meta, false).await {
                // Records appended since the projection: the event moved
                // on, and its views are not judged this time.
                Ok(found) if found.view_records != Some(found.log_records) => {}
                Ok(found) => {
                    report.verified += 1;
                    if !found.problems.is_empty() {
                        report.differed += 1;
                        tracing::warn!(
                            event = %meta.id,
                            problems = ?found.problems,
                            "sweep: the views differ from a full recompute of their log"
                        );
                    }
                }
                Err(error) => tracing::warn!(
                    event = %meta.id,
                    error = %cause_chain(&error),
                    "sweep: verifying the event failed; going on"
                ),
            }
        }
        Ok(report)
    }
}

/// How many live events one sweep audits on AWS. The records stream keeps
/// views current, and the batches its mapping gives up on are read again,
/// so the sweep is an audit, not how news arrives: it reads each sampled
/// event's whole log twice (to project, then to verify), and a bounded
/// sample keeps its cost from growing with the region.
pub const SWEEP_SAMPLE: usize = 20;

/// The `size` events (sorted by id) a sweep at `now` audits: a window that
/// moves on by `size` each minute, so that consecutive sweeps cover every
/// live event in turn, with no state kept between them.
fn sweep_sample(live: Vec<EventMeta>, now: Millis, size: usize) -> Vec<EventMeta> {
    if live.len() <= size {
        return live;
    }
    let minute = usize::try_from(now / 60_000).unwrap_or(usize::MAX);
    let start = minute.wrapping_mul(size) % live.len();
    live.iter()
        .cycle()
        .skip(start)
        .take(size)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use openfloor_domain::ids::EventId;
    use openfloor_testing::fixtures;

    #[test]
    fn consecutive_sweeps_audit_every_live_event_in_turn() {
        let live: Vec<EventMeta> = (0..45u128)
            .map(|i| fixtures::event_meta(EventId::from_ulid(ulid::Ulid::from_parts(1, i))).build())
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for minute in 0..3 {
            let sample = sweep_sample(live.clone(), minute * 60_000, 20);
            assert_eq!(sample.len(), 20);
            seen.extend(sample.iter().map(|m| m.id));
        }
        assert_eq!(seen.len(), 45, "three sweeps of 20 cover 45 events");
        assert_eq!(sweep_sample(live[..5].to_vec(), 0, 20).len(), 5);
    }
}
