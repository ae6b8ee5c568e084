//! Replay, verify and export/import against the SQLite store.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use openfloor_domain::ids::{EventId, QuestionId};
use openfloor_domain::input::{QuestionText, Title};
use openfloor_domain::record::{Record, RecordBody};
use openfloor_ops::export::{
    import, new_signing_key, parse_public_key, public_key_hex, read_export, read_signing_key,
    write_export,
};
use openfloor_ops::replay::replay_records;
use openfloor_projector::verify::verify_event;
use openfloor_projector::Projector;
use openfloor_store::sqlite::SqliteStore;
use openfloor_store::{EventMeta, Store, StoredView};
use openfloor_testing::fixtures;
use ulid::Ulid;

const T0: u64 = 1_790_000_000_000;

fn meta() -> EventMeta {
    fixtures::event_meta(EventId::from_ulid(Ulid::from_parts(T0, 1)))
        .title("Ops")
        .created_at(T0)
        .build()
}

/// A history with one record per millisecond: asks, votes, withdrawals,
/// hides, answers, a correction, closing.
fn history(event: EventId) -> Vec<Record> {
    let q = |i: u128| QuestionId::from_ulid(Ulid::from_parts(T0, 100 + i));
    let v = fixtures::voter_id;
    let mut bodies = vec![RecordBody::EventCreated {
        title: Title::parse("Ops").unwrap(),
    }];
    for i in 0..4 {
        bodies.push(RecordBody::QuestionAsked {
            question: q(i),
            asker: v(99),
            text: QuestionText::parse(&format!("question {i}")).unwrap(),
            author: None,
        });
    }
    for voter in 0..6 {
        bodies.push(RecordBody::Vote {
            question: q(u128::from(voter % 3)),
            voter: v(voter),
            n: 1,
        });
    }
    bodies.push(RecordBody::Vote {
        question: q(0),
        voter: v(0),
        n: 2,
    });
    bodies.push(RecordBody::Hidden {
        question: q(1),
        n: 1,
        value: true,
    });
    bodies.push(RecordBody::Answered {
        question: q(2),
        n: 1,
        value: true,
    });
    bodies.push(RecordBody::TextCorrected {
        question: q(3),
        n: 1,
        text: QuestionText::parse("question three").unwrap(),
    });
    bodies.push(RecordBody::Hidden {
        question: q(1),
        n: 2,
        value: false,
    });
    bodies.push(RecordBody::Open { n: 1, value: false });
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| fixtures::record(event, Ulid::from_parts(T0 + i as u64, i as u128), body))
        .collect()
}

async fn store_in(dir: &std::path::Path) -> Store {
    SqliteStore::open(dir).unwrap().store()
}

/// Appends the history one record at a time, projecting after each, and
/// returns the view the projector stored at every boundary.
async fn live(store: &Store, meta: &EventMeta, records: &[Record]) -> Vec<Arc<StoredView>> {
    store.directory.create(meta).await.unwrap();
    let projector = Projector::new(store.clone());
    let mut views = Vec::new();
    for r in records {
        store.log.append(meta.log(), r.clone()).await.unwrap();
        projector.project(meta.id).await.unwrap();
        views.push(store.views.get(meta.id).await.unwrap().unwrap());
    }
    views
}

#[tokio::test]
async fn replay_at_every_record_boundary_equals_what_the_projector_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path()).await;
    let meta = meta();
    let records = history(meta.id);
    let stored = live(&store, &meta, &records).await;
    let logged = store.log.read_event(meta.log()).await.unwrap();
    for (i, r) in records.iter().enumerate() {
        let replayed = replay_records(meta.id, &logged, Some(r.at()));
        assert_eq!(replayed, *stored[i], "boundary {i} ({:?})", r.body);
    }
    assert_eq!(
        replay_records(meta.id, &logged, None),
        **stored.last().unwrap()
    );
    assert_eq!(replay_records(meta.id, &logged, Some(T0 - 1)).records, 0);
}

