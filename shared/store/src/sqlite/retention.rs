//! Retention: expired events leave the database with their records and
//! views.

use std::collections::HashSet;

use openfloor_domain::ids::EventId;
use rusqlite::{params, Transaction};

use super::writer::Write;
use super::SqliteStore;
use crate::{Directory, StoreResult};

const DELETE_EXPIRED_RECORDS: &str = "
    DELETE FROM records WHERE event IN (SELECT id FROM events WHERE expires_at <= ?1)
";
const DELETE_EXPIRED_VIEWS: &str = "
    DELETE FROM views WHERE event IN (SELECT id FROM events WHERE expires_at <= ?1)
";
/// Last, so the two deletes above still find the expired events.
const DELETE_EXPIRED_EVENTS: &str = "DELETE FROM events WHERE expires_at <= ?1";

/// Deletes everything of the events expired at `now`; answers how many
/// records went.
struct PurgeExpired {
    now: u64,
}

impl Write for PurgeExpired {
    type Outcome = u64;

    fn apply(&self, tx: &Transaction<'_>, _next_seq: &mut i64) -> rusqlite::Result<u64> {
        let now = i64::try_from(self.now).unwrap_or(i64::MAX);
        let records = tx.execute(DELETE_EXPIRED_RECORDS, params![now])?;
        tx.execute(DELETE_EXPIRED_VIEWS, params![now])?;
        tx.execute(DELETE_EXPIRED_EVENTS, params![now])?;
        Ok(records as u64)
    }

    fn context(&self) -> String {
        format!("purging the events expired at {}", self.now)
    }
}

impl SqliteStore {
    /// Deletes the records, views and directory entries of events expired
    /// at `now` (retention); returns how many records went. Export an event
    /// first to keep it.
    pub async fn purge_expired(&self, now: u64) -> StoreResult<u64> {
        let purged = self.inner.writer.write(PurgeExpired { now }).await?;
        let live: HashSet<EventId> = self.list().await?.into_iter().map(|m| m.id).collect();
        self.inner.views.retain(|event| live.contains(event));
        self.inner.damage.retain(|event| live.contains(event));
        Ok(purged)
    }
}
