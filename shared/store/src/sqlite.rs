//! The embedded backend: one SQLite database (WAL) in the data directory.
//!
//! Writes go through one writer thread that drains whatever is queued into a
//! single transaction (group commit), then acknowledges each write after
//! that transaction is durable (`synchronous=FULL`). One fsync then covers
//! hundreds of votes, and a single writer also gives the log a commit order
//! (`seq`), which lets the projector read incrementally without ever
//! skipping a record. Reads use a small pool of read-only connections, which
//! WAL lets run beside the writer: point reads (a key, the latest of a
//! sequence) take microseconds and never wait for the writer, so they run
//! on the calling thread, saving the thread hand-off that profiling showed
//! dominating the vote path; whole-event reads go to the blocking pool.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use openfloor_domain::ids::{EventId, RecordId};
use openfloor_domain::record::{Record, RecordKey, Sequence};
use openfloor_domain::view::RenderedView;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use crate::{
    Appended, Directory, EventLog, EventMeta, Log, LogCursor, Lookup, Store, StoreError,
    StoreResult, StoredView, Views,
};

/// Writes waiting for the writer beyond this are refused with
/// [`StoreError::Overloaded`] (a 503 with `Retry-After`), so a burst cannot
/// grow memory without bound or make every request time out.
const WRITE_QUEUE_CAPACITY: usize = 16_384;
/// The most writes folded into one transaction: large enough to amortise the
/// fsync, small enough to keep the first write of a batch waiting briefly.
const MAX_BATCH: usize = 2_048;
/// Read connections kept open for reuse.
const MAX_IDLE_READERS: usize = 8;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id         TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL,
    meta       TEXT NOT NULL
);
-- Clustered by event, in commit order: reading an event (a replay, a
-- projection) is one sequential range scan. seq is assigned by the single
-- writer from settings.next_seq, so it is the commit order.
CREATE TABLE IF NOT EXISTS records (
    event TEXT NOT NULL,
    seq   INTEGER NOT NULL,
    key   TEXT NOT NULL,
    id    TEXT NOT NULL,
    body  TEXT NOT NULL,
    PRIMARY KEY (event, seq)
) WITHOUT ROWID;
-- A record's deterministic identity: stored once.
CREATE UNIQUE INDEX IF NOT EXISTS records_by_key ON records (event, key);
CREATE INDEX IF NOT EXISTS records_by_id ON records (event, id);
INSERT INTO settings (name, value) VALUES ('next_seq', '1') ON CONFLICT(name) DO NOTHING;
CREATE TABLE IF NOT EXISTS views (
    event         TEXT PRIMARY KEY,
    records       INTEGER NOT NULL,
    guest         BLOB NOT NULL,
    guest_version TEXT NOT NULL,
    host          BLOB NOT NULL,
    host_version  TEXT NOT NULL
);
"#;

enum WriteOp {
    Append {
        event: EventId,
        record: Record,
        reply: oneshot::Sender<StoreResult<Appended>>,
    },
    AppendMany {
        event: EventId,
        records: Vec<Record>,
        reply: oneshot::Sender<StoreResult<u64>>,
    },
    CreateEvent {
        meta: EventMeta,
        reply: oneshot::Sender<StoreResult<()>>,
    },
    PutView {
        event: EventId,
        view: Arc<StoredView>,
        /// Skip the guard (operator repair).
        force: bool,
        reply: oneshot::Sender<StoreResult<bool>>,
    },
    PurgeExpired {
        now: u64,
        reply: oneshot::Sender<StoreResult<u64>>,
    },
}

/// The outcome of one op inside a batch, sent once the batch commits.
enum Done {
    Append(oneshot::Sender<StoreResult<Appended>>, Appended),
    AppendMany(oneshot::Sender<StoreResult<u64>>, u64),
    CreateEvent(oneshot::Sender<StoreResult<()>>, StoreResult<()>),
    PutView(oneshot::Sender<StoreResult<bool>>, bool),
    Purged(oneshot::Sender<StoreResult<u64>>, u64),
}

