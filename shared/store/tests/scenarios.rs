//! The storage scenarios (`openfloor_testing::scenarios`) against the
//! memory and SQLite backends, and SQLite's own promises.

use openfloor_store::memory::MemoryStore;
use openfloor_store::sqlite::SqliteStore;
use openfloor_store::Store;
use openfloor_testing::scenarios::{event, meta, view, vote};

openfloor_testing::backend_scenarios!(memory, fresh_memory);
openfloor_testing::backend_scenarios!(sqlite, fresh_sqlite);

async fn fresh_memory() -> Option<(Store, ())> {
    Some((MemoryStore::store(), ()))
}

async fn fresh_sqlite() -> Option<(Store, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    Some((SqliteStore::open(dir.path()).unwrap().store(), dir))
}

#[tokio::test]
async fn sqlite_keeps_records_and_views_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = event(1);
    {
        let store = SqliteStore::open(dir.path()).unwrap().store();
        store.directory.create(&meta(log)).await.unwrap();
        store.log.append(log, vote(log, 1, 1, 1, 1)).await.unwrap();
        store.views.put(log.event, view(1)).await.unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap().store();
    assert_eq!(store.log.read_event(log).await.unwrap().len(), 1);
    let stored = store.views.get(log.event).await.unwrap().unwrap();
    assert_eq!(
        (stored.records, stored.projected_at),
        (1, view(1).projected_at)
    );
    assert!(store.directory.get(log.event).await.unwrap().is_some());
}

/// A database made before views kept their projection time opens, keeps
/// its views (their time unknown: 0) and stores the time from then on.
#[tokio::test]
async fn sqlite_opens_a_database_from_before_projection_times() {
    let dir = tempfile::tempdir().unwrap();
    let log = event(1);
    {
        let store = SqliteStore::open(dir.path()).unwrap().store();
        store.directory.create(&meta(log)).await.unwrap();
        store.views.put(log.event, view(1)).await.unwrap();
    }
    // The views table as it was.
    let old = rusqlite::Connection::open(dir.path().join("openfloor.sqlite3")).unwrap();
    old.execute_batch("ALTER TABLE views DROP COLUMN projected_at")
        .unwrap();
    drop(old);

    let store = SqliteStore::open(dir.path()).unwrap().store();
    let stored = store.views.get(log.event).await.unwrap().unwrap();
    assert_eq!((stored.records, stored.projected_at), (1, 0));
    store.views.put(log.event, view(2)).await.unwrap();
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap().store();
    let stored = store.views.get(log.event).await.unwrap().unwrap();
    assert_eq!(
        (stored.records, stored.projected_at),
        (2, view(2).projected_at)
    );
}

#[tokio::test]
async fn sqlite_purges_only_expired_events() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path()).unwrap();
    let store = sqlite.store();
    let (old, live) = (event(1), event(2));
    let mut expired = meta(old);
    expired.expires_at = 1_000;
    let mut current = meta(live);
    current.expires_at = 10_000;
    for (log, m) in [(old, &expired), (live, &current)] {
        store.directory.create(m).await.unwrap();
        store.log.append(log, vote(log, 1, 1, 1, 1)).await.unwrap();
        store.views.put(log.event, view(1)).await.unwrap();
    }
    // Both seen damaged: the purged one's damage goes with it.
    for log in [old, live] {
        let damaged = openfloor_store::DamagedRecord {
            location: "somewhere".into(),
            error: "unreadable".into(),
        };
        store.damage.read_whole(log.event, &[damaged]);
    }
    assert_eq!(sqlite.purge_expired(5_000).await.unwrap(), 1);
    assert_eq!(store.damage.events(), [live.event]);
    assert!(store.directory.get(old.event).await.unwrap().is_none());
    assert!(store.log.read_event(old).await.unwrap().is_empty());
    assert!(store.views.get(old.event).await.unwrap().is_none());
    assert!(store.directory.get(live.event).await.unwrap().is_some());
    assert_eq!(store.log.read_event(live).await.unwrap().len(), 1);
    assert!(store.views.get(live.event).await.unwrap().is_some());
}

/// Collects what a `fmt` subscriber writes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn sqlite_calls_open_debug_spans_naming_backend_event_and_key() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let log = event(1);
    let record = vote(log, 1, 1, 1, 1);
    let key = record.key();
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path()).unwrap().store();
            store.log.append(log, record).await.unwrap();
        });
    });
    let output = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let expected = format!("append{{backend=\"sqlite\" event={} key={key}}}", log.event);
    assert!(output.contains(&expected), "{output}");
    assert!(output.contains("DEBUG"), "{output}");
}

