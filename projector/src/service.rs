//! The projector as a service of commands
//! ([`ProjectorCommand`](openfloor_store::ProjectorCommand): project, verify,
//! sweep), however they arrive: the projector Lambda's SQS batches
//! and the in-process poller of `--backend aws` on one machine both call
//! [`ProjectorService::handle`], so they cannot drift.

use std::collections::BTreeMap;
use std::sync::Arc;

use openfloor_domain::clock::{Clock, SystemClock};
use openfloor_domain::ids::EventId;
use openfloor_store::{
    cause_chain, ProjectorCommand as Command, Store, StoreResult, Touched, MAX_LINKS,
};
use opentelemetry::trace::SpanContext;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::{metrics, Projector, SweepReport};

pub struct ProjectorService {
    pub projector: Arc<Projector>,
    pub store: Store,
    /// Only events homed here are swept: a region never projects another
    /// region's events.
    pub region: String,
    pub clock: Arc<dyn Clock>,
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
        }
    }

    /// Handles a batch; returns the ids of the messages that failed (for
    /// SQS's partial batch response), so one poison message does not fail
    /// the batch. Project commands for one event are done once.
    pub async fn handle(&self, messages: &[Incoming]) -> Vec<String> {
        let mut failed = Vec::new();
        let mut projects: BTreeMap<EventId, (Vec<&str>, Vec<SpanContext>)> = BTreeMap::new();
        let mut others: Vec<(&Incoming, Command)> = Vec::new();
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
                Err(error) => {
                    tracing::warn!(message = %m.id, %error, "unreadable projector message");
                    failed.push(m.id.clone());
                }
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
            if let Err(error) = self
                .projector
                .project_news(event, Vec::new(), records)
                .await
            {
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

    /// Re-projects every live event of this region whose view is behind;
    /// one event's failure does not stop the others.
    pub async fn sweep(&self) -> StoreResult<SweepReport> {
        self.projector
            .sweep(self.clock.now_ms(), |meta| meta.region == self.region)
            .await
    }
}
