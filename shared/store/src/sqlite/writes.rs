//! The writes the writer thread runs, one type each: what each does inside
//! its batch's transaction and what it answers.

use std::sync::Arc;

use openfloor_domain::ids::EventId;
use openfloor_domain::record::Record;
use rusqlite::{params, Transaction};

use super::reads::SELECT_RECORD_BY_KEY;
use super::writer::Write;
use crate::{Appended, EventMeta, StoredView};

/// Stores a record once: its key is unique within the event, so a retry or
/// a lost race finds the stored record instead.
const INSERT_RECORD: &str = "
    INSERT INTO records (event, seq, key, id, body) VALUES (?1, ?2, ?3, ?4, ?5)
    ON CONFLICT(event, key) DO NOTHING
";
/// Registers an event once; a taken id changes nothing.
const INSERT_EVENT: &str = "
    INSERT INTO events (id, expires_at, meta) VALUES (?1, ?2, ?3)
    ON CONFLICT(id) DO NOTHING
";
/// Stores a view unless the stored one folds more records (the guard), or
/// whatever is stored when ?7 (an operator's repair) is set.
const UPSERT_VIEW: &str = "
    INSERT INTO views
        (event, records, guest, guest_version, host, host_version, projected_at, questions)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?8, ?9)
    ON CONFLICT(event) DO UPDATE SET
        records = excluded.records,
        guest = excluded.guest,
        guest_version = excluded.guest_version,
        host = excluded.host,
        host_version = excluded.host_version,
        projected_at = excluded.projected_at,
        questions = excluded.questions
    WHERE excluded.records >= views.records OR ?7
";

/// [`Log::append`](crate::Log::append).
pub(super) struct AppendRecord {
    pub(super) event: EventId,
    pub(super) record: Record,
}

impl Write for AppendRecord {
    type Outcome = Appended;

    fn apply(&self, tx: &Transaction<'_>, next_seq: &mut i64) -> rusqlite::Result<Appended> {
        insert_record(tx, self.event, &self.record, next_seq)
    }

    fn context(&self) -> String {
        format!(
            "appending record {} to event {}",
            self.record.key(),
            self.event
        )
    }
}

/// [`Log::append_batch`](crate::Log::append_batch): answers how many records
/// were new.
pub(super) struct AppendRecords {
    pub(super) event: EventId,
    pub(super) records: Vec<Record>,
}

impl Write for AppendRecords {
    type Outcome = u64;

    fn apply(&self, tx: &Transaction<'_>, next_seq: &mut i64) -> rusqlite::Result<u64> {
        let mut inserted = 0;
        for record in &self.records {
            if insert_record(tx, self.event, record, next_seq)? == Appended::Inserted {
                inserted += 1;
            }
        }
        Ok(inserted)
    }

    fn context(&self) -> String {
        format!(
            "appending {} records to event {}",
            self.records.len(),
            self.event
        )
    }
}

/// [`Directory::create`](crate::Directory::create): answers whether the
/// event was new.
pub(super) struct CreateEvent {
    pub(super) meta: EventMeta,
}

impl Write for CreateEvent {
    type Outcome = bool;

    fn apply(&self, tx: &Transaction<'_>, _next_seq: &mut i64) -> rusqlite::Result<bool> {
        let meta = &self.meta;
        let json = serde_json::to_string(meta).expect("event meta serializes");
        let inserted = tx.prepare_cached(INSERT_EVENT)?.execute(params![
            meta.id.to_string(),
            // SQLite's integers are signed: a time past 2^63 ms (some 292
            // million years) is kept as the latest it can hold, never
            // wrapped to a negative (which would purge the event at once).
            i64::try_from(meta.expires_at).unwrap_or(i64::MAX),
            json
        ])?;
        Ok(inserted == 1)
    }

    fn context(&self) -> String {
        format!("creating event {}", self.meta.id)
    }
}

/// [`Views::put`](crate::Views::put) (guarded) and
/// [`Views::replace`](crate::Views::replace) (`force`): answers whether the
/// view was stored.
pub(super) struct StoreView {
    pub(super) event: EventId,
    pub(super) view: Arc<StoredView>,
    /// Skip the guard (operator repair).
    pub(super) force: bool,
}

impl Write for StoreView {
    type Outcome = bool;

    fn apply(&self, tx: &Transaction<'_>, _next_seq: &mut i64) -> rusqlite::Result<bool> {
        let view = &self.view;
        let stored = tx.prepare_cached(UPSERT_VIEW)?.execute(params![
            self.event.to_string(),
            i64::try_from(view.records).unwrap_or(i64::MAX),
            view.guest.json,
            view.guest.version,
            view.host.json,
            view.host.version,
            self.force,
            i64::try_from(view.projected_at).unwrap_or(i64::MAX),
            i64::try_from(view.questions).unwrap_or(i64::MAX)
        ])?;
        Ok(stored == 1)
    }

    fn context(&self) -> String {
        format!("storing the views of event {}", self.event)
    }
}

fn insert_record(
    tx: &Transaction<'_>,
    event: EventId,
    record: &Record,
    next_seq: &mut i64,
) -> rusqlite::Result<Appended> {
    let key = record.key();
    let body = serde_json::to_string(record).expect("records serialize");
    let event = event.to_string();
    let inserted = tx.prepare_cached(INSERT_RECORD)?.execute(params![
        event,
        *next_seq,
        key.as_str(),
        record.id.to_string(),
        body
    ])?;
    if inserted == 1 {
        *next_seq += 1;
        return Ok(Appended::Inserted);
    }
    let existing: String = tx
        .prepare_cached(SELECT_RECORD_BY_KEY)?
        .query_row(params![event, key.as_str()], |r| r.get(0))?;
    let existing = serde_json::from_str(&existing).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Appended::Exists(existing))
}