struct Inner {
    path: PathBuf,
    writer: mpsc::Sender<WriteOp>,
    readers: Mutex<Vec<Connection>>,
    /// Views are served from memory; SQLite keeps them for restarts and
    /// audits. Guarded like the table: never replaced by a smaller `records`.
    views: RwLock<HashMap<EventId, Arc<StoredView>>>,
    client_salt: Vec<u8>,
}

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::unavailable_msg(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt_msg(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the store in directory `dir`.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| unavailable(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join("openfloor.sqlite3");
        let mut conn = Connection::open(&path).map_err(unavailable)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;",
        )
        .map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        let client_salt = load_or_create_salt(&mut conn)?;

        let (tx, rx) = mpsc::channel(WRITE_QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(unavailable)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writer: tx,
                readers: Mutex::new(Vec::new()),
                views: RwLock::new(HashMap::new()),
                client_salt,
            }),
        })
    }

    /// The three roles backed by this database.
    pub fn store(&self) -> Store {
        Store {
            directory: Arc::new(self.clone()),
            log: Arc::new(self.clone()),
            views: Arc::new(self.clone()),
        }
    }

    /// Deletes the records, views and directory entries of events expired
    /// at `now` (retention); returns how many records went. Export an event
    /// first to keep it.
    pub async fn purge_expired(&self, now: u64) -> StoreResult<u64> {
        let purged = self
            .write(|reply| WriteOp::PurgeExpired { now, reply })
            .await?;
        let live: std::collections::HashSet<EventId> =
            self.list().await?.into_iter().map(|m| m.id).collect();
        self.inner
            .views
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|e, _| live.contains(e));
        Ok(purged)
    }

    /// A random salt created with the database, for hashing client addresses.
    pub fn client_salt(&self) -> &[u8] {
        &self.inner.client_salt
    }

    async fn write<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> WriteOp,
    ) -> StoreResult<T> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .writer
            .try_send(make(reply))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    StoreError::overloaded_msg("the write queue is full")
                }
                mpsc::error::TrySendError::Closed(_) => unavailable("the writer has stopped"),
            })?;
        rx.await
            .map_err(|_| unavailable("the writer dropped a write"))?
    }

    /// Runs `f` on a pooled read connection, off the async threads (for
    /// reads that may scan a whole event).
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.with_reader(f))
            .await
            .map_err(|e| unavailable(format!("read task failed: {e}")))?
    }

    /// Runs a point read on the calling thread (see the module doc).
    fn read_point<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        self.inner.with_reader(f)
    }
}

impl Inner {
    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open(&self.path).map_err(unavailable)?;
                c.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;")
                    .map_err(unavailable)?;
                c
            }
        };
        let out = f(&conn);
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < MAX_IDLE_READERS {
            pool.push(conn);
        }
        out
    }
}

fn point_lookup(c: &Connection, event: &str, lookup: &Lookup) -> StoreResult<Option<Record>> {
    let mut found = match lookup {
        Lookup::Key(key) => query_records(
            c,
            "SELECT body FROM records WHERE event = ?1 AND key = ?2",
            params![event, key.as_str()],
        )?,
        Lookup::Latest(sequence) => {
            let prefix = sequence.prefix();
            // Keys are ASCII letters, digits and '#'; '~' sorts after all.
            let upper = format!("{prefix}~");
            query_records(
                c,
                "SELECT body FROM records WHERE event = ?1 AND key >= ?2 AND key < ?3 ORDER BY key DESC LIMIT 1",
                params![event, prefix, upper],
            )?
        }
    };
    Ok(found.pop())
}

fn load_or_create_salt(conn: &mut Connection) -> StoreResult<Vec<u8>> {
    let fresh = openfloor_domain::ids::hex_lower(&rand::random::<[u8; 32]>());
    conn.execute(
        "INSERT INTO settings (name, value) VALUES ('client_salt', ?1) ON CONFLICT(name) DO NOTHING",
        params![fresh],
    )
    .map_err(unavailable)?;
    let salt: String = conn
        .query_row(
            "SELECT value FROM settings WHERE name = 'client_salt'",
            [],
            |r| r.get(0),
        )
        .map_err(unavailable)?;
    Ok(salt.into_bytes())
}

