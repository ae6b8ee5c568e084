//! The embedded backend: one SQLite database (WAL) in the data directory.
//!
//! - `schema`: the tables, and how connections are set up;
//! - `writer`: the one writer thread, which commits queued writes in
//!   groups and acknowledges each only once it is durable, giving the log a
//!   commit order;
//! - `writes`: what each write does;
//! - `reads`: a small pool of read-only connections, which WAL lets run
//!   beside the writer, and the read queries;
//! - `views`: the in-memory copy of the views;
//! - `retention`: purging expired events;
//! - `lock`: one writing process per data directory ([`WriterLock`]).
//!
//! Point reads (a key, the latest of a sequence) take microseconds and never
//! wait for the writer, so they run on the calling thread, saving the thread
//! hand-off that profiling showed dominating the vote path; whole-event
//! reads go to the blocking pool.

mod lock;
mod reads;
mod retention;
mod schema;
mod views;
mod writer;
mod writes;

pub use lock::{LockError, WriterLock, LOCK_FILE};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use openfloor_domain::ids::{EventId, RecordId};
use openfloor_domain::record::{Record, RecordKey, Sequence};
use rusqlite::Connection;

use self::reads::ReaderPool;
use self::views::ViewCache;
pub use self::views::DEFAULT_VIEW_CACHE_BYTES;
use self::writer::Writer;
use self::writes::{AppendRecord, AppendRecords, CreateEvent, StoreView};
use crate::{
    Appended, DamagedEvents, Directory, EventLog, EventMeta, Log, LogCursor, Lookup, Salvaged,
    Store, StoreError, StoreResult, StoredView, Views,
};

/// SQLite's quick integrity check, reporting at most 10 findings.
const QUICK_CHECK: &str = "PRAGMA quick_check(10)";

/// The database's file name inside the data directory.
const DATABASE_FILE: &str = "openfloor.sqlite3";

/// A file written beside the database once it exists, and never removed:
/// a directory that holds it but no database has lost its store (the file
/// deleted or moved), which opening must not mistake for an empty directory
/// and fill with a new store. (A whole directory gone, as on a volume not
/// mounted in its place, leaves no marker: that is not detected.)
pub const STORE_MARKER: &str = "openfloor.store";

const STORE_MARKER_TEXT: &str = "This directory holds an openfloor store (openfloor.sqlite3).\n\
    If that file is gone, openfloor refuses to start a new, empty store here\n\
    unless told to (--accept-lost-data); restore the file from a backup instead.\n";

/// What opening does when the directory once held a store whose database
/// is gone (see [`STORE_MARKER`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfDatabaseGone {
    /// Refuse, naming the ways out.
    Refuse,
    /// Start a new, empty store: the operator has accepted the loss.
    StartAnew,
}

