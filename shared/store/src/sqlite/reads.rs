//! Reads: a small pool of read-only connections, which WAL lets run beside
//! the writer, and the queries they run.

use std::path::PathBuf;
use std::sync::Mutex;

use openfloor_domain::ids::{EventId, RecordId};
use openfloor_domain::record::Record;
use openfloor_domain::view::RenderedView;
use rusqlite::{params, Connection, OptionalExtension};
use serde::de::DeserializeOwned;

use super::schema;
use crate::{
    DamagedRecord, EventMeta, LogCursor, Lookup, Salvaged, StoreError, StoreResult, StoredView,
};

/// Read connections kept open for reuse: opening one costs more than most
/// point reads, and a few cover the concurrency a 2-core host sees.
const MAX_IDLE_READERS: usize = 8;

pub(super) const SELECT_RECORD_BY_KEY: &str =
    "SELECT body FROM records WHERE event = ?1 AND key = ?2";
/// The last record of a sequence: its keys share a prefix and sort by n.
/// Keys are ASCII letters, digits and '#'; '~' sorts after all of them, so
/// `prefix~` bounds the range.
const SELECT_LATEST_BY_PREFIX: &str = "
    SELECT body FROM records WHERE event = ?1 AND key >= ?2 AND key < ?3
    ORDER BY key DESC LIMIT 1
";
const SELECT_EVENT_RECORDS: &str = "SELECT seq, key, body FROM records WHERE event = ?1";
const SELECT_RECORDS_PAGE: &str =
    "SELECT body FROM records WHERE event = ?1 AND id > ?2 ORDER BY id LIMIT ?3";
/// A range of the (event, seq) primary key: the records committed after a
/// cursor, in commit order.
const SELECT_RECORDS_SINCE: &str =
    "SELECT seq, key, body FROM records WHERE event = ?2 AND seq > ?1 ORDER BY seq";
const SELECT_EVENT: &str = "SELECT meta FROM events WHERE id = ?1";
const SELECT_EVENTS: &str = "SELECT id, meta FROM events ORDER BY id";
const SELECT_VIEW: &str = "
    SELECT records, guest, guest_version, host, host_version, projected_at, questions
    FROM views WHERE event = ?1
";

/// Read-only connections to the database, opened on demand and reused.
pub(super) struct ReaderPool {
    path: PathBuf,
    /// Idle connections. Held only to push or pop one, never during a query.
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    pub(super) fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on a pooled connection, on the calling thread.
    pub(super) fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let pooled = self.lock().pop();
        let conn = match pooled {
            Some(c) => c,
            None => schema::open_reader(&self.path)?,
        };
        let out = f(&conn);
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        out
    }

    /// A panic while holding this lock cannot leave the list half-changed
    /// (push and pop are single operations), so poisoning is ignored.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One point read: the record under a key, or the latest of a sequence.
pub(super) fn point_lookup(
    c: &Connection,
    event: EventId,
    lookup: &Lookup,
) -> StoreResult<Option<Record>> {
    let mut found = match lookup {
        Lookup::Key(key) => query_records(
            c,
            SELECT_RECORD_BY_KEY,
            params![event.to_string(), key.as_str()],
            || format!("reading record {key} of event {event}"),
        )?,
        Lookup::Latest(sequence) => {
            let prefix = sequence.prefix();
            let upper = format!("{prefix}~");
            query_records(
                c,
                SELECT_LATEST_BY_PREFIX,
                params![event.to_string(), prefix, upper],
                || format!("reading the latest record {prefix}* of event {event}"),
            )?
        }
    };
    Ok(found.pop())
}

/// All of an event's records, each damaged one apart.
pub(super) fn event_records(c: &Connection, event: EventId) -> StoreResult<Salvaged> {
    let (salvaged, _) = salvage_rows(c, SELECT_EVENT_RECORDS, params![event.to_string()], || {
        format!("reading the records of event {event}")
    })?;
    Ok(salvaged)
}

/// Up to `limit` records with ids above `after`, in record-id order.
pub(super) fn records_page(
    c: &Connection,
    event: EventId,
    after: Option<RecordId>,
    limit: usize,
) -> StoreResult<Vec<Record>> {
    let after = after.map(|a| a.to_string()).unwrap_or_default();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    query_records(
        c,
        SELECT_RECORDS_PAGE,
        params![event.to_string(), after, limit],
        || format!("reading a page of event {event} after record {after:?}"),
    )
}

/// The records committed after `cursor`, each damaged one apart, with the
/// cursor to continue from (past the damaged ones: reading them again
/// would not mend them).
pub(super) fn records_since(
    c: &Connection,
    event: EventId,
    cursor: LogCursor,
) -> StoreResult<(Salvaged, LogCursor)> {
    let (salvaged, last) = salvage_rows(
        c,
        SELECT_RECORDS_SINCE,
        params![cursor.0 as i64, event.to_string()],
        || format!("reading event {event} after commit {}", cursor.0),
    )?;
    Ok((salvaged, LogCursor(cursor.0.max(last))))
}