fn writer_loop(mut conn: Connection, mut rx: mpsc::Receiver<WriteOp>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // The next commit-order number. Numbers of a failed batch are skipped,
    // never reused out of order; gaps are harmless.
    let mut next_seq: i64 = match conn.query_row(
        "SELECT value FROM settings WHERE name = 'next_seq'",
        [],
        |r| r.get::<_, String>(0),
    ) {
        Ok(v) => v.parse().unwrap_or(1),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the commit counter; the writer stops");
            return;
        }
    };
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        match run_batch(&mut conn, &mut batch, &mut next_seq) {
            Ok(done) => {
                for d in done {
                    // A caller that gave up waiting is no error of ours.
                    let _ = match d {
                        Done::Append(tx, v) => tx.send(Ok(v)).map_err(drop),
                        Done::AppendMany(tx, v) => tx.send(Ok(v)).map_err(drop),
                        Done::CreateEvent(tx, v) => tx.send(v).map_err(drop),
                        Done::PutView(tx, v) => tx.send(Ok(v)).map_err(drop),
                        Done::Purged(tx, v) => tx.send(Ok(v)).map_err(drop),
                    };
                }
            }
            Err(e) => {
                tracing::error!(error = %e, ops = batch.len(), "write batch failed; nothing in it was acknowledged");
                for op in batch.drain(..) {
                    let err = || unavailable(&e);
                    let _ = match op {
                        WriteOp::Append { reply, .. } => reply.send(Err(err())).map_err(drop),
                        WriteOp::AppendMany { reply, .. } => reply.send(Err(err())).map_err(drop),
                        WriteOp::CreateEvent { reply, .. } => reply.send(Err(err())).map_err(drop),
                        WriteOp::PutView { reply, .. } => reply.send(Err(err())).map_err(drop),
                        WriteOp::PurgeExpired { reply, .. } => reply.send(Err(err())).map_err(drop),
                    };
                }
            }
        }
        batch.clear();
    }
}

/// Runs every op of `batch` in one transaction. On success the ops are
/// consumed into their outcomes; on failure the batch is left for the caller
/// to fail.
fn run_batch(
    conn: &mut Connection,
    batch: &mut Vec<WriteOp>,
    next_seq: &mut i64,
) -> rusqlite::Result<Vec<Done>> {
    let tx = conn.transaction()?;
    let first_seq = *next_seq;
    let mut outcomes = Vec::with_capacity(batch.len());
    for op in batch.iter() {
        outcomes.push(match op {
            WriteOp::Append { event, record, .. } => OpOutcome::Append(insert_record(&tx, *event, record, next_seq)?),
            WriteOp::AppendMany { event, records, .. } => {
                let mut inserted = 0;
                for r in records {
                    if insert_record(&tx, *event, r, next_seq)? == Appended::Inserted {
                        inserted += 1;
                    }
                }
                OpOutcome::AppendMany(inserted)
            }
            WriteOp::CreateEvent { meta, .. } => {
                let json = serde_json::to_string(meta).expect("event meta serializes");
                let n = tx
                    .prepare_cached("INSERT INTO events (id, expires_at, meta) VALUES (?1, ?2, ?3) ON CONFLICT(id) DO NOTHING")?
                    .execute(params![meta.id.to_string(), meta.expires_at as i64, json])?;
                OpOutcome::Created(n == 1)
            }
            WriteOp::PutView { event, view, force, .. } => {
                let n = tx
                    .prepare_cached(
                        "INSERT INTO views (event, records, guest, guest_version, host, host_version)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT(event) DO UPDATE SET
                           records = excluded.records, guest = excluded.guest, guest_version = excluded.guest_version,
                           host = excluded.host, host_version = excluded.host_version
                         WHERE excluded.records >= views.records OR ?7",
                    )?
                    .execute(params![
                        event.to_string(),
                        view.records as i64,
                        view.guest.json,
                        view.guest.version,
                        view.host.json,
                        view.host.version,
                        force
                    ])?;
                OpOutcome::ViewStored(n == 1)
            }
            WriteOp::PurgeExpired { now, .. } => {
                let now = i64::try_from(*now).unwrap_or(i64::MAX);
                let expired = "SELECT id FROM events WHERE expires_at <= ?1";
                let records = tx.execute(&format!("DELETE FROM records WHERE event IN ({expired})"), params![now])?;
                tx.execute(&format!("DELETE FROM views WHERE event IN ({expired})"), params![now])?;
                tx.execute("DELETE FROM events WHERE expires_at <= ?1", params![now])?;
                OpOutcome::Purged(records as u64)
            }
        });
    }
    if *next_seq != first_seq {
        tx.prepare_cached("UPDATE settings SET value = ?1 WHERE name = 'next_seq'")?
            .execute(params![next_seq.to_string()])?;
    }
    tx.commit()?;
    Ok(batch
        .drain(..)
        .zip(outcomes)
        .map(|(op, outcome)| match (op, outcome) {
            (WriteOp::Append { reply, .. }, OpOutcome::Append(a)) => Done::Append(reply, a),
            (WriteOp::AppendMany { reply, .. }, OpOutcome::AppendMany(n)) => {
                Done::AppendMany(reply, n)
            }
            (WriteOp::CreateEvent { reply, meta }, OpOutcome::Created(created)) => {
                Done::CreateEvent(
                    reply,
                    if created {
                        Ok(())
                    } else {
                        Err(StoreError::AlreadyExists(format!("event {}", meta.id)))
                    },
                )
            }
            (WriteOp::PutView { reply, .. }, OpOutcome::ViewStored(s)) => Done::PutView(reply, s),
            (WriteOp::PurgeExpired { reply, .. }, OpOutcome::Purged(n)) => Done::Purged(reply, n),
            _ => unreachable!("each op produces the outcome of its own kind"),
        })
        .collect())
}