struct Inner {
    writer: Writer,
    readers: ReaderPool,
    /// Views are served from memory; see [`ViewCache`].
    views: ViewCache,
    client_salt: Vec<u8>,
    damage: DamagedEvents,
    path: PathBuf,
}

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl SqliteStore {
    /// Whether `dir` holds a store (an operator's `--data` may be mistyped;
    /// opening would create an empty one there).
    pub fn exists_in(dir: &Path) -> bool {
        dir.join(DATABASE_FILE).is_file()
    }

    /// Opens (creating if needed) the store in directory `dir`, refusing a
    /// directory whose store is gone, keeping [`DEFAULT_VIEW_CACHE_BYTES`]
    /// of views in memory.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        Self::open_with(dir, IfDatabaseGone::Refuse, DEFAULT_VIEW_CACHE_BYTES)
    }

    /// [`SqliteStore::open`], choosing what to do if `dir` lost its store
    /// and how many bytes of views to keep in memory.
    pub fn open_with(
        dir: &Path,
        if_gone: IfDatabaseGone,
        view_cache_bytes: u64,
    ) -> StoreResult<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::unavailable(format!("creating {}", dir.display()), e))?;
        let path = dir.join(DATABASE_FILE);
        // SQLite would take an emptied file for a new database and start
        // over, as if every event had never been: refuse instead.
        if std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == 0) {
            return Err(StoreError::corrupt_msg(format!(
                "{} is empty (0 bytes): the store it held is gone. Restore it from a \
                 backup; or delete the file and start with --accept-lost-data \
                 (OPENFLOOR_ACCEPT_LOST_DATA=true) for a new, empty store",
                path.display()
            )));
        }
        let marker = dir.join(STORE_MARKER);
        if if_gone == IfDatabaseGone::Refuse && marker.exists() && !path.exists() {
            return Err(StoreError::corrupt_msg(format!(
                "{} held an openfloor store ({STORE_MARKER} says so) but its database {} \
                 is gone. Restore it (with its -wal file, if any) from a backup; or, to \
                 start a new, empty store here, run with --accept-lost-data \
                 (OPENFLOOR_ACCEPT_LOST_DATA=true) or delete the directory",
                dir.display(),
                path.display()
            )));
        }
        let conn = schema::open_writer(&path)?;
        let client_salt = schema::load_or_create_salt(&conn)?;
        if !marker.exists() {
            std::fs::write(&marker, STORE_MARKER_TEXT)
                .map_err(|e| StoreError::unavailable(format!("writing {}", marker.display()), e))?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                writer: Writer::spawn(conn)?,
                readers: ReaderPool::new(path.clone()),
                views: ViewCache::new(view_cache_bytes),
                client_salt,
                damage: DamagedEvents::new(),
                path,
            }),
        })
    }

    /// Runs SQLite's quick integrity check (`PRAGMA quick_check`: every
    /// page's structure and every row's format, without matching indexes
    /// against their tables, which takes far longer), for a server to run
    /// before it serves; says how long it took. A failure is
    /// [`StoreError::Corrupt`] with SQLite's first findings.
    pub async fn quick_check(&self) -> StoreResult<Duration> {
        let path = self.inner.path.clone();
        self.read(move |c| {
            let started = Instant::now();
            let failed = |e| {
                StoreError::corrupt(
                    format!("{}: SQLite's integrity check could not run", path.display()),
                    e,
                )
            };
            let mut stmt = c.prepare(QUICK_CHECK).map_err(failed)?;
            let findings = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(failed)?;
            if findings != ["ok"] {
                return Err(StoreError::corrupt_msg(format!(
                    "{} failed SQLite's integrity check: {}. Restore it from a backup",
                    path.display(),
                    findings.join("; ")
                )));
            }
            Ok(started.elapsed())
        })
        .await
    }

    /// The three roles backed by this database.
    pub fn store(&self) -> Store {
        Store {
            directory: Arc::new(self.clone()),
            log: Arc::new(self.clone()),
            views: Arc::new(self.clone()),
            states: None,
            damage: self.inner.damage.clone(),
        }
    }

    /// How many bytes of views are held in memory (at most the configured
    /// bound, give or take the view just added).
    pub fn view_bytes_in_memory(&self) -> u64 {
        self.inner.views.bytes()
    }

    /// A random salt created with the database, for hashing client addresses.
    pub fn client_salt(&self) -> &[u8] {
        &self.inner.client_salt
    }

    /// Runs `f` on a pooled read connection, off the async threads (for
    /// reads that may scan a whole event).
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.readers.with_reader(f))
            .await
            .map_err(|e| StoreError::unavailable("running a read on the blocking pool", e))?
    }

    /// Runs a point read on the calling thread (see the module doc).
    fn read_point<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        self.inner.readers.with_reader(f)
    }
}

#[async_trait]
impl Directory for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(backend = "sqlite", event = %meta.id))]
    async fn create(&self, meta: &EventMeta) -> StoreResult<()> {
        let id = meta.id;
        let meta = meta.clone();
        if self.inner.writer.write(CreateEvent { meta }).await? {
            Ok(())
        } else {
            Err(StoreError::AlreadyExists(format!("event {id}")))
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "sqlite", event = %id))]
    async fn get(&self, id: EventId) -> StoreResult<Option<EventMeta>> {
        self.read(move |c| reads::event_meta(c, id)).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "sqlite"))]
    async fn list(&self) -> StoreResult<Vec<EventMeta>> {
        let reads::Listing { events, damaged } = self.read(reads::all_events).await?;
        for (id, error) in damaged {
            tracing::error!(
                event = %id,
                %error,
                "directory entry damaged; this event is left out until repaired"
            );
            // Shown by /healthz and the metrics like a damaged record.
            if let Ok(event) = id.parse::<EventId>() {
                let entry = crate::DamagedRecord {
                    location: "its directory entry".to_owned(),
                    error,
                };
                self.inner.damage.read_part(event, &[entry]);
            }
        }
        Ok(events)
    }
}

