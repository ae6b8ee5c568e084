//! The command executor: the one way anything changes an event.
//!
//! The API, the Lambda and the operator tools all run commands through
//! [`Executor`]: read what the command declares it needs (one round trip),
//! let the domain decide ([`Command::decide`]), append the decided record
//! under its deterministic key, and tell the projector. When the append
//! finds its key taken (a concurrent request wrote the same n first, or
//! this is a retry), the executor reads and decides again, so the outcome
//! is always the one the latest log state calls for.
//!
//! The executor takes only what it needs: the store, the trigger and the
//! clock, never the HTTP layer's state.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument as _;

use openfloor_domain::clock::Clock;
use openfloor_domain::command::{Command, Decision, Refusal};
use openfloor_domain::ids::{EventId, RecordId};
use openfloor_domain::input::Title;
use openfloor_domain::record::{ClientHash, Record, RecordBody};
use openfloor_domain::secret::HostSecret;
use openfloor_store::{Appended, EventMeta, Store, StoreError, Trigger};

/// How often a command reads and decides again after losing a race for a
/// key before giving up. Losing more than once needs the same voter (or
/// host) to fire many changes of one sequence at once.
pub const MAX_ATTEMPTS: usize = 8;

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<A = Infallible> {
    /// The domain refused it: the client's to fix.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The caller's admission check (a rate limit) said no. Checked only
    /// when there is something to append, so a retry of a done command is
    /// never refused.
    #[error("not admitted")]
    NotAdmitted(A),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Every attempt lost its race for the sequence's next key.
    #[error("gave up after {attempts} lost races on one sequence")]
    Contended { attempts: usize },
}

/// What a command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Executed {
    /// The record that now decides the state: the one appended, or the one
    /// that already made it so (`None`: withdrawing a vote never cast).
    pub record: Option<RecordId>,
    /// Whether this call appended it.
    pub appended: bool,
}

/// What a new event needs besides its title.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub title: Title,
    /// The region that will hold its records and views.
    pub region: String,
    /// How many partitions its records are spread over.
    pub shards: u16,
    /// How long it and its records live.
    pub retention: Duration,
}

/// A new event and the host secret to show once.
pub struct CreatedEvent {
    pub meta: EventMeta,
    pub secret: HostSecret,
}

/// Runs commands against one store.
pub struct Executor {
    store: Store,
    trigger: Arc<dyn Trigger>,
    clock: Arc<dyn Clock>,
    /// Monotonic ULIDs: records minted in one millisecond keep their order.
    ids: Mutex<ulid::Generator>,
}

