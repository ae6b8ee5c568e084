//! The projector's incremental path equals a full recompute, and a stale
//! view never replaces a newer one.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

use openfloor_domain::ids::{EventId, QuestionId, VoterId};
use openfloor_domain::input::{QuestionText, Title};
use openfloor_domain::record::{Record, RecordBody, RecordKey, Sequence};
use openfloor_projector::service::ProjectorService;
use openfloor_projector::{project_records, Projector};
use openfloor_store::memory::{MemoryStates, MemoryStore};
use openfloor_store::sqlite::SqliteStore;
use openfloor_store::{
    Appended, EventLog, EventMeta, Log, Store, StoreError, StoreResult, StoredView, Views,
};
use openfloor_testing::fixtures;
use ulid::Ulid;

fn event() -> EventMeta {
    nth_event(1)
}

/// Another test event: the `n`-th.
fn nth_event(n: u128) -> EventMeta {
    fixtures::event_meta(EventId::from_ulid(Ulid::from_parts(1_700_000_000_000, n)))
        .title("p")
        .build()
}

/// A deterministic pseudo-random history: asks, votes and toggles.
fn history(event: EventId, len: u64) -> Vec<Record> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let q =
        |i: u64| QuestionId::from_ulid(Ulid::from_parts(1_700_000_000_000, u128::from(i % 5) + 1));
    let mut toggles = std::collections::HashMap::new();
    let mut out = vec![fixtures::record(
        event,
        Ulid::from_parts(1_700_000_000_000, 0),
        RecordBody::EventCreated {
            title: Title::parse("p").unwrap(),
        },
    )];
    for i in 0..len {
        let r = next();
        let body = match r % 4 {
            0 => RecordBody::QuestionAsked {
                question: q(r >> 8),
                asker: VoterId::parse("00000000000000000001").unwrap(),
                text: QuestionText::parse(&format!("question {}", r % 5)).unwrap(),
                author: None,
            },
            1 | 2 => {
                let voter = fixtures::voter_id((r >> 8) % 7);
                let question = q(r >> 16);
                let n = toggles.entry((voter, question)).or_insert(0u32);
                *n += 1;
                RecordBody::Vote {
                    question,
                    voter,
                    n: *n,
                }
            }
            _ => {
                let question = q(r >> 8);
                let n = toggles
                    .entry((VoterId::parse("ffffffffffffffffffff").unwrap(), question))
                    .or_insert(0u32);
                *n += 1;
                RecordBody::Hidden {
                    question,
                    n: *n,
                    value: r % 3 == 0,
                }
            }
        };
        out.push(fixtures::record(
            event,
            Ulid::from_parts(1_700_000_000_001 + i, u128::from(i)),
            body,
        ));
    }
    out
}

/// The test event in `store`, with the first `len` records of its history.
async fn event_with_history(store: &Store, len: u64) -> EventMeta {
    nth_event_with_history(store, 1, len).await
}

/// [`event_with_history`] of the `n`-th test event.
async fn nth_event_with_history(store: &Store, n: u128, len: u64) -> EventMeta {
    let meta = nth_event(n);
    store.directory.create(&meta).await.unwrap();
    store
        .log
        .append_batch(meta.log(), history(meta.id, len))
        .await
        .unwrap();
    meta
}