#[async_trait]
impl Log for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "sqlite", event = %log.event, key = %record.key(),
    ))]
    async fn append(&self, log: EventLog, record: Record) -> StoreResult<Appended> {
        let event = log.event;
        self.inner
            .writer
            .write(AppendRecord { event, record })
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "sqlite", event = %log.event, key = %key,
    ))]
    async fn get(&self, log: EventLog, key: &RecordKey) -> StoreResult<Option<Record>> {
        self.read_point(|c| reads::point_lookup(c, log.event, &Lookup::Key(key.clone())))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "sqlite", event = %log.event, sequence = ?sequence,
    ))]
    async fn latest(&self, log: EventLog, sequence: &Sequence) -> StoreResult<Option<Record>> {
        self.read_point(|c| reads::point_lookup(c, log.event, &Lookup::Latest(*sequence)))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "sqlite", event = %log.event, lookups = lookups.len(),
    ))]
    async fn lookup(&self, log: EventLog, lookups: &[Lookup]) -> StoreResult<Vec<Option<Record>>> {
        self.read_point(|c| {
            lookups
                .iter()
                .map(|l| reads::point_lookup(c, log.event, l))
                .collect()
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "sqlite", event = %log.event,
    ))]
    async fn read_event(&self, log: EventLog) -> StoreResult<Vec<Record>> {
        self.read_salvaged(log).await?.whole(log.event)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "sqlite", event = %log.event,
    ))]
    async fn read_salvaged(&self, log: EventLog) -> StoreResult<Salvaged> {
        self.read(move |c| reads::event_records(c, log.event)).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "sqlite", event = %log.event, after = ?after, limit,
    ))]
    async fn read_page(
        &self,
        log: EventLog,
        after: Option<RecordId>,
        limit: usize,
    ) -> StoreResult<Vec<Record>> {
        self.read(move |c| reads::records_page(c, log.event, after, limit))
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "sqlite", event = %log.event, cursor = cursor.0,
    ))]
    async fn read_since(
        &self,
        log: EventLog,
        cursor: LogCursor,
    ) -> StoreResult<Option<(Salvaged, LogCursor)>> {
        self.read(move |c| reads::records_since(c, log.event, cursor))
            .await
            .map(Some)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "sqlite", event = %log.event, records = records.len(),
    ))]
    async fn append_batch(&self, log: EventLog, records: Vec<Record>) -> StoreResult<u64> {
        let event = log.event;
        self.inner
            .writer
            .write(AppendRecords { event, records })
            .await
    }
}

#[async_trait]
impl Views for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "sqlite", event = %event, records = view.records,
    ))]
    async fn put(&self, event: EventId, view: Arc<StoredView>) -> StoreResult<bool> {
        if !self.inner.views.offer(event, &view) {
            return Ok(false);
        }
        let force = false;
        let stored = self
            .inner
            .writer
            .write(StoreView {
                event,
                view: view.clone(),
                force,
            })
            .await?;
        if stored {
            self.inner.views.remember(event, view);
        }
        Ok(stored)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "sqlite", event = %event, records = view.records,
    ))]
    async fn replace(&self, event: EventId, view: Arc<StoredView>) -> StoreResult<()> {
        self.inner.views.replace(event, view.clone());
        let force = true;
        self.inner
            .writer
            .write(StoreView { event, view, force })
            .await
            .map(drop)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "sqlite", event = %event))]
    async fn get(&self, event: EventId) -> StoreResult<Option<Arc<StoredView>>> {
        if let Some(view) = self.inner.views.get(event) {
            return Ok(Some(view));
        }
        let puts_before = self.inner.views.puts();
        let stored = self.read(move |c| reads::stored_view(c, event)).await?;
        Ok(stored.map(|s| self.inner.views.fill(event, s, puts_before)))
    }
}
