//! The one writer thread, and group commit.
//!
//! Every write goes through one thread that drains whatever is queued into a
//! single transaction, then answers each write after that transaction is
//! durable (`synchronous = FULL`). One fsync then covers hundreds of votes,
//! and a single writer also gives the log a commit order (`seq`), which lets
//! the projector read incrementally without ever skipping a record.
//!
//! Each kind of write is a type implementing [`Write`], with its own outcome
//! type; the queue carries it with a reply channel of exactly that type, so
//! the thread never has to match a reply to an outcome.

use std::sync::Arc;

use rusqlite::types::Type;
use rusqlite::{params, Connection, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use crate::{StoreError, StoreResult};

/// Writes waiting for the writer beyond this are refused with
/// [`StoreError::Overloaded`] (a 503 with `Retry-After`), so a burst cannot
/// grow memory without bound or make every request time out.
const WRITE_QUEUE_CAPACITY: usize = 16_384;
/// The most writes folded into one transaction: large enough to amortise the
/// fsync, small enough to keep the first write of a batch waiting briefly.
const MAX_BATCH: usize = 2_048;

/// Where the commit-order cursor is kept, so numbering resumes after a
/// restart instead of reusing numbers.
const SELECT_NEXT_SEQ: &str = "SELECT value FROM settings WHERE name = 'next_seq'";
const UPDATE_NEXT_SEQ: &str = "UPDATE settings SET value = ?1 WHERE name = 'next_seq'";

/// One kind of write.
pub(super) trait Write: Send + 'static {
    /// What the caller is told once the write is durable.
    type Outcome: Send + 'static;

    /// Does the write inside its batch's transaction. `next_seq` is the
    /// commit-order cursor: a write that inserts a record stores it under
    /// the current value and advances it.
    fn apply(&self, tx: &Transaction<'_>, next_seq: &mut i64) -> rusqlite::Result<Self::Outcome>;

    /// What the write is doing, for its errors ("appending record K to
    /// event E"). Called only when something failed.
    fn context(&self) -> String;
}

/// Why a batch failed, shared by every write in it: each caller's error
/// keeps it as its source.
type BatchError = Arc<rusqlite::Error>;

/// A queued write with its reply channel. The trait object erases the
/// outcome type so that writes of every kind share one queue and one batch.
trait Pending: Send {
    /// Does the write in the batch's transaction. On success it becomes an
    /// [`Applied`] write, answered once the batch's fate is known; on failure
    /// it answers its caller with the error and returns it, to fail the rest
    /// of the batch with.
    fn apply(
        self: Box<Self>,
        tx: &Transaction<'_>,
        next_seq: &mut i64,
    ) -> Result<Box<dyn Applied>, BatchError>;

    /// Answers the caller with the failure of the batch it was in.
    fn fail(self: Box<Self>, cause: &BatchError);

    /// What the write is doing, for errors.
    fn context(&self) -> String;
}

/// A write done in a transaction not yet known to be committed.
trait Applied: Send {
    /// Answers the caller: with the outcome when the batch is durable
    /// (`committed` is `Ok`), else with the batch's failure.
    fn answer(self: Box<Self>, committed: Result<(), &BatchError>);
}

struct Request<W: Write> {
    write: W,
    reply: oneshot::Sender<StoreResult<W::Outcome>>,
}

impl<W: Write> Request<W> {
    fn send(self, answer: StoreResult<W::Outcome>) {
        // A caller that gave up waiting is no error of ours.
        let _ = self.reply.send(answer);
    }

    fn failed(&self, cause: &BatchError) -> StoreError {
        StoreError::unavailable(self.write.context(), Arc::clone(cause))
    }
}

/// A request whose write is done, with its outcome.
struct Done<W: Write> {
    request: Request<W>,
    outcome: W::Outcome,
}

impl<W: Write> Pending for Request<W> {
    fn apply(
        self: Box<Self>,
        tx: &Transaction<'_>,
        next_seq: &mut i64,
    ) -> Result<Box<dyn Applied>, BatchError> {
        match self.write.apply(tx, next_seq) {
            Ok(outcome) => Ok(Box::new(Done {
                request: *self,
                outcome,
            })),
            Err(e) => {
                let cause = Arc::new(e);
                self.fail(&cause);
                Err(cause)
            }
        }
    }

    fn fail(self: Box<Self>, cause: &BatchError) {
        let error = self.failed(cause);
        self.send(Err(error));
    }

    fn context(&self) -> String {
        self.write.context()
    }
}

impl<W: Write> Applied for Done<W> {
    fn answer(self: Box<Self>, committed: Result<(), &BatchError>) {
        let answer = match committed {
            Ok(()) => Ok(self.outcome),
            Err(cause) => Err(self.request.failed(cause)),
        };
        self.request.send(answer);
    }
}

/// The handle to the writer thread. The thread ends when the last handle is
/// dropped and the queue drains.
pub(super) struct Writer {
    queue: mpsc::Sender<Box<dyn Pending>>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub(super) fn spawn(conn: Connection) -> StoreResult<Self> {
        let (queue, rx) = mpsc::channel(WRITE_QUEUE_CAPACITY);
        watch_queue_depth(queue.downgrade());
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::unavailable("starting the SQLite writer thread", e))?;
        Ok(Self { queue })
    }

    /// Queues `write` and waits until it is durable (or failed).
    pub(super) async fn write<W: Write>(&self, write: W) -> StoreResult<W::Outcome> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .try_send(Box::new(Request { write, reply }))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(w) => StoreError::overloaded_msg(format!(
                    "{}: {WRITE_QUEUE_CAPACITY} writes are already waiting",
                    w.context()
                )),
                mpsc::error::TrySendError::Closed(w) => {
                    StoreError::unavailable_msg(format!("{}: the writer has stopped", w.context()))
                }
            })?;
        answer
            .await
            .map_err(|e| StoreError::unavailable("waiting for the SQLite writer", e))?
    }
}