/// Two processes writing one data directory (the server, and an operator
/// command that should not run beside it but did): the commit-order numbers
/// come from the database inside each write's transaction, so neither
/// writer's appends fail or hide the other's from an incremental reader.
#[tokio::test]
async fn sqlite_writers_sharing_a_directory_number_records_in_commit_order() {
    let dir = tempfile::tempdir().unwrap();
    let first = SqliteStore::open(dir.path()).unwrap().store();
    let second = SqliteStore::open(dir.path()).unwrap().store();
    let log = event(1);
    for ms in 1..=20u64 {
        let writer = if ms % 2 == 0 { &first } else { &second };
        let record = vote(log, ms, u128::from(ms), 1, 1);
        assert_eq!(
            writer.log.append(log, record).await.unwrap(),
            openfloor_store::Appended::Inserted
        );
    }
    let (records, _) = first
        .log
        .read_since(log, openfloor_store::LogCursor::default())
        .await
        .unwrap()
        .expect("SQLite hands out cursors");
    assert_eq!(
        records.records.len(),
        20,
        "every record, whichever process wrote it"
    );
}

/// An emptied database file (a failed copy, a truncation) is not a new
/// store: opening it is refused with the way out, and the file is left as
/// it was.
#[test]
fn sqlite_refuses_an_emptied_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openfloor.sqlite3");
    std::fs::write(&file, b"").unwrap();
    let error = SqliteStore::open(dir.path()).err().expect("refused");
    assert!(
        matches!(error, openfloor_store::StoreError::Corrupt { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("is empty (0 bytes)"), "{error}");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 0, "left as it was");
    // Deleting it is how an operator says "start a new store".
    std::fs::remove_file(&file).unwrap();
    assert!(SqliteStore::open(dir.path()).is_ok());
}

/// One damaged directory row leaves only its own event out: listing (and
/// so the catch-up, the sweep and `verify --all`) goes on for the others,
/// and the damaged ones are counted as damaged (`/healthz`, the metrics).
#[tokio::test]
async fn sqlite_lists_every_event_but_a_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    let (good, damaged, not_text) = (event(31), event(32), event(33));
    {
        let store = SqliteStore::open(dir.path()).unwrap().store();
        for log in [good, damaged, not_text] {
            store.directory.create(&meta(log)).await.unwrap();
        }
    }
    let conn = rusqlite::Connection::open(dir.path().join("openfloor.sqlite3")).unwrap();
    conn.execute(
        "UPDATE events SET meta = '{not json' WHERE id = ?1",
        [damaged.event.to_string()],
    )
    .unwrap();
    conn.execute(
        "UPDATE events SET meta = x'00ff' WHERE id = ?1",
        [not_text.event.to_string()],
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(dir.path()).unwrap().store();
    let listed: Vec<_> = store
        .directory
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(listed, [good.event]);
    assert_eq!(store.damage.events(), [damaged.event, not_text.event]);
    assert!(
        store.directory.get(damaged.event).await.is_err(),
        "named, not hidden"
    );
}

/// A record whose stored body cannot be decoded is handed up apart, named
/// by its key and commit number, and the read goes on: whole reads and
/// incremental ones alike. A caller that needs every record is refused,
/// told which one is damaged.
#[tokio::test]
async fn sqlite_reads_every_record_but_a_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = event(41);
    let store = SqliteStore::open(dir.path()).unwrap().store();
    let records: Vec<_> = (1..=3).map(|v| vote(log, v, 1, v as u8, 1)).collect();
    for r in &records {
        store.log.append(log, r.clone()).await.unwrap();
    }
    let conn = rusqlite::Connection::open(dir.path().join("openfloor.sqlite3")).unwrap();
    // One body no longer JSON, one no longer even text.
    for (body, record) in [("'{\"kind\": \"vo'", &records[0]), ("x'00ff'", &records[2])] {
        let sql = format!("UPDATE records SET body = {body} WHERE id = ?1");
        assert_eq!(conn.execute(&sql, [record.id.to_string()]).unwrap(), 1);
    }
    drop(conn);

    let read = store.log.read_salvaged(log).await.unwrap();
    assert_eq!(read.records, [records[1].clone()]);
    let named: Vec<_> = read.damaged.iter().map(|d| d.location.as_str()).collect();
    let key = |i: usize| records[i].key().as_str().to_owned();
    assert_eq!(
        named,
        [
            format!("{} (commit 1)", key(0)),
            format!("{} (commit 3)", key(2))
        ]
    );
    assert_eq!(read.stored(), 3);

    let (since, cursor) = store
        .log
        .read_since(log, openfloor_store::LogCursor::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((since.records.len(), since.damaged.len()), (1, 2));
    assert_eq!(cursor, openfloor_store::LogCursor(3), "past the damage");

    let refused = store.log.read_event(log).await.unwrap_err();
    assert!(
        matches!(refused, openfloor_store::StoreError::Corrupt { .. })
            && refused.to_string().contains(&key(0))
            && refused.to_string().contains(&log.event.to_string()),
        "{refused}"
    );
}

