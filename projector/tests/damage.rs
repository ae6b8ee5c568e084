//! A record whose stored body cannot be read back does not freeze its
//! event: the projector folds every record it can read, names the damaged
//! one, and goes on projecting this event and the others (DESIGN.md,
//! "Damage").

use openfloor_domain::ids::{EventId, QuestionId};
use openfloor_domain::input::{QuestionText, Title};
use openfloor_domain::record::{Record, RecordBody};
use openfloor_projector::Projector;
use openfloor_store::sqlite::SqliteStore;
use openfloor_store::{EventMeta, Store};
use openfloor_testing::fixtures;
use serde_json::Value;
use ulid::Ulid;

fn event(n: u128) -> EventMeta {
    fixtures::event_meta(EventId::from_ulid(Ulid::from_parts(1_700_000_000_000, n)))
        .title("damaged")
        .build()
}

fn question() -> QuestionId {
    QuestionId::from_ulid(Ulid::from_parts(1_700_000_000_001, 1))
}

fn record(event: EventId, ms: u64, body: RecordBody) -> Record {
    fixtures::record(
        event,
        Ulid::from_parts(1_700_000_000_000 + ms, u128::from(ms)),
        body,
    )
}

fn vote(event: EventId, ms: u64, voter: u64) -> Record {
    record(
        event,
        ms,
        RecordBody::Vote {
            question: question(),
            voter: fixtures::voter_id(voter),
            n: 1,
        },
    )
}

/// An event with one question and two votes on it; returns the second vote.
async fn hosted(store: &Store, meta: &EventMeta) -> Record {
    store.directory.create(meta).await.unwrap();
    let event = meta.id;
    let title = Title::parse("damaged").unwrap();
    let asked = RecordBody::QuestionAsked {
        question: question(),
        asker: fixtures::voter_id(9),
        text: QuestionText::parse("still here?").unwrap(),
        author: None,
    };
    let second = vote(event, 4, 2);
    for r in [
        record(event, 1, RecordBody::EventCreated { title }),
        record(event, 2, asked),
        vote(event, 3, 1),
        second.clone(),
    ] {
        store.log.append(meta.log(), r).await.unwrap();
    }
    second
}

/// Overwrites the stored body of `record` with bytes that are not a record,
/// through a connection of its own, as a failing disk or a stray tool would.
fn damage(dir: &std::path::Path, record: &Record) {
    let conn = rusqlite::Connection::open(dir.join("openfloor.sqlite3")).unwrap();
    let changed = conn
        .execute(
            "UPDATE records SET body = '{\"kind\": \"vo' WHERE event = ?1 AND id = ?2",
            [record.event.to_string(), record.id.to_string()],
        )
        .unwrap();
    assert_eq!(changed, 1);
}

async fn votes(store: &Store, event: EventId) -> (u64, Value) {
    let view = store.views.get(event).await.unwrap().expect("a view");
    let guest: Value = serde_json::from_slice(&view.guest.json).unwrap();
    (view.records, guest["questions"][0]["votes"].clone())
}

#[tokio::test]
async fn a_damaged_record_is_skipped_and_its_event_keeps_projecting() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap().store();
    let (damaged, intact) = (event(1), event(2));
    let second_vote = hosted(&store, &damaged).await;
    hosted(&store, &intact).await;
    damage(dir.path(), &second_vote);

    // A projector starting over this store (a restart's catch-up) reads
    // both events whole: neither fails.
    let projector = Projector::new(store.clone());
    let report = projector.catch_up(0).await.unwrap();
    assert_eq!((report.events, report.failed), (2, 0), "{report:?}");
    // The damaged record counts as read (skipped): the view accounts for
    // every row of the log, so the guard keeps comparing log lengths.
    assert_eq!(votes(&store, damaged.id).await, (4, Value::from(1)));
    assert_eq!(votes(&store, intact.id).await, (4, Value::from(2)));
    assert_eq!(store.damage.events(), [damaged.id]);

    // A new vote on the damaged event reaches its view.
    store
        .log
        .append(damaged.log(), vote(damaged.id, 5, 3))
        .await
        .unwrap();
    let projected = projector.project(damaged.id).await.unwrap().unwrap();
    assert!(projected.stored);
    assert_eq!(votes(&store, damaged.id).await, (5, Value::from(2)));
}
