//! The in-memory copy of the views table: polls of the events people are
//! following are served from memory, SQLite keeps every view for restarts,
//! audits and the events not in memory.

use std::sync::Arc;

use moka::ops::compute::Op;
use moka::sync::Cache;
use openfloor_domain::ids::EventId;

use crate::StoredView;

/// How many bytes of views are kept in memory unless told otherwise.
pub const DEFAULT_VIEW_CACHE_BYTES: u64 = 128 * 1024 * 1024;

/// Guarded like the table: a view is never replaced by one folding fewer
/// records, except by an operator's [`ViewCache::replace`]. Bounded by the
/// views' bytes: beyond it, the least used views are dropped (and read from
/// the table when next polled), so a flood of events cannot grow memory.
pub(super) struct ViewCache {
    views: Cache<EventId, Arc<StoredView>>,
}

impl ViewCache {
    /// A cache of up to `bytes` of views.
    pub(super) fn new(bytes: u64) -> Self {
        Self {
            views: Cache::builder()
                .max_capacity(bytes)
                .weigher(|_, view: &Arc<StoredView>| {
                    let bytes = view.guest.json.len() + view.host.json.len();
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .build(),
        }
    }

    /// Caches `view` unless the cached one folds more records; says whether
    /// the table is to be written too. A view not in memory (never read, or
    /// dropped) is not cached here: the table's guard decides, and only a
    /// view it stored is [remembered](ViewCache::remember), so an older
    /// view never stands in memory for a newer one on disk.
    pub(super) fn offer(&self, event: EventId, view: &Arc<StoredView>) -> bool {
        let mut offered = false;
        self.views
            .entry(event)
            .and_compute_with(|cached| match cached {
                Some(cached) if cached.value().records > view.records => Op::Nop,
                Some(_) => {
                    offered = true;
                    Op::Put(view.clone())
                }
                None => {
                    offered = true;
                    Op::Nop
                }
            });
        offered
    }

    /// Caches `view`, which the table stored, unless a newer one is cached.
    pub(super) fn remember(&self, event: EventId, view: Arc<StoredView>) {
        self.views
            .entry(event)
            .and_compute_with(|cached| match cached {
                Some(cached) if cached.value().records > view.records => Op::Nop,
                _ => Op::Put(view),
            });
    }

    /// Caches `view` whatever is cached (operator repair).
    pub(super) fn replace(&self, event: EventId, view: Arc<StoredView>) {
        self.views.insert(event, view);
    }

    pub(super) fn get(&self, event: EventId) -> Option<Arc<StoredView>> {
        self.views.get(&event)
    }

    /// Caches a view just read from the table, unless a put cached one at
    /// least as new meanwhile; returns the cached view.
    pub(super) fn fill(&self, event: EventId, stored: StoredView) -> Arc<StoredView> {
        let stored = Arc::new(stored);
        let mut kept = stored.clone();
        self.views
            .entry(event)
            .and_compute_with(|cached| match cached {
                Some(cached) if cached.value().records >= stored.records => {
                    kept = cached.into_value();
                    Op::Nop
                }
                _ => Op::Put(stored),
            });
        kept
    }

    /// The bytes of views held now.
    pub(super) fn bytes(&self) -> u64 {
        self.views.run_pending_tasks();
        self.views.weighted_size()
    }

    /// Drops the views of events `keep` refuses (purged events).
    pub(super) fn retain(&self, keep: impl Fn(&EventId) -> bool) {
        let purged: Vec<EventId> = self
            .views
            .iter()
            .map(|(event, _)| *event)
            .filter(|event| !keep(event))
            .collect();
        for event in purged {
            self.views.invalidate(&event);
        }
    }
}