/// Runs a query of `seq, key, body` rows, decoding each body; a body that
/// cannot be decoded (whatever its stored type) is handed up as damaged,
/// named by its key and commit number. Also returns the highest `seq`.
fn salvage_rows(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    context: impl Fn() -> String,
) -> StoreResult<(Salvaged, u64)> {
    let unavailable = |e| StoreError::unavailable(context(), e);
    let mut stmt = c.prepare_cached(sql).map_err(unavailable)?;
    let rows = stmt
        .query_map(params, |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, rusqlite::types::Value>(2)?,
            ))
        })
        .map_err(unavailable)?;
    let mut salvaged = Salvaged::default();
    let mut last = 0;
    for row in rows {
        let (seq, key, body) = row.map_err(unavailable)?;
        last = last.max(seq as u64);
        let decoded = match &body {
            rusqlite::types::Value::Text(json) => {
                serde_json::from_str(json).map_err(|e| e.to_string())
            }
            other => Err(format!("stored as {:?}, not text", other.data_type())),
        };
        match decoded {
            Ok(record) => salvaged.records.push(record),
            Err(error) => salvaged.damaged.push(DamagedRecord {
                location: format!("{key} (commit {seq})"),
                error,
            }),
        }
    }
    Ok((salvaged, last))
}

/// An event's directory entry.
pub(super) fn event_meta(c: &Connection, id: EventId) -> StoreResult<Option<EventMeta>> {
    let context = || format!("reading event {id}");
    let json: Option<String> = c
        .prepare_cached(SELECT_EVENT)
        .and_then(|mut s| {
            s.query_row(params![id.to_string()], |r| r.get(0))
                .optional()
        })
        .map_err(|e| StoreError::unavailable(context(), e))?;
    json.map(|j| decode(&j, context)).transpose()
}

/// The directory's entries: those that can be read, by id, and the ids of
/// the damaged ones with why (the caller reports them). A damaged entry is
/// left out, so that one bad row cannot stop the catch-up, the sweep or
/// `verify --all` for every other event; the damaged event itself answers
/// 500 until repaired.
pub(super) fn all_events(c: &Connection) -> StoreResult<Listing> {
    let unavailable = |e| StoreError::unavailable("listing events", e);
    let mut stmt = c.prepare_cached(SELECT_EVENTS).map_err(unavailable)?;
    // The entry as text if it is text at all: a value of another type is
    // damage, not a failure of the listing.
    let rows = stmt
        .query_map([], |r| {
            let json = r.get_ref(1)?.as_str().ok().map(str::to_owned);
            Ok((r.get::<_, String>(0)?, json))
        })
        .map_err(unavailable)?;
    let (mut events, mut damaged) = (Vec::new(), Vec::new());
    for row in rows {
        let (id, json) = row.map_err(unavailable)?;
        let Some(json) = json else {
            damaged.push((id, "the entry is not text".to_owned()));
            continue;
        };
        match decode::<EventMeta>(&json, || format!("reading the entry of event {id}")) {
            Ok(meta) => events.push(meta),
            Err(error) => damaged.push((id, crate::cause_chain(&error))),
        }
    }
    Ok(Listing { events, damaged })
}

/// The directory as [`all_events`] reads it.
pub(super) struct Listing {
    pub(super) events: Vec<EventMeta>,
    /// The ids of the damaged entries, each with why.
    pub(super) damaged: Vec<(String, String)>,
}

/// An event's stored views.
pub(super) fn stored_view(c: &Connection, event: EventId) -> StoreResult<Option<StoredView>> {
    c.prepare_cached(SELECT_VIEW)
        .and_then(|mut s| {
            s.query_row(params![event.to_string()], |r| {
                Ok(StoredView {
                    records: r.get::<_, i64>(0)? as u64,
                    guest: RenderedView {
                        json: r.get(1)?,
                        version: r.get(2)?,
                    },
                    host: RenderedView {
                        json: r.get(3)?,
                        version: r.get(4)?,
                    },
                    projected_at: r.get::<_, i64>(5)? as u64,
                    questions: r.get::<_, i64>(6)? as u64,
                })
            })
            .optional()
        })
        .map_err(|e| StoreError::unavailable(format!("reading the views of event {event}"), e))
}

/// Runs a query whose one column is a record's JSON body, decoding every
/// row. `context` says what was being read, for errors.
fn query_records(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    context: impl Fn() -> String,
) -> StoreResult<Vec<Record>> {
    let unavailable = |e| StoreError::unavailable(context(), e);
    let mut stmt = c.prepare_cached(sql).map_err(unavailable)?;
    let rows = stmt
        .query_map(params, |r| r.get::<_, String>(0))
        .map_err(unavailable)?;
    rows.map(|body| decode(&body.map_err(unavailable)?, &context))
        .collect()
}

/// Decodes stored JSON; a failure means the stored data is damaged.
fn decode<T: DeserializeOwned>(json: &str, context: impl Fn() -> String) -> StoreResult<T> {
    serde_json::from_str(json).map_err(|e| StoreError::corrupt(context(), e))
}
