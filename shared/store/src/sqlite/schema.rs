//! What the database file holds and how connections to it are set up: the
//! tables, the pragmas of the writer and of the readers, and the settings
//! created with the database (the commit counter, the client salt).

use std::path::Path;

use rusqlite::{params, Connection};

use crate::{StoreError, StoreResult};

/// The writer's connection. WAL lets readers run beside the one writer;
/// `synchronous = FULL` makes a commit durable before the writer
/// acknowledges it (a write the API accepted survives a power cut); the busy
/// timeout covers an operator's tool holding the file briefly.
const WRITER_PRAGMAS: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = FULL;
    PRAGMA busy_timeout = 5000;
";

/// A reader's connection: it may never write, so a bug in a read path
/// cannot bypass the writer's commit order.
const READER_PRAGMAS: &str = "
    PRAGMA busy_timeout = 5000;
    PRAGMA query_only = ON;
";

/// Every table, created if missing, so opening an empty directory makes a
/// working store and opening an old one changes nothing.
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
-- projected_at: when the projector made the views (ms; 0 where unknown,
-- as for views from before it was kept; see ADD_COLUMNS). questions: how
-- many the event has been asked (0 for views from before it was kept).
CREATE TABLE IF NOT EXISTS views (
    event         TEXT PRIMARY KEY,
    records       INTEGER NOT NULL,
    guest         BLOB NOT NULL,
    guest_version TEXT NOT NULL,
    host          BLOB NOT NULL,
    host_version  TEXT NOT NULL,
    projected_at  INTEGER NOT NULL DEFAULT 0,
    questions     INTEGER NOT NULL DEFAULT 0
);
"#;

/// Columns added to tables after their first release, each with the table
/// it belongs to: a database made before them gains them when opened.
const ADD_COLUMNS: &[(&str, &str, &str)] = &[
    (
        "views",
        "projected_at",
        "ALTER TABLE views ADD COLUMN projected_at INTEGER NOT NULL DEFAULT 0",
    ),
    (
        "views",
        "questions",
        "ALTER TABLE views ADD COLUMN questions INTEGER NOT NULL DEFAULT 0",
    ),
];

/// Stores a fresh salt unless the database already has one: the salt must
/// outlive restarts, or one client would hash differently from day to day.
const INSERT_SALT: &str = "
    INSERT INTO settings (name, value) VALUES ('client_salt', ?1)
    ON CONFLICT(name) DO NOTHING
";
const SELECT_SALT: &str = "SELECT value FROM settings WHERE name = 'client_salt'";

/// Opens the writer's connection to `path`, creating the tables if missing.
pub(super) fn open_writer(path: &Path) -> StoreResult<Connection> {
    let conn = open(path)?;
    conn.execute_batch(WRITER_PRAGMAS)
        .map_err(|e| StoreError::unavailable(format!("setting up {}", path.display()), e))?;
    conn.execute_batch(SCHEMA).map_err(|e| {
        StoreError::unavailable(format!("creating the tables of {}", path.display()), e)
    })?;
    add_missing_columns(&conn).map_err(|e| {
        StoreError::unavailable(format!("adding new columns to {}", path.display()), e)
    })?;
    Ok(conn)
}

/// Adds the [`ADD_COLUMNS`] an older database lacks (SQLite has no
/// `ADD COLUMN IF NOT EXISTS`).
fn add_missing_columns(conn: &Connection) -> rusqlite::Result<()> {
    for (table, column, add) in ADD_COLUMNS {
        let present: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
            params![table, column],
            |r| r.get(0),
        )?;
        if !present {
            match conn.execute_batch(add) {
                // Another process opening the same old database added it
                // between the check and here.
                Err(e) if e.to_string().contains("duplicate column name") => {}
                other => other?,
            }
        }
    }
    Ok(())
}

/// Opens a read-only connection to `path`.
pub(super) fn open_reader(path: &Path) -> StoreResult<Connection> {
    let conn = open(path)?;
    conn.execute_batch(READER_PRAGMAS).map_err(|e| {
        StoreError::unavailable(format!("setting up a reader of {}", path.display()), e)
    })?;
    Ok(conn)
}

fn open(path: &Path) -> StoreResult<Connection> {
    Connection::open(path)
        .map_err(|e| StoreError::unavailable(format!("opening {}", path.display()), e))
}

/// The random salt created with the database, for hashing client addresses.
pub(super) fn load_or_create_salt(conn: &Connection) -> StoreResult<Vec<u8>> {
    let context = "loading the client salt";
    let fresh = openfloor_domain::ids::hex_lower(&rand::random::<[u8; 32]>());
    conn.execute(INSERT_SALT, params![fresh])
        .map_err(|e| StoreError::unavailable(context, e))?;
    let salt: String = conn
        .query_row(SELECT_SALT, [], |r| r.get(0))
        .map_err(|e| StoreError::unavailable(context, e))?;
    Ok(salt.into_bytes())
}
