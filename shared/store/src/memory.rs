//! In-memory backend, for tests and as the reference the other backends are
//! checked against. Appends are kept in commit order, so it supports
//! incremental reads like SQLite does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use openfloor_domain::fold::EventState;
use openfloor_domain::ids::EventId;
use openfloor_domain::record::{Record, RecordKey, Sequence};
use openfloor_domain::stored_state::StoredHead;
use openfloor_domain::toggles::ChunkEntries;

use crate::{
    Appended, Directory, EventLog, EventMeta, KeptState, Log, LogCursor, ProjectionStates,
    Salvaged, StateStamp, StoreError, StoreResult, StoredView, Views,
};

#[derive(Default)]
struct EventRecords {
    by_key: BTreeMap<RecordKey, usize>,
    /// In append order; `LogCursor(n)` means "the first n are read".
    in_order: Vec<Record>,
}

#[derive(Default)]
pub struct MemoryStore {
    events: Mutex<BTreeMap<EventId, EventMeta>>,
    records: Mutex<HashMap<EventId, EventRecords>>,
    views: Mutex<HashMap<EventId, Arc<StoredView>>>,
}

/// Every critical section below is a single map operation, so a panic
/// elsewhere cannot leave the maps half-written; poisoning is ignored.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemoryStore {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The three roles backed by one memory store.
    pub fn store() -> crate::Store {
        let m = Self::new();
        crate::Store {
            directory: m.clone(),
            log: m.clone(),
            views: m,
            states: None,
            damage: crate::DamagedEvents::new(),
        }
    }
}

#[async_trait]
impl Directory for MemoryStore {
    async fn create(&self, meta: &EventMeta) -> StoreResult<()> {
        let mut events = lock(&self.events);
        if events.contains_key(&meta.id) {
            return Err(StoreError::AlreadyExists(format!("event {}", meta.id)));
        }
        events.insert(meta.id, meta.clone());
        Ok(())
    }

    async fn get(&self, id: EventId) -> StoreResult<Option<EventMeta>> {
        Ok(lock(&self.events).get(&id).cloned())
    }

    async fn list(&self) -> StoreResult<Vec<EventMeta>> {
        Ok(lock(&self.events).values().cloned().collect())
    }
}

#[async_trait]
impl Log for MemoryStore {
    async fn append(&self, log: EventLog, record: Record) -> StoreResult<Appended> {
        let mut all = lock(&self.records);
        let event = all.entry(log.event).or_default();
        let key = record.key();
        if let Some(&i) = event.by_key.get(&key) {
            return Ok(Appended::Exists(event.in_order[i].clone()));
        }
        event.by_key.insert(key, event.in_order.len());
        event.in_order.push(record);
        Ok(Appended::Inserted)
    }

    async fn get(&self, log: EventLog, key: &RecordKey) -> StoreResult<Option<Record>> {
        let all = lock(&self.records);
        Ok(all
            .get(&log.event)
            .and_then(|e| e.by_key.get(key).map(|&i| e.in_order[i].clone())))
    }

    async fn latest(&self, log: EventLog, sequence: &Sequence) -> StoreResult<Option<Record>> {
        let prefix = sequence.prefix();
        let all = lock(&self.records);
        Ok(all.get(&log.event).and_then(|e| {
            e.by_key
                .range(RecordKey::from_stored(prefix.clone())..)
                .take_while(|(k, _)| k.as_str().starts_with(&prefix))
                .last()
                .map(|(_, &i)| e.in_order[i].clone())
        }))
    }

    async fn read_event(&self, log: EventLog) -> StoreResult<Vec<Record>> {
        Ok(lock(&self.records)
            .get(&log.event)
            .map(|e| e.in_order.clone())
            .unwrap_or_default())
    }

    async fn read_since(
        &self,
        log: EventLog,
        cursor: LogCursor,
    ) -> StoreResult<Option<(Salvaged, LogCursor)>> {
        let all = lock(&self.records);
        let Some(e) = all.get(&log.event) else {
            return Ok(Some((Salvaged::default(), cursor)));
        };
        let from = usize::try_from(cursor.0)
            .unwrap_or(usize::MAX)
            .min(e.in_order.len());
        // Records are kept decoded here: none is ever damaged.
        let records = e.in_order[from..].to_vec();
        let read = Salvaged {
            records,
            damaged: Vec::new(),
        };
        Ok(Some((read, LogCursor(e.in_order.len() as u64))))
    }
}