/// A directory that held a store whose database is gone is refused, not
/// filled with a new empty store, unless the loss is accepted; a store
/// made before the marker existed gains it when opened.
#[test]
fn sqlite_refuses_a_directory_whose_database_is_gone() {
    use openfloor_store::sqlite::{IfDatabaseGone, STORE_MARKER};
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    std::fs::remove_file(dir.path().join(STORE_MARKER)).unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    assert!(
        dir.path().join(STORE_MARKER).is_file(),
        "marked when opened"
    );
    for file in [
        "openfloor.sqlite3",
        "openfloor.sqlite3-wal",
        "openfloor.sqlite3-shm",
    ] {
        let _ = std::fs::remove_file(dir.path().join(file));
    }
    let error = SqliteStore::open(dir.path()).err().expect("refused");
    assert!(error.to_string().contains("is gone"), "{error}");
    assert!(!SqliteStore::exists_in(dir.path()), "nothing created");
    SqliteStore::open_with(dir.path(), IfDatabaseGone::StartAnew, 1 << 20).unwrap();
    assert!(SqliteStore::exists_in(dir.path()));
}

/// SQLite's quick check passes on a sound database and fails, naming what
/// it found, on one with a damaged page.
#[tokio::test]
async fn sqlite_quick_check_finds_a_damaged_page() {
    let dir = tempfile::tempdir().unwrap();
    let log = event(42);
    {
        let sqlite = SqliteStore::open(dir.path()).unwrap();
        let store = sqlite.store();
        for v in 1..=50 {
            store
                .log
                .append(log, vote(log, v, 1, v as u8, 1))
                .await
                .unwrap();
        }
        sqlite.quick_check().await.expect("sound");
    }
    openfloor_testing::damage::damage_the_records_root_page(&dir.path().join("openfloor.sqlite3"));

    let sqlite = SqliteStore::open(dir.path()).unwrap();
    let error = sqlite.quick_check().await.unwrap_err();
    assert!(
        matches!(error, openfloor_store::StoreError::Corrupt { .. })
            && error.to_string().contains("integrity check"),
        "{error}"
    );
}

/// The views kept in memory are bounded in bytes; a view dropped from
/// memory is read back from the table, and the guard still holds for it.
#[tokio::test]
async fn sqlite_keeps_a_bounded_copy_of_its_views_in_memory() {
    use std::sync::Arc;

    use openfloor_domain::ids::EventId;
    use openfloor_domain::view::RenderedView;
    use openfloor_store::sqlite::IfDatabaseGone;
    use openfloor_store::StoredView;

    let dir = tempfile::tempdir().unwrap();
    let bound = 16 * 1024;
    let sqlite = SqliteStore::open_with(dir.path(), IfDatabaseGone::Refuse, bound).unwrap();
    let store = sqlite.store();
    let view = |n: u64, records: u64| {
        let rendered = |who: &str| RenderedView {
            json: format!("{{\"{who}\":\"{}\"}}", "x".repeat(1_000)).into_bytes(),
            version: format!("{who}{n}-{records}"),
        };
        Arc::new(StoredView {
            records,
            guest: rendered("g"),
            host: rendered("h"),
            projected_at: 1,
            questions: n,
        })
    };
    let events: Vec<EventId> = (0..64)
        .map(|n| EventId::from_ulid(ulid::Ulid::from_parts(1_700_000_000_000, n)))
        .collect();
    for (n, event) in events.iter().enumerate() {
        assert!(store.views.put(*event, view(n as u64, 5)).await.unwrap());
    }
    let held = sqlite.view_bytes_in_memory();
    assert!(held <= bound, "{held} bytes of views held, bound {bound}");
    for (n, event) in events.iter().enumerate() {
        // An older view never replaces one dropped from memory.
        assert!(!store.views.put(*event, view(n as u64, 4)).await.unwrap());
        let read = store.views.get(*event).await.unwrap().unwrap();
        assert_eq!(*read, *view(n as u64, 5));
        assert_eq!(read.questions, n as u64);
    }
    assert!(sqlite.view_bytes_in_memory() <= bound);
}