/// Reports how many writes wait for the writer, as the gauge
/// `openfloor_write_queue_depth`, while the queue exists.
fn watch_queue_depth(queue: mpsc::WeakSender<Box<dyn Pending>>) {
    openfloor_telemetry::meter()
        .u64_observable_gauge("openfloor_write_queue_depth")
        .with_description("Writes waiting for the SQLite writer (embedded store)")
        .with_callback(move |observer| {
            if let Some(queue) = queue.upgrade() {
                let waiting = queue.max_capacity() - queue.capacity();
                observer.observe(u64::try_from(waiting).unwrap_or(u64::MAX), &[]);
            }
        })
        .build();
}

/// How many writes each group commit carries.
static BATCH_SIZE: std::sync::LazyLock<opentelemetry::metrics::Histogram<u64>> =
    std::sync::LazyLock::new(|| {
        openfloor_telemetry::meter()
            .u64_histogram("openfloor_write_batch_size")
            .with_description("Writes per group commit (embedded store), one fsync each")
            .with_boundaries(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0])
            .build()
    });

fn writer_loop(mut conn: Connection, mut rx: mpsc::Receiver<Box<dyn Pending>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        BATCH_SIZE.record(batch.len() as u64, &[]);
        commit_batch(&mut conn, &mut batch);
    }
}

/// Does every write of `batch` in one transaction and answers them all:
/// each with its outcome once the commit is durable, or every one with the
/// error if anything failed (then none of them happened). Leaves `batch`
/// empty.
fn commit_batch(conn: &mut Connection, batch: &mut Vec<Box<dyn Pending>>) {
    let writes = batch.len();
    let mut applied = Vec::with_capacity(writes);
    let mut unapplied = batch.drain(..);
    match apply_and_commit(conn, &mut unapplied, &mut applied) {
        Ok(()) => {
            for write in applied {
                write.answer(Ok(()));
            }
        }
        Err(cause) => {
            tracing::error!(
                error = %cause,
                writes,
                "write batch failed; nothing in it was acknowledged"
            );
            for write in applied {
                write.answer(Err(&cause));
            }
            for write in unapplied {
                write.fail(&cause);
            }
        }
    }
}

