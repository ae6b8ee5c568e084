//! The trigger role: "event X has news". The in-process implementation
//! coalesces: however many times an event is notified while the projector is
//! busy, it is handed out once.

use std::collections::BTreeSet;
use std::sync::Mutex;

use openfloor_domain::ids::EventId;
use tokio::sync::Notify;

pub trait Trigger: Send + Sync {
    /// Tells the projector that `event` has new records. Cheap, never fails:
    /// a lost notification only delays a view (the sweep repairs it).
    fn notify(&self, event: EventId);
}

/// An in-process trigger: a set of dirty events plus a wake-up.
#[derive(Default)]
pub struct LocalTrigger {
    /// A set, not a queue: bursts for one event collapse into one entry.
    dirty: Mutex<BTreeSet<EventId>>,
    wake: Notify,
}

impl LocalTrigger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until at least one event is dirty, then takes all of them.
    pub async fn next_batch(&self) -> Vec<EventId> {
        loop {
            let taken = std::mem::take(&mut *self.lock());
            if !taken.is_empty() {
                return taken.into_iter().collect();
            }
            self.wake.notified().await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<EventId>> {
        // A panic while holding this lock cannot leave the set half-updated
        // (insert and take are single operations), so poisoning is ignored.
        self.dirty.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Trigger for LocalTrigger {
    fn notify(&self, event: EventId) {
        self.lock().insert(event);
        // `notify_one` stores a permit if nobody waits, so a notification
        // between `take` and `notified()` is not lost.
        self.wake.notify_one();
    }
}
