//! The projector as a service of commands
//! ([`ProjectorCommand`](openfloor_store::ProjectorCommand): project, verify,
//! sweep), however they arrive: the projector Lambda's SQS batches
//! and the in-process poller of `--backend aws` on one machine both call
//! [`ProjectorService::handle`], so they cannot drift.

use std::collections::BTreeMap;
use std::sync::Arc;

use openfloor_domain::clock::{Clock, SystemClock};
use openfloor_domain::ids::EventId;
use openfloor_store::{cause_chain, ProjectorCommand as Command, Store, StoreResult, Touched};

use crate::{Projector, SweepReport};

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
        let mut projects: BTreeMap<EventId, Vec<&str>> = BTreeMap::new();
        let mut others: Vec<(&str, Command)> = Vec::new();
        for m in messages {
            match serde_json::from_str::<Command>(&m.body) {
                Ok(Command::Project { event }) => projects.entry(event).or_default().push(&m.id),
                Ok(command) => others.push((&m.id, command)),
                Err(error) => {
                    tracing::warn!(message = %m.id, %error, "unreadable projector message");
                    failed.push(m.id.clone());
                }
            }
        }
        for (event, ids) in projects {
            if let Err(error) = self.projector.project(event).await {
                tracing::warn!(
                    %event,
                    error = %cause_chain(&error),
                    "projection failed; the message will be retried"
                );
                failed.extend(ids.into_iter().map(str::to_owned));
            }
        }
        for (id, command) in others {
            let outcome = match command {
                Command::Verify { event } => self.verify(event).await,
                Command::Sweep => self.sweep().await.map(drop),
                Command::Project { .. } => unreachable!("gathered above"),
            };
            if let Err(error) = outcome {
                tracing::warn!(
                    message = %id,
                    error = %cause_chain(&error),
                    "command failed; it will be retried"
                );
                failed.push(id.to_owned());
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
            by_event.entry(change.event).or_default().push(change);
        }
        let mut failed = Vec::new();
        for (event, changes) in by_event {
            if let Err(error) = self.projector.project(event).await {
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