impl Executor {
    pub fn new(store: Store, trigger: Arc<dyn Trigger>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            trigger,
            clock,
            ids: Mutex::new(ulid::Generator::new()),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// A fresh, time-ordered ULID (for record, event and question ids).
    pub fn mint(&self) -> ulid::Ulid {
        let now = self.clock.now();
        // A panic while minting cannot leave the generator half-updated.
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        // Overflow only happens after 2^80 ids in one millisecond.
        ids.generate_from_datetime(now)
            .unwrap_or_else(|_| ulid::Ulid::from_datetime(now))
    }

    fn record(&self, event: EventId, client: Option<ClientHash>, body: RecordBody) -> Record {
        Record {
            id: RecordId::from_ulid(self.mint()),
            event,
            client,
            body,
        }
    }

    /// Creates an event: its creation record first, then its directory
    /// entry, so an event in the directory always has its title in the log.
    #[tracing::instrument(level = "debug", skip_all, fields(event))]
    pub async fn create_event(&self, new: NewEvent) -> Result<CreatedEvent, StoreError> {
        let secret = HostSecret::generate();
        let now = self.clock.now_ms();
        let id = EventId::from_ulid(self.mint());
        tracing::Span::current().record("event", tracing::field::display(id));
        let retention = u64::try_from(new.retention.as_millis()).unwrap_or(u64::MAX);
        let meta = EventMeta {
            id,
            title: new.title.clone(),
            region: new.region,
            shards: new.shards,
            secret_hash: secret.hash(),
            created_at: now,
            expires_at: now.saturating_add(retention),
        };
        let record = self.record(id, None, RecordBody::EventCreated { title: new.title });
        self.store.log.append(meta.log(), record).await?;
        self.store.directory.create(&meta).await?;
        self.trigger.notify(id);
        Ok(CreatedEvent { meta, secret })
    }

    /// Runs `command` on the event `meta`, recording `client` (a salted
    /// address hash) on what it appends.
    pub async fn execute(
        &self,
        meta: &EventMeta,
        command: &Command,
        client: Option<ClientHash>,
    ) -> Result<Executed, ExecuteError> {
        self.execute_admitted(meta, command, client, || Ok::<(), Infallible>(()))
            .await
    }

    /// Appends `body` as a new record; `None` if its key is taken (someone
    /// wrote it first: the caller reads and decides again).
    async fn append<A>(
        &self,
        meta: &EventMeta,
        client: Option<ClientHash>,
        body: RecordBody,
    ) -> Result<Option<Executed>, ExecuteError<A>> {
        let record = self.record(meta.id, client, body);
        let id = record.id;
        let appended = self
            .store
            .log
            .append(meta.log(), record)
            .instrument(tracing::info_span!("store.append", %id))
            .await?;
        match appended {
            Appended::Inserted => {
                let span = tracing::Span::current();
                span.record("decision", "append");
                span.record("record", tracing::field::display(id));
                self.trigger.notify(meta.id);
                Ok(Some(Executed {
                    record: Some(id),
                    appended: true,
                }))
            }
            Appended::Exists(_) => {
                tracing::debug!("key taken; deciding again");
                Ok(None)
            }
        }
    }

    /// [`Executor::execute`], asking `admit` (once) before the first append.
    /// Nothing is asked when the command is already done or refused, so a
    /// limit never refuses a retry.
    #[tracing::instrument(
        name = "command",
        skip_all,
        fields(
            event = %meta.id,
            command = command.name(),
            question = command.question().map(tracing::field::display),
            decision,
            record,
        )
    )]
    pub async fn execute_admitted<A>(
        &self,
        meta: &EventMeta,
        command: &Command,
        client: Option<ClientHash>,
        admit: impl FnOnce() -> Result<(), A>,
    ) -> Result<Executed, ExecuteError<A>> {
        let log = meta.log();
        let mut admit = Some(admit);
        if let Some(checks) = command.optimistic_reads() {
            // The usual first vote: checks that may be slightly stale, no
            // read of the vote's own sequence, a conditional append. Any
            // other outcome is decided again below from every read.
            let mut found = self
                .store
                .log
                .lookup_recent(log, &checks)
                .instrument(tracing::info_span!(
                    "store.lookup_recent",
                    keys = checks.len()
                ))
                .await?;
            found.push(None);
            if let Decision::Append(body) = command.decide(meta.id, &found) {
                if let Some(admit) = admit.take() {
                    admit().map_err(ExecuteError::NotAdmitted)?;
                }
                if let Some(executed) = self.append(meta, client.clone(), body).await? {
                    return Ok(executed);
                }
            }
        }
        let reads = command.reads();
        for _ in 0..MAX_ATTEMPTS {
            let found = self
                .store
                .log
                .lookup(log, &reads)
                .instrument(tracing::info_span!("store.lookup", keys = reads.len()))
                .await?;
            let body = match command.decide(meta.id, &found) {
                Decision::AlreadySo(record) => {
                    tracing::Span::current().record("decision", "already_so");
                    tracing::debug!("already so; nothing appended");
                    return Ok(Executed {
                        record,
                        appended: false,
                    });
                }
                Decision::Refuse(refusal) => {
                    tracing::Span::current().record("decision", tracing::field::debug(&refusal));
                    return Err(ExecuteError::Refused(refusal));
                }
                Decision::Append(body) => body,
            };
            if let Some(admit) = admit.take() {
                admit().map_err(ExecuteError::NotAdmitted)?;
            }
            if let Some(executed) = self.append(meta, client.clone(), body).await? {
                return Ok(executed);
            }
        }
        tracing::warn!(
            event = %meta.id,
            command = command.name(),
            "gave up after repeated races on one sequence"
        );
        Err(ExecuteError::Contended {
            attempts: MAX_ATTEMPTS,
        })
    }
}
