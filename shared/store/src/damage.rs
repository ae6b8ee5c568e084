//! Damage: stored records that cannot be read back, and the events they
//! belong to (DESIGN.md, "Damage").
//!
//! A read of a whole event hands its damaged records up beside the good
//! ones ([`Salvaged`]) instead of failing, so that one bad row cannot
//! freeze its event or stop the others. Whoever reads an event whole (the
//! projector, `verify`) tells the deployment's [`DamagedEvents`], which
//! logs each damaged record once and feeds `/healthz` and the
//! `openfloor_damaged_events` gauge.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use openfloor_domain::ids::EventId;
use openfloor_domain::record::Record;

use crate::{StoreError, StoreResult};

/// One stored record that could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DamagedRecord {
    /// Where the backend keeps it, in its own terms (SQLite: the record's
    /// key and commit number; DynamoDB: its sort and partition keys), for
    /// an operator to find it.
    pub location: String,
    /// Why it could not be read.
    pub error: String,
}

impl std::fmt::Display for DamagedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {}: {}", self.location, self.error)
    }
}

/// An event's records as far as they can be read: those that could, and
/// each one that could not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Salvaged {
    pub records: Vec<Record>,
    pub damaged: Vec<DamagedRecord>,
}

impl Salvaged {
    /// How many stored records were read, damaged ones included: what a
    /// view made of these accounts for, so that the views' guard keeps
    /// comparing lengths of the log.
    pub fn stored(&self) -> u64 {
        (self.records.len() + self.damaged.len()) as u64
    }

    /// The records, if every one could be read; otherwise an error naming
    /// the first damaged one (for callers that must have the whole log, or
    /// nothing: an export, an audit).
    pub fn whole(self, event: EventId) -> StoreResult<Vec<Record>> {
        match self.damaged.first() {
            None => Ok(self.records),
            Some(first) => Err(StoreError::corrupt_msg(format!(
                "event {event} has {} damaged record(s), the first {first}",
                self.damaged.len()
            ))),
        }
    }
}

/// The deployment's damaged events, as far as its readers have seen them.
/// Cheap to clone; clones share one list.
#[derive(Clone, Default)]
pub struct DamagedEvents {
    events: Arc<Mutex<BTreeMap<EventId, BTreeSet<DamagedRecord>>>>,
}

impl DamagedEvents {
    /// An empty list, reported as the gauge `openfloor_damaged_events`
    /// while it exists.
    pub fn new() -> Self {
        let damaged = Self::default();
        watch(Arc::downgrade(&damaged.events));
        damaged
    }

    /// `event`'s whole log was read and these of its records were damaged
    /// (none: it is whole, perhaps repaired since). Each damaged record is
    /// logged as an error the first time it is seen, not at every read.
    pub fn read_whole(&self, event: EventId, damaged: &[DamagedRecord]) {
        let mut events = self.lock();
        let known = events.remove(&event).unwrap_or_default();
        report_new(event, &known, damaged);
        if !damaged.is_empty() {
            events.insert(event, damaged.iter().cloned().collect());
        }
    }

    /// Records of `event` read since its last whole read were damaged.
    pub fn read_part(&self, event: EventId, damaged: &[DamagedRecord]) {
        if damaged.is_empty() {
            return;
        }
        let mut events = self.lock();
        let known = events.entry(event).or_default();
        report_new(event, known, damaged);
        known.extend(damaged.iter().cloned());
    }

    /// Forgets the events `keep` refuses (purged: their damage went with
    /// them).
    pub fn retain(&self, keep: impl Fn(&EventId) -> bool) {
        self.lock().retain(|event, _| keep(event));
    }

    /// The damaged events, by id.
    pub fn events(&self) -> Vec<EventId> {
        self.lock().keys().copied().collect()
    }

    /// A panic while holding this lock cannot leave the map half-changed
    /// (each change is one map operation), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<EventId, BTreeSet<DamagedRecord>>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Logs each of `damaged` that is not in `known`.
fn report_new(event: EventId, known: &BTreeSet<DamagedRecord>, damaged: &[DamagedRecord]) {
    for record in damaged.iter().filter(|r| !known.contains(r)) {
        tracing::error!(
            %event,
            record = %record.location,
            error = %record.error,
            "stored record damaged: skipped, the event's views fold the rest; \
             restore it from a backup (verify --all lists every one)"
        );
    }
}

/// Reports how many events are damaged, as the gauge
/// `openfloor_damaged_events`, while the list exists.
fn watch(events: Weak<Mutex<BTreeMap<EventId, BTreeSet<DamagedRecord>>>>) {
    openfloor_telemetry::meter()
        .u64_observable_gauge("openfloor_damaged_events")
        .with_description(
            "Events with stored records that cannot be read back (skipped by their views)",
        )
        .with_callback(move |observer| {
            if let Some(events) = events.upgrade() {
                let count = events.lock().unwrap_or_else(|p| p.into_inner()).len();
                observer.observe(u64::try_from(count).unwrap_or(u64::MAX), &[]);
            }
        })
        .build();
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn damaged(key: &str) -> DamagedRecord {
        DamagedRecord {
            location: key.to_owned(),
            error: "EOF while parsing".to_owned(),
        }
    }

    #[test]
    fn each_damaged_record_is_logged_once_and_forgotten_once_whole() {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let event = EventId::from_ulid(ulid::Ulid::from_parts(1, 1));
        let list = DamagedEvents::new();
        tracing::subscriber::with_default(subscriber, || {
            list.read_whole(event, &[damaged("V1")]);
            // Read again and again (a retry, a sweep, a rebuilt state).
            list.read_whole(event, &[damaged("V1")]);
            list.read_part(event, &[damaged("V1")]);
            list.read_part(event, &[damaged("V2")]);
        });
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches("record=V1").count(), 1, "{text}");
        assert_eq!(text.matches("record=V2").count(), 1, "{text}");
        assert!(text.contains(&event.to_string()), "{text}");
        assert_eq!(list.events(), [event]);
        list.read_whole(event, &[]);
        assert!(list.events().is_empty(), "repaired");
    }
}