#[tokio::test]
async fn verify_detects_a_corrupted_view_and_a_missing_record_and_repairs() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path()).await;
    let meta = meta();
    live(&store, &meta, &history(meta.id)).await;
    assert!(verify_event(&store, &meta, false)
        .await
        .unwrap()
        .problems
        .is_empty());

    // A stored view whose vote count was tampered with.
    let good = store.views.get(meta.id).await.unwrap().unwrap();
    let mut bad = (*good).clone();
    let text = String::from_utf8(bad.guest.json.clone()).unwrap();
    assert!(text.contains(r#""votes":2"#));
    bad.guest.json = text
        .replacen(r#""votes":2"#, r#""votes":7"#, 1)
        .into_bytes();
    store.views.replace(meta.id, Arc::new(bad)).await.unwrap();
    let v = verify_event(&store, &meta, false).await.unwrap();
    assert!(
        v.problems
            .iter()
            .any(|p| p.contains("votes is 7 in the view, 2 from the log")),
        "{:?}",
        v.problems
    );
    let before_repair = fixtures::now_ms();
    let v = verify_event(&store, &meta, true).await.unwrap();
    assert!(v.repaired);
    // The repaired view is dated by the repair (the host's "updated … ago").
    let repaired = store.views.get(meta.id).await.unwrap().unwrap();
    assert!(
        repaired.projected_at >= before_repair,
        "{}",
        repaired.projected_at
    );
    assert!(verify_event(&store, &meta, false)
        .await
        .unwrap()
        .problems
        .is_empty());

    // A record deleted from the log behind the store's back.
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("openfloor.sqlite3")).unwrap();
    let deleted = conn
        .execute(
            "DELETE FROM records WHERE seq = \
             (SELECT MAX(seq) FROM records WHERE body LIKE '%\"kind\":\"vote\"%')",
            [],
        )
        .unwrap();
    assert_eq!(deleted, 1);
    drop(conn);
    let store = store_in(dir.path()).await;
    let v = verify_event(&store, &meta, false).await.unwrap();
    assert!(
        v.problems
            .iter()
            .any(|p| p.contains("records are missing from the log")),
        "{:?}",
        v.problems
    );
}

async fn exported(store: &Store, meta: &EventMeta) -> Vec<u8> {
    let mut records = store.log.read_event(meta.log()).await.unwrap();
    let mut out = Vec::new();
    write_export(meta, &mut records, None, &mut out).unwrap();
    out
}

#[tokio::test]
async fn export_then_import_elsewhere_replays_to_identical_views_and_is_idempotent() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source = store_in(a.path()).await;
    let meta = meta();
    let stored = live(&source, &meta, &history(meta.id)).await;
    let file = exported(&source, &meta).await;

    let target = store_in(b.path()).await;
    let first = import(&target, read_export(&file[..]).unwrap())
        .await
        .unwrap();
    assert!(first.created_event);
    assert_eq!(first.new_records, first.records);
    let again = import(&target, read_export(&file[..]).unwrap())
        .await
        .unwrap();
    assert_eq!(again.new_records, 0);
    assert!(!again.created_event);

    let replayed = replay_records(
        meta.id,
        &target.log.read_event(meta.log()).await.unwrap(),
        None,
    );
    assert_eq!(replayed, **stored.last().unwrap(), "byte-identical views");
    assert_eq!(
        target.directory.get(meta.id).await.unwrap(),
        Some(meta.clone())
    );
    // Exporting the import gives the same file.
    assert_eq!(exported(&target, &meta).await, file);
}

