//! openfloor's storage roles, one trait each (DESIGN.md, "Storage roles"):
//!
//! - [`Directory`]: event → home region, shard count, secret hash, expiry.
//!   Written once per event.
//! - [`Log`]: an event's append-only records, each stored once under its
//!   deterministic key.
//! - [`Views`]: the rendered views and how many records they fold, written
//!   with a guard so that a view never regresses.
//! - [`Trigger`]: "event X has news", coalesced.
//! - [`ProjectionStates`] (only where a projector's memory does not last,
//!   as on Lambda): each event's folded state between projections, so a
//!   projection reads only the records that are new.
//!
//! Backends: [`memory`] (tests) and [`sqlite`] (the embedded default). The
//! DynamoDB/SQS backends implement the same traits.

use std::sync::Arc;

use async_trait::async_trait;
use openfloor_domain::fold::EventState;
use openfloor_domain::ids::{EventId, RecordId};
use openfloor_domain::input::Title;
use openfloor_domain::record::{Record, RecordKey, Sequence};
use openfloor_domain::secret::SecretHash;
use openfloor_domain::view::RenderedView;
use openfloor_domain::Millis;
use serde::{Deserialize, Serialize};

pub mod cause;
pub mod damage;
pub mod memory;
pub mod sqlite;
pub mod trigger;

pub use cause::cause_chain;
pub use damage::{DamagedEvents, DamagedRecord, Salvaged};
pub use trigger::{
    Dirty, LocalTrigger, ProjectorCommand, StreamBatches, Touched, Trigger, MAX_LINKS,
};

/// Any error a backend hands up as the cause of a [`StoreError`]
/// (`rusqlite::Error`, `serde_json::Error`, an AWS SDK error, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a storage call failed. None of these is the caller's fault.
///
/// Each carries what was being done (`context`) and, where there is one,
/// the underlying error as its [`source`](std::error::Error::source), so
/// whoever logs it can log the whole chain. Nothing here logs.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot take more work right now; retry shortly.
    #[error("storage is overloaded: {context}")]
    Overloaded {
        context: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The store (or the path to it) is down.
    #[error("storage unavailable: {context}")]
    Unavailable {
        context: String,
        #[source]
        source: Option<BoxError>,
    },
    /// Stored data could not be read back; a bug or a damaged store.
    #[error("stored data is corrupt: {context}")]
    Corrupt {
        context: String,
        #[source]
        source: Option<BoxError>,
    },
    /// A write that must happen once (an event's directory entry) found the
    /// slot already taken.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// An item would break a hard limit of the store (DynamoDB's 400 KB).
    #[error("too large for the store: {0}")]
    TooLarge(String),
}