enum OpOutcome {
    Append(Appended),
    AppendMany(u64),
    Created(bool),
    ViewStored(bool),
    Purged(u64),
}

fn insert_record(
    tx: &rusqlite::Transaction<'_>,
    event: EventId,
    record: &Record,
    next_seq: &mut i64,
) -> rusqlite::Result<Appended> {
    let key = record.key();
    let body = serde_json::to_string(record).expect("records serialize");
    let event = event.to_string();
    let inserted = tx
        .prepare_cached(
            "INSERT INTO records (event, seq, key, id, body) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(event, key) DO NOTHING",
        )?
        .execute(params![event, *next_seq, key.as_str(), record.id.to_string(), body])?;
    if inserted == 1 {
        *next_seq += 1;
        return Ok(Appended::Inserted);
    }
    let existing: String = tx
        .prepare_cached("SELECT body FROM records WHERE event = ?1 AND key = ?2")?
        .query_row(params![event, key.as_str()], |r| r.get(0))?;
    let existing = serde_json::from_str(&existing).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Appended::Exists(existing))
}

fn decode(body: &str) -> StoreResult<Record> {
    serde_json::from_str(body).map_err(corrupt)
}

fn query_records(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<Record>> {
    let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
    let rows = stmt
        .query_map(params, |r| r.get::<_, String>(0))
        .map_err(unavailable)?;
    let mut out = Vec::new();
    for body in rows {
        out.push(decode(&body.map_err(unavailable)?)?);
    }
    Ok(out)
}

#[async_trait]
impl Directory for SqliteStore {
    async fn create(&self, meta: &EventMeta) -> StoreResult<()> {
        let meta = meta.clone();
        self.write(|reply| WriteOp::CreateEvent { meta, reply })
            .await
    }

    async fn get(&self, id: EventId) -> StoreResult<Option<EventMeta>> {
        self.read(move |c| {
            let json: Option<String> = c
                .prepare_cached("SELECT meta FROM events WHERE id = ?1")
                .and_then(|mut s| {
                    s.query_row(params![id.to_string()], |r| r.get(0))
                        .optional()
                })
                .map_err(unavailable)?;
            json.map(|j| serde_json::from_str(&j).map_err(corrupt))
                .transpose()
        })
        .await
    }

    async fn list(&self) -> StoreResult<Vec<EventMeta>> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached("SELECT meta FROM events ORDER BY id")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for j in rows {
                out.push(serde_json::from_str(&j.map_err(unavailable)?).map_err(corrupt)?);
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl Log for SqliteStore {
    async fn append(&self, log: EventLog, record: Record) -> StoreResult<Appended> {
        self.write(|reply| WriteOp::Append {
            event: log.event,
            record,
            reply,
        })
        .await
    }

    async fn get(&self, log: EventLog, key: &RecordKey) -> StoreResult<Option<Record>> {
        let event = log.event.to_string();
        self.read_point(|c| point_lookup(c, &event, &Lookup::Key(key.clone())))
    }

    async fn latest(&self, log: EventLog, sequence: &Sequence) -> StoreResult<Option<Record>> {
        let event = log.event.to_string();
        self.read_point(|c| point_lookup(c, &event, &Lookup::Latest(*sequence)))
    }

    async fn lookup(&self, log: EventLog, lookups: &[Lookup]) -> StoreResult<Vec<Option<Record>>> {
        let event = log.event.to_string();
        self.read_point(|c| lookups.iter().map(|l| point_lookup(c, &event, l)).collect())
    }

    async fn read_event(&self, log: EventLog) -> StoreResult<Vec<Record>> {
        self.read(move |c| {
            query_records(
                c,
                "SELECT body FROM records WHERE event = ?1",
                params![log.event.to_string()],
            )
        })
        .await
    }

    async fn read_page(
        &self,
        log: EventLog,
        after: Option<RecordId>,
        limit: usize,
    ) -> StoreResult<Vec<Record>> {
        let after = after.map(|a| a.to_string()).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            query_records(
                c,
                "SELECT body FROM records WHERE event = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                params![log.event.to_string(), after, limit],
            )
        })
        .await
    }

    async fn read_since(
        &self,
        log: EventLog,
        cursor: LogCursor,
    ) -> StoreResult<Option<(Vec<Record>, LogCursor)>> {
        self.read(move |c| {
            // A range of the (event, seq) primary key.
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, body FROM records WHERE event = ?2 AND seq > ?1 ORDER BY seq",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![cursor.0 as i64, log.event.to_string()], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(unavailable)?;
            let mut out = Vec::new();
            let mut upto = cursor.0;
            for row in rows {
                let (seq, body) = row.map_err(unavailable)?;
                upto = upto.max(seq as u64);
                out.push(decode(&body)?);
            }
            Ok(Some((out, LogCursor(upto))))
        })
        .await
    }

    async fn append_batch(&self, log: EventLog, records: Vec<Record>) -> StoreResult<u64> {
        self.write(|reply| WriteOp::AppendMany {
            event: log.event,
            records,
            reply,
        })
        .await
    }
}

#[async_trait]
impl Views for SqliteStore {
    async fn put(&self, event: EventId, view: Arc<StoredView>) -> StoreResult<bool> {
        {
            let mut cache = self.inner.views.write().unwrap_or_else(|p| p.into_inner());
            match cache.get(&event) {
                Some(stored) if stored.records > view.records => return Ok(false),
                _ => {
                    cache.insert(event, view.clone());
                }
            }
        }
        self.write(|reply| WriteOp::PutView {
            event,
            view,
            force: false,
            reply,
        })
        .await
    }

    async fn replace(&self, event: EventId, view: Arc<StoredView>) -> StoreResult<()> {
        self.inner
            .views
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(event, view.clone());
        self.write(|reply| WriteOp::PutView {
            event,
            view,
            force: true,
            reply,
        })
        .await
        .map(drop)
    }

    async fn get(&self, event: EventId) -> StoreResult<Option<Arc<StoredView>>> {
        if let Some(v) = self
            .inner
            .views
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&event)
        {
            return Ok(Some(v.clone()));
        }
        let stored = self
            .read(move |c| {
                c.prepare_cached(
                    "SELECT records, guest, guest_version, host, host_version FROM views WHERE event = ?1",
                )
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
                        })
                    })
                    .optional()
                })
                .map_err(unavailable)
            })
            .await?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        let mut cache = self.inner.views.write().unwrap_or_else(|p| p.into_inner());
        let entry = cache.entry(event).or_insert_with(|| Arc::new(stored));
        Ok(Some(entry.clone()))
    }
}