#[tokio::test]
async fn a_damaged_export_is_rejected_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path()).await;
    let meta = meta();
    live(&store, &meta, &history(meta.id)).await;
    let file = String::from_utf8(exported(&store, &meta).await).unwrap();
    let lines: Vec<&str> = file.lines().collect();
    assert!(read_export(file.as_bytes()).is_ok());

    // A flipped byte inside line 5's text.
    let mut flipped = lines.clone();
    let changed = lines[4].replacen(r#""text":"question"#, r#""text":"questiom"#, 1);
    assert_ne!(changed, lines[4]);
    flipped[4] = &changed;
    let err = read_export(flipped.join("\n").as_bytes()).unwrap_err();
    assert_eq!(err.line, 6, "{err}");
    assert!(err.to_string().contains("line 5 was changed"), "{err}");

    // A dropped line.
    let mut dropped = lines.clone();
    dropped.remove(7);
    let err = read_export(dropped.join("\n").as_bytes()).unwrap_err();
    assert_eq!(err.line, 8, "{err}");

    // Truncated: the end line is gone.
    let err = read_export(lines[..lines.len() - 1].join("\n").as_bytes()).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");

    // Garbage in a line.
    let mut garbage = lines.clone();
    garbage[2] = "{not json";
    let err = read_export(garbage.join("\n").as_bytes()).unwrap_err();
    assert_eq!(err.line, 3);

    // A flipped bit anywhere is caught (each byte in turn, on a small file).
    for i in 0..file.len() {
        let mut bytes = file.clone().into_bytes();
        if bytes[i] == b'\n' {
            continue;
        }
        bytes[i] ^= 0x01;
        assert!(
            read_export(&bytes[..]).is_err(),
            "flipping byte {i} went unnoticed"
        );
    }
}

/// Numbers at the edge: an export whose record leaves its sequence no room
/// for a next change is refused whole, naming the line, before anything is
/// stored; an event that expires past what SQLite's signed integers hold
/// (2^63 ms) is kept as never expiring, not wrapped into the past and
/// purged at once.
#[tokio::test]
async fn numbers_at_the_edge_are_refused_or_kept_never_wrapped() {
    let meta = meta();
    let mut records = history(meta.id);
    let last = records.len() - 1;
    records[last].body = RecordBody::Open {
        n: u32::MAX,
        value: false,
    };
    let mut file = Vec::new();
    write_export(&meta, &mut records, None, &mut file).unwrap();
    let err = read_export(&file[..]).unwrap_err().to_string();
    assert!(err.contains("leaves no room"), "{err}");
    assert!(
        err.contains(&format!("line {}", records.len() + 1)),
        "{err}"
    );

    let mut far = meta.clone();
    far.expires_at = 1 << 63;
    let mut records = history(far.id);
    let mut file = Vec::new();
    write_export(&far, &mut records, None, &mut file).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path()).unwrap();
    let store = sqlite.store();
    import(&store, read_export(&file[..]).unwrap())
        .await
        .unwrap();
    let purged = sqlite.purge_expired(T0 + 1_000).await.unwrap();
    assert_eq!(purged, 0, "an event expiring in 2^63 ms is not expired now");
    assert_eq!(
        store.log.read_event(far.log()).await.unwrap().len(),
        records.len()
    );
}

/// A line without end (damage, or an attack on the importer's memory) is
/// refused after 64 KiB, naming the line, however much more would follow.
#[test]
fn an_endless_line_is_refused_without_reading_it_whole() {
    use std::io::Read;
    let meta = meta();
    let mut file = Vec::new();
    write_export(&meta, &mut history(meta.id), None, &mut file).unwrap();
    let header_end = file.iter().position(|b| *b == b'\n').unwrap() + 1;
    let endless = std::io::BufReader::new(file[..header_end].chain(std::io::repeat(b'x')));
    let err = read_export(endless).unwrap_err().to_string();
    assert!(err.starts_with("line 2: longer than 65536 bytes"), "{err}");
}

/// A forger's export: the records read from `file`, one question's text
/// changed, written out again with a freshly computed chain (and signed,
/// if the forger has a key).
fn forged(file: &[u8], meta: &EventMeta, signer: Option<&SigningKey>) -> Vec<u8> {
    let mut records = read_export(file).unwrap().records;
    let asked = records
        .iter_mut()
        .find_map(|r| match &mut r.body {
            RecordBody::QuestionAsked { text, .. } => Some(text),
            _ => None,
        })
        .unwrap();
    *asked = QuestionText::parse("a forged question").unwrap();
    let mut out = Vec::new();
    write_export(meta, &mut records, signer, &mut out).unwrap();
    out
}