/// Applies writes from `unapplied` in queue order, moving each into
/// `applied`, then commits. Stops at the first failure, leaving the rest in
/// `unapplied`.
///
/// The commit-order numbers come from the counter in the database, read
/// inside the transaction, which takes SQLite's write lock at its start
/// (`BEGIN IMMEDIATE`): whichever process writes (the server, or an
/// operator command while no server runs), numbers follow commit order and
/// are never handed out twice. A failed batch commits nothing, so its
/// numbers were never seen and are handed out again.
fn apply_and_commit(
    conn: &mut Connection,
    unapplied: &mut impl Iterator<Item = Box<dyn Pending>>,
    applied: &mut Vec<Box<dyn Applied>>,
) -> Result<(), BatchError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let first_seq: i64 = tx
        .prepare_cached(SELECT_NEXT_SEQ)?
        .query_row([], |r| r.get::<_, String>(0))?
        .parse()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(e)))?;
    let mut next_seq = first_seq;
    for write in unapplied {
        applied.push(write.apply(&tx, &mut next_seq)?);
    }
    if next_seq != first_seq {
        tx.prepare_cached(UPDATE_NEXT_SEQ)?
            .execute(params![next_seq.to_string()])?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use openfloor_domain::ids::{EventId, QuestionId, RecordId, VoterId};
    use openfloor_domain::record::{Record, RecordBody};
    use ulid::Ulid;

    use super::*;
    use crate::sqlite::writes::AppendRecord;
    use crate::sqlite::{reads, schema};
    use crate::Appended;
    use crate::EventLog;

    /// A write that always fails, as a full disk would.
    struct Fails;

    impl Write for Fails {
        type Outcome = ();

        fn apply(&self, tx: &Transaction<'_>, _next_seq: &mut i64) -> rusqlite::Result<()> {
            tx.execute("INSERT INTO no_such_table VALUES (1)", [])
                .map(drop)
        }

        fn context(&self) -> String {
            "failing on purpose".into()
        }
    }

    /// A vote of one voter on one question, `ms` after the event began.
    fn vote(event: EventId, ms: u64) -> Record {
        Record {
            id: RecordId::from_ulid(Ulid::from_parts(1_700_000_000_000 + ms, 1)),
            event,
            client: None,
            body: RecordBody::Vote {
                question: QuestionId::from_ulid(Ulid::from_parts(1_700_000_000_000, 2)),
                voter: VoterId::parse("0123456789abcdef0123").unwrap(),
                n: 1,
            },
        }
    }

    fn queued<W: Write>(
        write: W,
    ) -> (Box<dyn Pending>, oneshot::Receiver<StoreResult<W::Outcome>>) {
        let (reply, answer) = oneshot::channel();
        (Box::new(Request { write, reply }), answer)
    }

    #[test]
    fn one_failing_write_fails_its_whole_batch_with_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let mut conn = schema::open_writer(&path).unwrap();
        let log = EventLog {
            event: EventId::from_ulid(Ulid::from_parts(1_700_000_000_000, 1)),
            shards: 4,
            expires_at: u64::MAX,
        };
        let append = |ms| AppendRecord {
            event: log.event,
            record: vote(log.event, ms),
        };
        let (first, mut first_answer) = queued(append(1));
        let (failing, mut failing_answer) = queued(Fails);
        let (last, mut last_answer) = queued(append(2));
        let mut batch = vec![first, failing, last];

        commit_batch(&mut conn, &mut batch);

        assert!(batch.is_empty());
        for error in [
            first_answer.try_recv().unwrap().unwrap_err(),
            last_answer.try_recv().unwrap().unwrap_err(),
        ] {
            assert!(matches!(error, StoreError::Unavailable { .. }), "{error}");
            assert!(error.to_string().contains("appending record"), "{error}");
            assert!(error.source().is_some());
        }
        let error = failing_answer.try_recv().unwrap().unwrap_err();
        assert!(error.to_string().contains("failing on purpose"), "{error}");
        let cause = error.source().unwrap().to_string();
        assert!(cause.contains("no_such_table"), "{cause}");
        // Nothing of the batch happened, its numbers included: nobody saw
        // them, so they are handed out again.
        let reader = schema::open_reader(&path).unwrap();
        assert!(reads::event_records(&reader, log.event)
            .unwrap()
            .records
            .is_empty());
        let counter = |c: &Connection| c.query_row(SELECT_NEXT_SEQ, [], |r| r.get::<_, String>(0));
        assert_eq!(counter(&reader).unwrap(), "1");

        let (again, mut again_answer) = queued(append(1));
        commit_batch(&mut conn, &mut vec![again]);
        assert_eq!(
            again_answer.try_recv().unwrap().unwrap(),
            Appended::Inserted
        );
        assert_eq!(
            reads::event_records(&reader, log.event)
                .unwrap()
                .records
                .len(),
            1
        );
        assert_eq!(counter(&reader).unwrap(), "2");
    }
}
