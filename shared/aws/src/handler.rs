//! The projector on AWS: what it does with a batch of queue messages. The
//! projector Lambda and the in-process poller (`--backend aws` on one
//! machine) both call [`ProjectorService::handle`], so they cannot drift.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openfloor_domain::ids::EventId;
use openfloor_projector::Projector;
use openfloor_store::{Store, StoreResult};

use crate::queue::{Command, Message, Queue};

pub struct ProjectorService {
    pub projector: Arc<Projector>,
    pub store: Store,
    /// Only events homed here are swept.
    pub region: String,
    pub now_ms: fn() -> u64,
}

/// Wall-clock milliseconds since the epoch.
pub fn system_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One message's body and id, however it arrived (Lambda event or poll).
#[derive(Debug, Clone)]
pub struct Incoming {
    pub id: String,
    pub body: String,
}

impl ProjectorService {
    pub fn new(store: Store, region: String) -> Self {
        Self {
            projector: Projector::new(store.clone()),
            store,
            region,
            now_ms: system_now_ms,
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
                tracing::warn!(%event, %error, "projection failed; the message will be retried");
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
                tracing::warn!(message = %id, %error, "command failed; it will be retried");
                failed.push(id.to_owned());
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
        let v = openfloor_projector::verify::verify_event(&self.store, &meta, false).await?;
        if v.problems.is_empty() {
            tracing::info!(%event, records = v.log_records, "verify: views match the log");
        } else {
            for problem in &v.problems {
                tracing::error!(%event, %problem, "verify: views differ from the log");
            }
        }
        Ok(())
    }

    /// Re-projects every live event of this region; returns how many views
    /// changed (a changed view means a notification had been lost or was
    /// still on its way).
    pub async fn sweep(&self) -> StoreResult<usize> {
        let now = (self.now_ms)();
        let mut changed = 0;
        for meta in self.store.directory.list().await? {
            if meta.region != self.region || meta.is_expired(now) {
                continue;
            }
            let before = self.store.views.get(meta.id).await?.map(|v| v.records);
            if let Some(p) = self.projector.project(meta.id).await? {
                if before != Some(p.records) {
                    changed += 1;
                }
            }
        }
        if changed > 0 {
            tracing::info!(changed, "sweep re-projected events whose views were behind");
        }
        Ok(changed)
    }
}

/// Polls `queue` and handles what arrives until `shutdown`, sweeping every
/// `sweep_every`: the projector of `--backend aws` on one machine.
pub async fn run_poller(
    service: Arc<ProjectorService>,
    queue: Queue,
    sweep_every: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut sweep = tokio::time::interval(sweep_every);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = sweep.tick() => {
                if let Err(error) = service.sweep().await {
                    tracing::warn!(%error, "sweep failed");
                }
            }
            received = queue.receive(Duration::from_secs(1)) => match received {
                Ok(messages) => handle_received(&service, &queue, &messages).await,
                Err(error) => {
                    tracing::warn!(%error, "receiving from the projector queue failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    }
}

/// Handles polled messages: deletes the handled ones, and makes failed ones
/// visible again shortly (after [`crate::queue::MAX_RECEIVES`] receives SQS
/// moves them to the dead-letter queue).
pub async fn handle_received(service: &ProjectorService, queue: &Queue, messages: &[Message]) {
    if messages.is_empty() {
        return;
    }
    let incoming: Vec<Incoming> = messages
        .iter()
        .map(|m| Incoming {
            id: m.id.clone(),
            body: m.body.clone(),
        })
        .collect();
    let failed: BTreeSet<String> = service.handle(&incoming).await.into_iter().collect();
    let done: Vec<&Message> = messages
        .iter()
        .filter(|m| !failed.contains(&m.id))
        .collect();
    if let Err(error) = queue.delete(&done).await {
        tracing::warn!(%error, "deleting handled messages failed; they will be handled again (harmless)");
    }
    for m in messages.iter().filter(|m| failed.contains(&m.id)) {
        let _ = queue.retry_later(m, Duration::from_secs(1)).await;
    }
}
