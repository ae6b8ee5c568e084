//! Damage done on purpose to a closed SQLite store, for the tests that the
//! store and the server notice it.

use std::path::Path;

/// Overwrites the first bytes of the records table's root page of the
/// database at `file` with a page type SQLite does not have, after moving
/// every page into the file itself (no write-ahead log left). The store
/// must be closed.
pub fn damage_the_records_root_page(file: &Path) {
    let conn = rusqlite::Connection::open(file).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let (page_size, root): (u64, u64) = conn
        .query_row(
            "SELECT (SELECT page_size FROM pragma_page_size), rootpage \
             FROM sqlite_master WHERE name = 'records'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(file).unwrap();
    let at = usize::try_from((root - 1) * page_size).unwrap();
    bytes[at..at + 16].fill(0xEE);
    std::fs::write(file, bytes).unwrap();
}