#[async_trait]
impl Views for MemoryStore {
    async fn put(&self, event: EventId, view: Arc<StoredView>) -> StoreResult<bool> {
        let mut views = lock(&self.views);
        match views.get(&event) {
            Some(stored) if stored.records > view.records => Ok(false),
            _ => {
                views.insert(event, view);
                Ok(true)
            }
        }
    }

    async fn get(&self, event: EventId) -> StoreResult<Option<Arc<StoredView>>> {
        Ok(lock(&self.views).get(&event).cloned())
    }

    async fn replace(&self, event: EventId, view: Arc<StoredView>) -> StoreResult<()> {
        lock(&self.views).insert(event, view);
        Ok(())
    }
}

/// Projection states in memory, stored piece by piece as a durable backend
/// stores them (a head, and toggle chunks named by the version that wrote
/// them): for testing the projector as it runs where its memory does not
/// last.
#[derive(Default)]
pub struct MemoryStates {
    states: Mutex<HashMap<EventId, StoredState>>,
    /// How many toggle chunks were read by loads, for tests of what a
    /// load reads.
    chunks_read: std::sync::atomic::AtomicUsize,
}

struct StoredState {
    version: u64,
    head: StoredHead,
    /// Per chunk index: its piece's name and entries.
    chunks: Vec<(String, ChunkEntries)>,
}

impl MemoryStates {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Toggle chunks read by loads so far.
    pub fn chunks_read(&self) -> usize {
        self.chunks_read.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[async_trait]
impl ProjectionStates for MemoryStates {
    async fn load(&self, event: EventId, kept: Option<KeptState>) -> StoreResult<KeptState> {
        let states = lock(&self.states);
        let Some(stored) = states.get(&event) else {
            return Ok(KeptState {
                state: EventState::new(event),
                stamp: StateStamp::default(),
            });
        };
        let pieces: Vec<String> = stored.chunks.iter().map(|(name, _)| name.clone()).collect();
        if kept
            .as_ref()
            .is_some_and(|k| k.stamp.version == stored.version && k.stamp.pieces == pieces)
        {
            return Ok(kept.expect("checked just above"));
        }
        let known = kept
            .as_ref()
            .map(|k| k.stamp.pieces.clone())
            .unwrap_or_default();
        let unstored = kept
            .as_ref()
            .map(|k| k.state.unstored_toggle_chunks())
            .unwrap_or_default();
        let same_layout = known.len() == stored.chunks.len();
        let read: Vec<(usize, ChunkEntries)> = stored
            .chunks
            .iter()
            .enumerate()
            .filter(|(index, (name, _))| {
                !same_layout || known[*index] != *name || unstored.contains(index)
            })
            .map(|(index, (_, entries))| (index, entries.clone()))
            .collect();
        self.chunks_read
            .fetch_add(read.len(), std::sync::atomic::Ordering::Relaxed);
        let state = EventState::from_stored(stored.head.clone(), read, kept.map(|k| k.state))
            .map_err(|e| StoreError::corrupt_msg(format!("the state of event {event}: {e}")))?;
        Ok(KeptState {
            state,
            stamp: StateStamp {
                version: stored.version,
                pieces: stored.chunks.iter().map(|(name, _)| name.clone()).collect(),
            },
        })
    }

    async fn store(&self, kept: &mut KeptState) -> StoreResult<bool> {
        let event = kept.state.event;
        let mut states = lock(&self.states);
        let current = states.get(&event).map_or(0, |s| s.version);
        if current != kept.stamp.version {
            return Ok(false);
        }
        let version = current + 1;
        let head = kept.state.stored_head();
        let count = head.toggle_chunks as usize;
        let mut chunks = match states.remove(&event) {
            Some(stored) if stored.chunks.len() == count => stored.chunks,
            _ => vec![(String::new(), ChunkEntries::new()); count],
        };
        for (index, entries) in kept.state.changed_toggle_chunks() {
            chunks[index] = (format!("{version}-{index}"), entries);
        }
        kept.stamp = StateStamp {
            version,
            pieces: chunks.iter().map(|(name, _)| name.clone()).collect(),
        };
        kept.state.mark_stored();
        states.insert(
            event,
            StoredState {
                version,
                head,
                chunks,
            },
        );
        Ok(true)
    }
}
