//! The in-memory copy of the views table: polls of the events people are
//! following are served from memory, SQLite keeps every view for restarts,
//! audits and the events not in memory.

use std::sync::atomic::{AtomicU64, Ordering};
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
/// Only views the table holds are cached: a put caches its view after the
/// table stored it, and a view read from the table is cached only if no
/// put came in between (it may be older than the one just stored, which
/// may already have been dropped again).
pub(super) struct ViewCache {
    views: Cache<EventId, Arc<StoredView>>,
    /// Views stored so far, for [`ViewCache::fill`].
    puts: AtomicU64,
}

impl ViewCache {
    /// A cache of up to `bytes` of views.
    pub(super) fn new(bytes: u64) -> Self {
        Self {
            views: Cache::builder()
                .max_capacity(bytes)
                .weigher(|_, view: &Arc<StoredView>| view.weight())
                .build(),
            puts: AtomicU64::new(0),
        }
    }

    /// Whether `view` is to be written to the table: not when the cached
    /// view folds more records. (The table's guard decides the rest.)
    pub(super) fn offer(&self, event: EventId, view: &StoredView) -> bool {
        self.views
            .get(&event)
            .is_none_or(|cached| cached.records <= view.records)
    }

    /// Caches `view`, which the table stored, unless a newer one is cached.
    pub(super) fn remember(&self, event: EventId, view: Arc<StoredView>) {
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.views
            .entry(event)
            .and_compute_with(|cached| match cached {
                Some(cached) if cached.value().records > view.records => Op::Nop,
                _ => Op::Put(view),
            });
    }

    /// Caches `view` whatever is cached (operator repair).
    pub(super) fn replace(&self, event: EventId, view: Arc<StoredView>) {
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.views.insert(event, view);
    }

    pub(super) fn get(&self, event: EventId) -> Option<Arc<StoredView>> {
        self.views.get(&event)
    }

    /// How many views have been stored: taken before a read of the table,
    /// for [`ViewCache::fill`].
    pub(super) fn puts(&self) -> u64 {
        self.puts.load(Ordering::SeqCst)
    }

    /// Caches a view read from the table after [`ViewCache::puts`] said
    /// `puts_before`, unless a view was stored since (the one read may be
    /// older) or a view at least as new is cached; returns the newest.
    pub(super) fn fill(
        &self,
        event: EventId,
        stored: StoredView,
        puts_before: u64,
    ) -> Arc<StoredView> {
        let stored = Arc::new(stored);
        if self.puts() != puts_before {
            return match self.views.get(&event) {
                Some(cached) if cached.records >= stored.records => cached,
                _ => stored,
            };
        }
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