impl StoreError {
    /// [`StoreError::Overloaded`] while doing `context`, caused by `source`.
    pub fn overloaded(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Overloaded {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// [`StoreError::Overloaded`] noticed by openfloor itself (no cause).
    pub fn overloaded_msg(context: impl Into<String>) -> Self {
        Self::Overloaded {
            context: context.into(),
            source: None,
        }
    }

    /// [`StoreError::Unavailable`] while doing `context`, caused by `source`.
    pub fn unavailable(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// [`StoreError::Unavailable`] noticed by openfloor itself (no cause).
    pub fn unavailable_msg(context: impl Into<String>) -> Self {
        Self::Unavailable {
            context: context.into(),
            source: None,
        }
    }

    /// [`StoreError::Corrupt`] while doing `context`, caused by `source`.
    pub fn corrupt(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Corrupt {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// [`StoreError::Corrupt`] noticed by openfloor itself (no cause).
    pub fn corrupt_msg(context: impl Into<String>) -> Self {
        Self::Corrupt {
            context: context.into(),
            source: None,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// An event's directory entry (DESIGN.md: directory role).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMeta {
    pub id: EventId,
    pub title: Title,
    /// The region that holds the event's records and views.
    pub region: String,
    /// How many partitions the event's records are spread over.
    pub shards: u16,
    pub secret_hash: SecretHash,
    pub created_at: Millis,
    /// After this the event is gone to clients and its records may be purged.
    pub expires_at: Millis,
}

impl EventMeta {
    pub fn log(&self) -> EventLog {
        EventLog {
            event: self.id,
            shards: self.shards,
            expires_at: self.expires_at,
        }
    }

    pub fn is_expired(&self, now: Millis) -> bool {
        now >= self.expires_at
    }
}

/// The address of one event's log: its id, how many shards it spans, and
/// when its records expire (backends with TTL store it on each record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventLog {
    pub event: EventId,
    pub shards: u16,
    pub expires_at: Millis,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// The record is now durable.
    Inserted,
    /// A record with the same key was already stored (a retry, or a race
    /// lost): here it is, so the caller can tell a retry from a conflict.
    Exists(Record),
}

/// One point read of [`Log::lookup`]: what a command declares it needs.
pub use openfloor_domain::command::Lookup;

/// Where an incremental reader of one event's log has got to. Opaque to
/// callers; only backends that append in commit order hand them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogCursor(pub u64);

#[async_trait]
pub trait Directory: Send + Sync {
    /// Registers a new event. Fails with [`StoreError::AlreadyExists`] if
    /// the id is taken.
    async fn create(&self, meta: &EventMeta) -> StoreResult<()>;
    async fn get(&self, id: EventId) -> StoreResult<Option<EventMeta>>;
    /// Every event, for sweeps and `verify --all`.
    async fn list(&self) -> StoreResult<Vec<EventMeta>>;
}

#[async_trait]
pub trait Log: Send + Sync {
    /// Stores `record` unless its key is taken, and says which happened.
    /// Returns only once an inserted record is durable.
    async fn append(&self, log: EventLog, record: Record) -> StoreResult<Appended>;
    /// The record stored under `key`.
    async fn get(&self, log: EventLog, key: &RecordKey) -> StoreResult<Option<Record>>;
    /// The record with the highest n in `sequence`.
    async fn latest(&self, log: EventLog, sequence: &Sequence) -> StoreResult<Option<Record>>;
    /// Several point reads at once, answered in order. A write path needs
    /// two or three (does the question exist, is it hidden, what did this
    /// voter do last); backends answer them in one round trip.
    async fn lookup(&self, log: EventLog, lookups: &[Lookup]) -> StoreResult<Vec<Option<Record>>> {
        let mut out = Vec::with_capacity(lookups.len());
        for l in lookups {
            out.push(match l {
                Lookup::Key(key) => self.get(log, key).await?,
                Lookup::Latest(seq) => self.latest(log, seq).await?,
            });
        }
        Ok(out)
    }

    /// [`Log::lookup`] where a slightly stale answer will do: the checks
    /// that a command may be appended (does the question exist, is it
    /// hidden), never the deciding read of a command's own sequence. A
    /// backend with cheaper eventually consistent reads (DynamoDB: half the
    /// price) uses them here; the others answer as `lookup` does.
    async fn lookup_recent(
        &self,
        log: EventLog,
        lookups: &[Lookup],
    ) -> StoreResult<Vec<Option<Record>>> {
        self.lookup(log, lookups).await
    }
    /// All of the event's records, in no particular order (the fold does not
    /// care): every page, every shard, strongly consistent. Fails if any
    /// record cannot be read back: for callers that need the whole log or
    /// nothing (an export, an audit); see [`Log::read_salvaged`].
    async fn read_event(&self, log: EventLog) -> StoreResult<Vec<Record>>;
    /// [`Log::read_event`], with each record that cannot be read back
    /// handed up apart from the others instead of failing the read, so one
    /// damaged row cannot freeze its event (the projector, `verify`). By
    /// default a backend that cannot tell one bad record from a failed read
    /// fails as `read_event` does.
    async fn read_salvaged(&self, log: EventLog) -> StoreResult<Salvaged> {
        Ok(Salvaged {
            records: self.read_event(log).await?,
            damaged: Vec::new(),
        })
    }
    /// Up to `limit` records with ids above `after`, in record-id order.
    /// By default the whole event is read and ordered here; backends with
    /// an index by record id do better.
    async fn read_page(
        &self,
        log: EventLog,
        after: Option<RecordId>,
        limit: usize,
    ) -> StoreResult<Vec<Record>> {
        let mut records = self.read_event(log).await?;
        records.retain(|r| after.is_none_or(|a| r.id > a));
        records.sort_by_key(|r| r.id);
        records.truncate(limit);
        Ok(records)
    }
    /// Appends many records (an import), each stored once; returns how many
    /// were new. Backends may commit them together.
    async fn append_batch(&self, log: EventLog, records: Vec<Record>) -> StoreResult<u64> {
        let mut inserted = 0;
        for record in records {
            if self.append(log, record).await? == Appended::Inserted {
                inserted += 1;
            }
        }
        Ok(inserted)
    }
    /// Records appended after `cursor`, with the cursor to continue from
    /// (past damaged records too, which come apart, as from
    /// [`Log::read_salvaged`]); `None` where the backend cannot promise
    /// commit order (then callers read the whole event).
    async fn read_since(
        &self,
        _log: EventLog,
        _cursor: LogCursor,
    ) -> StoreResult<Option<(Salvaged, LogCursor)>> {
        Ok(None)
    }
}

/// A stored projection: both rendered views and how many records they fold.
#[derive(Debug, Clone)]
pub struct StoredView {
    /// The guard: a view folding fewer records never replaces this one.
    pub records: u64,
    pub guest: RenderedView,
    pub host: RenderedView,
    /// When the projector made it (milliseconds; 0 where unknown: views
    /// stored before this was kept, a replay), so the host can be told how
    /// fresh the board is.
    pub projected_at: Millis,
    /// How many questions the event has been asked, hidden and answered
    /// ones included (0 where unknown: views stored before this was kept):
    /// what the cap on questions per event is checked against.
    pub questions: u64,
}

impl StoredView {
    /// What keeping it in memory weighs, for caches bounded in bytes: its
    /// two views' bytes (saturating at `u32::MAX`, a cache weigher's type).
    pub fn weight(&self) -> u32 {
        u32::try_from(self.guest.json.len() + self.host.json.len()).unwrap_or(u32::MAX)
    }
}

/// Two views are the same when they fold the same records into the same
/// bytes; when each was made is not part of what they say (a replay made
/// now equals the view the projector stored earlier). Code that cares when
/// a view was made reads `projected_at` itself.
impl PartialEq for StoredView {
    fn eq(&self, other: &Self) -> bool {
        self.records == other.records && self.guest == other.guest && self.host == other.host
    }
}

impl Eq for StoredView {}

/// What a poll with `If-None-Match` needs of the stored views: their
/// versions (entity tags) and when they were made, without their bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewVersions {
    pub records: u64,
    pub guest: String,
    pub host: String,
    pub projected_at: Millis,
    /// As [`StoredView::questions`].
    pub questions: u64,
}

impl From<&StoredView> for ViewVersions {
    fn from(view: &StoredView) -> Self {
        Self {
            records: view.records,
            guest: view.guest.version.clone(),
            host: view.host.version.clone(),
            projected_at: view.projected_at,
            questions: view.questions,
        }
    }
}

#[async_trait]
pub trait Views: Send + Sync {
    /// Stores `view` unless the stored one folds more records; says whether
    /// it was stored.
    async fn put(&self, event: EventId, view: Arc<StoredView>) -> StoreResult<bool>;
    async fn get(&self, event: EventId) -> StoreResult<Option<Arc<StoredView>>>;
    /// How many records the stored views fold, without reading the views
    /// themselves where a backend can avoid it (a sweep's check).
    async fn stored_records(&self, event: EventId) -> StoreResult<Option<u64>> {
        Ok(self.get(event).await?.map(|view| view.records))
    }
    /// The views as they were recently (on DynamoDB: eventually consistent,
    /// half the price; usually under a second behind): for polls, which
    /// are a second apart anyway. Never for the projector's own decisions.
    async fn get_recent(&self, event: EventId) -> StoreResult<Option<Arc<StoredView>>> {
        self.get(event).await
    }
    /// The recent views' versions alone, for a poll that may be answered
    /// `304 Not Modified`: where views are large and billed by the byte
    /// (DynamoDB), a small item of their own, never older than the views.
    async fn recent_versions(&self, event: EventId) -> StoreResult<Option<ViewVersions>> {
        Ok(self.get_recent(event).await?.map(|view| (&*view).into()))
    }
    /// Stores `view` whatever is stored: only for an operator's repair
    /// (`verify --repair`), when the stored view is known to be wrong.
    async fn replace(&self, event: EventId, view: Arc<StoredView>) -> StoreResult<()>;
}

/// Which stored version of an event's projection state a projector holds,
/// and the names of the pieces it is stored in (the backend's business).
/// No pieces: nothing is stored (version 0), or what was stored is lost;
/// either way the state must be folded from the whole log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateStamp {
    /// 0: nothing is stored yet.
    pub version: u64,
    pub pieces: Vec<String>,
}

/// An event's folded state, as loaded or stored at `stamp`.
#[derive(Debug, Clone)]
pub struct KeptState {
    pub state: EventState,
    pub stamp: StateStamp,
}

/// Each event's folded state, kept between projections in durable storage
/// (DESIGN.md, "Incremental projection on AWS"). The state is the fold's
/// own, so applying any records to it, again or in any order, is exact;
/// the versions make concurrent projectors of one event take turns.
#[async_trait]
pub trait ProjectionStates: Send + Sync {
    /// The stored state of `event` (an empty one if none is stored). With
    /// `kept`, this projector's copy of an earlier version, only what
    /// changed since is read; if `kept` is the stored version, nothing but
    /// the version is.
    async fn load(&self, event: EventId, kept: Option<KeptState>) -> StoreResult<KeptState>;
    /// Stores what changed in `kept.state` as the version after
    /// `kept.stamp`, and moves the stamp on. `Ok(false)`: another
    /// projector stored that version first; load again, apply the records
    /// again, and store again.
    async fn store(&self, kept: &mut KeptState) -> StoreResult<bool>;
}

/// The storage roles of one deployment, as the API and projector use them,
/// and what is known to be damaged in them.
#[derive(Clone)]
pub struct Store {
    pub directory: Arc<dyn Directory>,
    pub log: Arc<dyn Log>,
    pub views: Arc<dyn Views>,
    /// Where projectors keep states between runs; `None` where they keep
    /// them in memory and follow the log's commit order (SQLite, memory).
    pub states: Option<Arc<dyn ProjectionStates>>,
    /// The events whose stored records cannot all be read back, as those
    /// who read events whole found them (shown by `/healthz` and metrics).
    pub damage: DamagedEvents,
}