fn signing_key(dir: &std::path::Path, name: &str) -> (SigningKey, String) {
    let (secret, public) = new_signing_key();
    let path = dir.join(name);
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    (read_signing_key(&path).unwrap(), public_key_hex(&public))
}

#[tokio::test]
async fn a_signed_export_proves_its_signer_only_against_a_trusted_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path()).await;
    let meta = meta();
    live(&store, &meta, &history(meta.id)).await;
    let (operator, operator_public) = signing_key(dir.path(), "operator.key");
    let (forger, _) = signing_key(dir.path(), "forger.key");
    let trusted = parse_public_key(&operator_public).unwrap();
    let mut records = store.log.read_event(meta.log()).await.unwrap();
    let mut signed = Vec::new();
    write_export(&meta, &mut records, Some(&operator), &mut signed).unwrap();

    let export = read_export(&signed[..]).unwrap();
    assert_eq!(export.signed_by, Some(trusted));
    export.require_signer(&trusted).unwrap();
    assert_eq!(
        read_export(&exported(&store, &meta).await[..])
            .unwrap()
            .signed_by,
        None
    );

    // Edited without re-chaining: the chain breaks.
    let text = String::from_utf8(signed.clone()).unwrap();
    let edited = text.replacen(r#""text":"question 1""#, r#""text":"question X""#, 1);
    assert_ne!(edited, text);
    assert!(read_export(edited.as_bytes()).is_err());

    // Re-chained, with the operator's signature line kept: the signature no
    // longer matches what it follows.
    let unsigned = forged(&signed, &meta, None);
    let signature_line = text.lines().last().unwrap();
    assert!(signature_line.contains(r#""type":"signature""#));
    let mut kept = unsigned.clone();
    kept.extend_from_slice(signature_line.as_bytes());
    assert!(read_export(&kept[..]).is_err());

    // Re-chained and unsigned, or signed with the forger's own key: both
    // read as intact, and both are refused against the trusted key.
    let export = read_export(&unsigned[..]).unwrap();
    let refused = export.require_signer(&trusted).unwrap_err();
    assert!(refused.to_string().contains("not signed"), "{refused}");
    let export = read_export(&forged(&signed, &meta, Some(&forger))[..]).unwrap();
    assert_eq!(export.signed_by, Some(forger.verifying_key()));
    let refused = export.require_signer(&trusted).unwrap_err();
    assert!(
        refused.to_string().contains("not by the trusted key"),
        "{refused}"
    );
}

#[tokio::test]
async fn an_import_refuses_records_that_differ_from_those_stored_under_their_keys() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source = store_in(a.path()).await;
    let meta = meta();
    live(&source, &meta, &history(meta.id)).await;
    let file = exported(&source, &meta).await;
    let target = store_in(b.path()).await;
    import(&target, read_export(&file[..]).unwrap())
        .await
        .unwrap();
    let before = target.log.read_event(meta.log()).await.unwrap();

    let refused = import(
        &target,
        read_export(&forged(&file, &meta, None)[..]).unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("1 records of the export differ"),
        "{refused}"
    );
    assert_eq!(target.log.read_event(meta.log()).await.unwrap(), before);

    // Two different records under one key in one export: refused when read,
    // so no store keeps whichever came first.
    let mut records = read_export(&file[..]).unwrap().records;
    let mut twin = records
        .iter()
        .find(|r| matches!(r.body, RecordBody::QuestionAsked { .. }))
        .unwrap()
        .clone();
    if let RecordBody::QuestionAsked { text, .. } = &mut twin.body {
        *text = QuestionText::parse("the same key, other words").unwrap();
    }
    twin.id = openfloor_domain::ids::RecordId::from_ulid(Ulid::from_parts(T0 + 10_000, 7));
    records.push(twin);
    let mut doubled = Vec::new();
    write_export(&meta, &mut records, None, &mut doubled).unwrap();
    let err = read_export(&doubled[..]).unwrap_err();
    assert!(
        err.to_string().contains("a second record with key"),
        "{err}"
    );
}
