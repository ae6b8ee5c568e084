//! In-memory backend, for tests and as the reference the other backends are
//! checked against. Appends are kept in commit order, so it supports
//! incremental reads like SQLite does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use openfloor_domain::ids::EventId;
use openfloor_domain::record::{Record, RecordKey, Sequence};

use crate::{
    Appended, Directory, EventLog, EventMeta, Log, LogCursor, StoreError, StoreResult, StoredView,
    Views,
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
    ) -> StoreResult<Option<(Vec<Record>, LogCursor)>> {
        let all = lock(&self.records);
        let Some(e) = all.get(&log.event) else {
            return Ok(Some((Vec::new(), cursor)));
        };
        let from = usize::try_from(cursor.0)
            .unwrap_or(usize::MAX)
            .min(e.in_order.len());
        Ok(Some((
            e.in_order[from..].to_vec(),
            LogCursor(e.in_order.len() as u64),
        )))
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
