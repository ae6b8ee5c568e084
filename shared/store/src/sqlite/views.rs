//! The in-memory copy of the views table: every view read is served from
//! memory, SQLite keeps the views for restarts and audits.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openfloor_domain::ids::EventId;

use crate::StoredView;

/// Guarded like the table: a view is never replaced by one folding fewer
/// records, except by an operator's [`ViewCache::replace`].
#[derive(Default)]
pub(super) struct ViewCache {
    /// A read-write lock: reads (every client poll) far outnumber puts.
    views: RwLock<HashMap<EventId, Arc<StoredView>>>,
}

impl ViewCache {
    /// Caches `view` unless the cached one folds more records; says whether
    /// it did (then the table is to be written too).
    pub(super) fn offer(&self, event: EventId, view: &Arc<StoredView>) -> bool {
        let mut views = self.write();
        match views.get(&event) {
            Some(cached) if cached.records > view.records => false,
            _ => {
                views.insert(event, view.clone());
                true
            }
        }
    }

    /// Caches `view` whatever is cached (operator repair).
    pub(super) fn replace(&self, event: EventId, view: Arc<StoredView>) {
        self.write().insert(event, view);
    }

    pub(super) fn get(&self, event: EventId) -> Option<Arc<StoredView>> {
        self.read().get(&event).cloned()
    }

    /// Caches a view just read from the table, unless a put cached one
    /// meanwhile (that one is newer); returns the cached view.
    pub(super) fn fill(&self, event: EventId, stored: StoredView) -> Arc<StoredView> {
        self.write()
            .entry(event)
            .or_insert_with(|| Arc::new(stored))
            .clone()
    }

    /// Drops the views of events `keep` refuses (purged events).
    pub(super) fn retain(&self, keep: impl Fn(&EventId) -> bool) {
        self.write().retain(|event, _| keep(event));
    }

    // A panic while holding the lock cannot leave the map half-changed
    // (every change is one map operation), so poisoning is ignored.
    fn read(&self) -> RwLockReadGuard<'_, HashMap<EventId, Arc<StoredView>>> {
        self.views.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<EventId, Arc<StoredView>>> {
        self.views.write().unwrap_or_else(|p| p.into_inner())
    }
}