async fn incremental_equals_full(store: Store) {
    let meta = event();
    store.directory.create(&meta).await.unwrap();
    let projector = Projector::new(store.clone());
    let records = history(meta.id, 400);
    for (i, r) in records.iter().enumerate() {
        store.log.append(meta.log(), r.clone()).await.unwrap();
        if i % 37 == 0 {
            projector.project(meta.id).await.unwrap();
        }
    }
    let done = projector.project(meta.id).await.unwrap().unwrap();
    // The history repeats some keys (a question asked twice): stored once.
    let logged = store.log.read_event(meta.log()).await.unwrap();
    assert!(logged.len() > 300 && logged.len() < records.len());
    assert_eq!(done.records, logged.len() as u64);
    let stored = store.views.get(meta.id).await.unwrap().unwrap();
    let full = project_records(meta.id, &logged, logged.len() as u64);
    assert_eq!(
        full,
        project_records(meta.id, &records, logged.len() as u64),
        "duplicates change nothing"
    );
    assert_eq!(*stored, full);

    // A view from fewer records is refused.
    let stale = project_records(meta.id, &records[..10], 10);
    assert!(!store.views.put(meta.id, Arc::new(stale)).await.unwrap());
    assert_eq!(*store.views.get(meta.id).await.unwrap().unwrap(), full);
}

#[tokio::test]
async fn incremental_projection_equals_a_full_recompute_in_memory() {
    incremental_equals_full(MemoryStore::store()).await;
}

#[tokio::test]
async fn incremental_projection_equals_a_full_recompute_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    incremental_equals_full(SqliteStore::open(dir.path()).unwrap().store()).await;
}

#[tokio::test]
async fn unknown_events_are_skipped() {
    let projector = Projector::new(MemoryStore::store());
    assert_eq!(projector.project(event().id).await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn states_kept_are_bounded_and_dropped_ones_rebuild_exactly() {
    let store = MemoryStore::store();
    let projector = Projector::new(store.clone()).keeping(4);
    let mut events = Vec::new();
    for n in 1..=10 {
        let meta = nth_event_with_history(&store, n, 20).await;
        projector.project(meta.id).await.unwrap();
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        assert!(projector.kept_states() <= 4, "{}", projector.kept_states());
        events.push(meta);
    }
    // Each view is what a full recompute gives, evicted or not; projecting
    // an evicted event again rebuilds its state from the log.
    for meta in &events {
        let records = store.log.read_event(meta.log()).await.unwrap();
        let expected = project_records(meta.id, &records, records.len() as u64);
        projector.project(meta.id).await.unwrap();
        assert_eq!(*store.views.get(meta.id).await.unwrap().unwrap(), expected);
        assert!(projector.kept_states() <= 4);
    }
}

#[tokio::test(start_paused = true)]
async fn idle_states_are_dropped_and_rebuilt_from_the_log() {
    let store = MemoryStore::store();
    let meta = event_with_history(&store, 50).await;
    let projector = Projector::new(store.clone());
    projector.project(meta.id).await.unwrap();
    assert_eq!(projector.kept_states(), 1);
    tokio::time::advance(openfloor_projector::IDLE_STATE_EVICTION / 2).await;
    assert_eq!(projector.evict_idle(), 0, "recently used");
    tokio::time::advance(openfloor_projector::IDLE_STATE_EVICTION).await;
    assert_eq!(projector.evict_idle(), 1);
    assert_eq!(projector.kept_states(), 0);
    // The next projection rebuilds it, exactly.
    let before = store.views.get(meta.id).await.unwrap().unwrap();
    projector.project(meta.id).await.unwrap();
    assert_eq!(store.views.get(meta.id).await.unwrap().unwrap(), before);
}

/// A region's projector never projects an event homed elsewhere, whoever
/// asks: not a queued command, not a sweep.
#[tokio::test]
async fn a_regions_projector_leaves_other_regions_events_alone() {
    let store = MemoryStore::store();
    let meta = EventMeta {
        region: "us-east-1".into(),
        ..event()
    };
    store.directory.create(&meta).await.unwrap();
    for record in history(meta.id, 20) {
        store.log.append(meta.log(), record).await.unwrap();
    }
    let service =
        openfloor_projector::service::ProjectorService::new(store.clone(), "eu-west-1".into());
    let command = serde_json::json!({"command": "project", "event": meta.id}).to_string();
    let failed = service
        .handle(&[openfloor_projector::service::Incoming {
            id: "m1".into(),
            body: command,
            sent_at: None,
            traceparent: None,
        }])
        .await;
    assert!(
        failed.is_empty(),
        "skipped, not failed (it would only be retried)"
    );
    assert_eq!(service.sweep().await.unwrap().events, 0);
    assert!(store.views.get(meta.id).await.unwrap().is_none());
    // Its home region's projector does project it.
    let home =
        openfloor_projector::service::ProjectorService::new(store.clone(), "us-east-1".into());
    assert_eq!(home.sweep().await.unwrap().changed, 1);
}

/// A stop right after the API's last acknowledgement: the events still
/// marked dirty are projected before `run` returns, so a clean stop leaves
/// views and log in agreement.
#[tokio::test]
async fn a_stop_projects_what_is_still_pending() {
    let store = MemoryStore::store();
    let meta = event_with_history(&store, 50).await;
    let trigger = Arc::new(openfloor_store::LocalTrigger::new());
    openfloor_store::Trigger::notify(trigger.as_ref(), meta.id);
    let projector = Projector::new(store.clone());
    // The stop has already come when the loop starts.
    projector.run(trigger.clone(), std::future::ready(())).await;
    let view = store.views.get(meta.id).await.unwrap();
    let logged = store.log.read_event(meta.log()).await.unwrap().len() as u64;
    assert_eq!(
        view.map(|v| v.records),
        Some(logged),
        "projected before stopping"
    );
    assert!(trigger.take_pending().is_empty());
}

/// The memory store's views, counting the writes; with `unreadable`, reads
/// fail (a part gone, say) until the first `replace` repairs them.
struct WatchedViews {
    inner: Arc<MemoryStore>,
    puts: AtomicUsize,
    unreadable: AtomicBool,
}

#[async_trait::async_trait]
impl Views for WatchedViews {
    async fn put(&self, event: EventId, view: Arc<StoredView>) -> StoreResult<bool> {
        self.puts.fetch_add(1, SeqCst);
        self.inner.put(event, view).await
    }
    async fn get(&self, event: EventId) -> StoreResult<Option<Arc<StoredView>>> {
        if self.unreadable.load(SeqCst) {
            return Err(StoreError::corrupt_msg("a part is gone"));
        }
        Views::get(&*self.inner, event).await
    }
    async fn replace(&self, event: EventId, view: Arc<StoredView>) -> StoreResult<()> {
        self.unreadable.store(false, SeqCst);
        self.inner.replace(event, view).await
    }
}

/// A memory store whose views are watched, holding `meta`'s event with a
/// history of `len` records.
async fn watched_store(meta: &EventMeta, len: u64, unreadable: bool) -> (Store, Arc<WatchedViews>) {
    let memory = MemoryStore::new();
    let views = Arc::new(WatchedViews {
        inner: memory.clone(),
        puts: AtomicUsize::new(0),
        unreadable: AtomicBool::new(unreadable),
    });
    let store = Store {
        directory: memory.clone(),
        log: memory,
        views: views.clone(),
        states: None,
        damage: Default::default(),
    };
    store.directory.create(meta).await.unwrap();
    store
        .log
        .append_batch(meta.log(), history(meta.id, len))
        .await
        .unwrap();
    (store, views)
}

/// A sweep writes only views that are behind: an idle live event's views
/// (megabytes of parts, on DynamoDB) are not rewritten every minute.
#[tokio::test]
async fn a_sweep_writes_only_the_views_that_are_behind() {
    let meta = event();
    let (store, views) = watched_store(&meta, 30, false).await;
    let projector = Projector::new(store.clone());
    let first = projector.sweep(meta.created_at, |_| true).await.unwrap();
    assert_eq!((first.changed, views.puts.load(SeqCst)), (1, 1));
    let again = projector.sweep(meta.created_at, |_| true).await.unwrap();
    assert_eq!(again.changed, 0);
    assert_eq!(
        views.puts.load(SeqCst),
        1,
        "nothing written for views that are current"
    );
}

/// `verify` reports views it cannot read as a difference, names the cause,
/// and `--repair` rewrites them, instead of stopping.
#[tokio::test]
async fn verify_reports_and_repairs_views_it_cannot_read() {
    let meta = event();
    let (store, _) = watched_store(&meta, 10, true).await;
    store
        .log
        .append_batch(meta.log(), history(meta.id, 10))
        .await
        .unwrap();
    let checked = openfloor_projector::verify::verify_event(&store, &meta, false)
        .await
        .unwrap();
    assert!(
        checked
            .problems
            .iter()
            .any(|p| p.contains("a part is gone")),
        "{:?}",
        checked.problems
    );
    let repaired = openfloor_projector::verify::verify_event(&store, &meta, true)
        .await
        .unwrap();
    assert!(repaired.repaired);
    let again = openfloor_projector::verify::verify_event(&store, &meta, false)
        .await
        .unwrap();
    assert!(again.problems.is_empty(), "{:?}", again.problems);
}

/// A projection asked for when nothing is new (a duplicate notification)
/// writes nothing: the view keeps the time it was made, which the host is
/// shown as "updated … ago".
#[tokio::test]
async fn a_projection_with_nothing_new_leaves_the_view_and_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap().store();
    let meta = event_with_history(&store, 20).await;
    let projector = Projector::new(store.clone());
    let first = projector.project(meta.id).await.unwrap().unwrap();
    assert!(first.stored);
    let made = store
        .views
        .get(meta.id)
        .await
        .unwrap()
        .unwrap()
        .projected_at;
    assert!(made > 0);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let again = projector.project(meta.id).await.unwrap().unwrap();
    assert!(!again.stored, "nothing new, nothing written");
    assert_eq!(
        store
            .views
            .get(meta.id)
            .await
            .unwrap()
            .unwrap()
            .projected_at,
        made
    );

    // News is written, with its own time.
    let more = history(meta.id, 21).pop().unwrap();
    store.log.append(meta.log(), more).await.unwrap();
    let newer = projector.project(meta.id).await.unwrap().unwrap();
    assert!(newer.stored);
    assert!(
        store
            .views
            .get(meta.id)
            .await
            .unwrap()
            .unwrap()
            .projected_at
            > made
    );
}

/// The memory log, counting whole-log reads.
struct CountedLog {
    inner: Arc<MemoryStore>,
    whole_reads: AtomicUsize,
}

#[async_trait::async_trait]
impl Log for CountedLog {
    async fn append(&self, log: EventLog, record: Record) -> StoreResult<Appended> {
        self.inner.append(log, record).await
    }
    async fn get(&self, log: EventLog, key: &RecordKey) -> StoreResult<Option<Record>> {
        Log::get(&*self.inner, log, key).await
    }
    async fn latest(&self, log: EventLog, sequence: &Sequence) -> StoreResult<Option<Record>> {
        self.inner.latest(log, sequence).await
    }
    async fn read_event(&self, log: EventLog) -> StoreResult<Vec<Record>> {
        self.whole_reads.fetch_add(1, SeqCst);
        self.inner.read_event(log).await
    }
}

/// A memory store whose projector keeps states in [`MemoryStates`], as on
/// AWS, with its log's whole reads counted.
fn store_with_states() -> (Store, Arc<MemoryStore>, Arc<CountedLog>, Arc<MemoryStates>) {
    let memory = MemoryStore::new();
    let states = MemoryStates::new();
    let log = Arc::new(CountedLog {
        inner: memory.clone(),
        whole_reads: AtomicUsize::new(0),
    });
    let store = Store {
        directory: memory.clone(),
        log: log.clone(),
        views: memory.clone(),
        states: Some(states.clone()),
        damage: Default::default(),
    };
    (store, memory, log, states)
}

/// Where memory does not last (a Lambda), the projector keeps each event's
/// state in the store's projection states and applies only the records
/// the stream hands it. Projectors cold (a fresh instance) or warm, fed
/// batches that repeat and reorder records, store views equal to the full
/// recompute, and read the log only once: before any state was stored.
#[tokio::test]
async fn stored_states_fed_the_new_records_alone_equal_a_full_recompute() {
    let (store, memory, log, states) = store_with_states();
    // The event's first projection, of its creation alone, stores its
    // state; the rest of its history is then applied to stored versions.
    let meta = event_with_history(&store, 0).await;
    Projector::new(store.clone())
        .project(meta.id)
        .await
        .unwrap();
    let rest: Vec<Record> = history(meta.id, 600).split_off(1);
    store.log.append_batch(meta.log(), rest).await.unwrap();
    let logged = Log::read_event(&*memory, meta.log()).await.unwrap();
    let full = project_records(meta.id, &logged, logged.len() as u64);

    // The stream: every record, some twice, in a scrambled order.
    let mut delivered: Vec<Record> = logged.clone();
    delivered.extend(logged.iter().step_by(7).cloned());
    let len = delivered.len();
    for i in 0..len {
        delivered.swap(i, (i * 7919 + 13) % len);
    }
    let warm = Projector::new(store.clone());
    for (i, batch) in delivered.chunks(23).enumerate() {
        let projector = if i % 3 == 0 {
            Projector::new(store.clone())
        } else {
            warm.clone()
        };
        projector
            .project_news(meta.id, Vec::new(), Some(batch.to_vec()))
            .await
            .unwrap();
    }
    assert_eq!(*store.views.get(meta.id).await.unwrap().unwrap(), full);
    // Once, by the first projection (no state was stored before it).
    assert_eq!(log.whole_reads.load(SeqCst), 1, "the log was read once");

    // A warm projector whose copy is the stored version reads no chunk,
    // and a redelivered batch changes nothing.
    let last = delivered.chunks(23).last().unwrap().to_vec();
    warm.project_news(meta.id, Vec::new(), Some(last.clone()))
        .await
        .unwrap();
    let read = states.chunks_read();
    let again = warm
        .project_news(meta.id, Vec::new(), Some(last))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(states.chunks_read(), read);
    assert_eq!(again.records, logged.len() as u64);

    // Not told what is new (a sweep), a projection folds the whole log in:
    // the same views.
    let swept = Projector::new(store.clone())
        .project(meta.id)
        .await
        .unwrap();
    assert_eq!(swept.unwrap().records, logged.len() as u64);
    assert_eq!(log.whole_reads.load(SeqCst), 2);
    assert_eq!(*store.views.get(meta.id).await.unwrap().unwrap(), full);
}

/// An event whose records predate its stored state (deployed before states
/// were kept, or its state deleted by an operator) is not projected from
/// the news alone: with no state stored, the projection folds the whole
/// log in first, once.
#[tokio::test]
async fn without_a_stored_state_the_first_projection_starts_from_the_log() {
    let (store, memory, log, _) = store_with_states();
    let meta = event_with_history(&store, 100).await;
    let news = history(meta.id, 101).pop().unwrap();
    store.log.append(meta.log(), news.clone()).await.unwrap();
    let logged = Log::read_event(&*memory, meta.log()).await.unwrap();
    let projector = Projector::new(store.clone());
    let done = projector
        .project_news(meta.id, Vec::new(), Some(vec![news.clone()]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.records, logged.len() as u64);
    assert_eq!(
        *store.views.get(meta.id).await.unwrap().unwrap(),
        project_records(meta.id, &logged, logged.len() as u64)
    );
    assert_eq!(log.whole_reads.load(SeqCst), 1);
    // Stored now: the next news is applied alone.
    Projector::new(store.clone())
        .project_news(meta.id, Vec::new(), Some(vec![news]))
        .await
        .unwrap();
    assert_eq!(log.whole_reads.load(SeqCst), 1);
}

/// The AWS sweep is an audit: after projecting its sample from the whole
/// log, it compares each event's views with a full recompute. A view that
/// folds as many records as the log holds but says something else (damage,
/// or a bug) is found and counted.
#[tokio::test]
async fn the_sweep_finds_views_that_differ_from_a_full_recompute() {
    let (store, ..) = store_with_states();
    let meta = event_with_history(&store, 30).await;
    let service = ProjectorService::new(store.clone(), meta.region.clone());
    let report = service.sweep().await.unwrap();
    assert_eq!(
        (report.changed, report.verified, report.differed),
        (1, 1, 0)
    );

    let mut damaged = (*store.views.get(meta.id).await.unwrap().unwrap()).clone();
    damaged.host = damaged.guest.clone();
    store
        .views
        .replace(meta.id, Arc::new(damaged))
        .await
        .unwrap();
    let report = service.sweep().await.unwrap();
    assert_eq!(
        (report.changed, report.verified, report.differed),
        (0, 1, 1)
    );
}

/// Past a few thousand voters the stored state's toggles double into more
/// chunks. Two warm projectors taking turns at batches of the stream, and
/// a cold one now and then, still store views equal to a full recompute;
/// a warm load reads only the chunks the other changed since its copy.
#[tokio::test]
async fn many_voters_chunked_state_stays_exact_and_loads_read_only_what_changed() {
    let (store, memory, _, states) = store_with_states();
    let meta = event_with_history(&store, 1).await;
    Projector::new(store.clone())
        .project(meta.id)
        .await
        .unwrap();
    let questions: Vec<QuestionId> = (0..5)
        .map(|i| QuestionId::from_ulid(Ulid::from_parts(1_700_000_000_500, i)))
        .collect();
    let mut votes = Vec::new();
    for (i, voter) in (0..12_000u64).map(fixtures::voter_id).enumerate() {
        let question = questions[i % questions.len()];
        let at = |k: u64| Ulid::from_parts(1_700_000_001_000 + i as u64, u128::from(k));
        let vote = |n| RecordBody::Vote { question, voter, n };
        votes.push(fixtures::record(meta.id, at(0), vote(1)));
        if i % 7 == 0 {
            votes.push(fixtures::record(meta.id, at(1), vote(2)));
        }
    }
    store
        .log
        .append_batch(meta.log(), votes.clone())
        .await
        .unwrap();

    let projectors = [Projector::new(store.clone()), Projector::new(store.clone())];
    for (i, batch) in votes.chunks(400).enumerate() {
        let projector = if i % 9 == 8 {
            &Projector::new(store.clone())
        } else {
            &projectors[i % 2]
        };
        projector
            .project_news(meta.id, Vec::new(), Some(batch.to_vec()))
            .await
            .unwrap();
    }
    let logged = Log::read_event(&*memory, meta.log()).await.unwrap();
    let full = project_records(meta.id, &logged, logged.len() as u64);
    assert_eq!(*store.views.get(meta.id).await.unwrap().unwrap(), full);

    // The state has several chunks now; a warm projector that missed one
    // store by the other reads only the chunks that store changed.
    let extra = |k: u64, v: u64| {
        let body = RecordBody::Vote {
            question: questions[0],
            voter: fixtures::voter_id(v),
            n: 1,
        };
        fixtures::record(meta.id, Ulid::from_parts(1_700_000_100_000 + k, 1), body)
    };
    projectors[0]
        .project_news(meta.id, Vec::new(), Some(vec![extra(0, 50_000)]))
        .await
        .unwrap();
    projectors[1]
        .project_news(meta.id, Vec::new(), Some(vec![extra(1, 50_001)]))
        .await
        .unwrap();
    let before = states.chunks_read();
    projectors[0]
        .project_news(meta.id, Vec::new(), Some(vec![extra(2, 50_002)]))
        .await
        .unwrap();
    assert_eq!(
        states.chunks_read() - before,
        1,
        "one chunk changed by the other"
    );
}
