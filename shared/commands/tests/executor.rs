//! The executor on the memory store: appends what the domain decides,
//! decides again after losing a race for a key, and asks for admission
//! only when there is something to append.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use openfloor_commands::{ExecuteError, Executed, Executor, NewEvent};
use openfloor_domain::clock::SystemClock;
use openfloor_domain::command::{Ask, Command, Lookup, Refusal, Vote};
use openfloor_domain::ids::{QuestionId, RecordId, VoterId, VoterToken};
use openfloor_domain::input::{QuestionText, Title};
use openfloor_domain::record::{Record, RecordBody, RecordKey, Sequence};
use openfloor_store::memory::MemoryStore;
use openfloor_store::{Appended, EventLog, EventMeta, LocalTrigger, Log, Store, StoreResult};

/// The memory log, where a rival request appends its record just before
/// ours: the executor's append then finds its key taken.
struct RivalFirst {
    inner: Arc<MemoryStore>,
    rival: Mutex<Option<Record>>,
}

#[async_trait]
impl Log for RivalFirst {
    async fn append(&self, log: EventLog, record: Record) -> StoreResult<Appended> {
        let rival = self.rival.lock().unwrap().take();
        if let Some(rival) = rival {
            assert_eq!(self.inner.append(log, rival).await?, Appended::Inserted);
        }
        self.inner.append(log, record).await
    }
    async fn get(&self, log: EventLog, key: &RecordKey) -> StoreResult<Option<Record>> {
        self.inner.get(log, key).await
    }
    async fn latest(&self, log: EventLog, sequence: &Sequence) -> StoreResult<Option<Record>> {
        self.inner.latest(log, sequence).await
    }
    async fn read_event(&self, log: EventLog) -> StoreResult<Vec<Record>> {
        self.inner.read_event(log).await
    }
}

struct Setup {
    executor: Executor,
    store: Store,
    meta: EventMeta,
    trigger: Arc<LocalTrigger>,
}

/// The memory log, noting which point reads the executor makes; its
/// recent reads can be made stale, as an eventually consistent read just
/// after a write can be.
struct Watched {
    inner: Arc<MemoryStore>,
    stale_recent: bool,
    reads: Mutex<Vec<(&'static str, Vec<Lookup>)>>,
}

impl Watched {
    fn new(stale_recent: bool) -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryStore::new(),
            stale_recent,
            reads: Mutex::default(),
        })
    }

    fn take_reads(&self) -> Vec<(&'static str, Vec<Lookup>)> {
        std::mem::take(&mut self.reads.lock().unwrap())
    }
}

#[async_trait]
impl Log for Watched {
    async fn append(&self, log: EventLog, record: Record) -> StoreResult<Appended> {
        self.inner.append(log, record).await
    }
    async fn get(&self, log: EventLog, key: &RecordKey) -> StoreResult<Option<Record>> {
        self.inner.get(log, key).await
    }
    async fn latest(&self, log: EventLog, sequence: &Sequence) -> StoreResult<Option<Record>> {
        self.inner.latest(log, sequence).await
    }
    async fn lookup(&self, log: EventLog, lookups: &[Lookup]) -> StoreResult<Vec<Option<Record>>> {
        self.reads
            .lock()
            .unwrap()
            .push(("strong", lookups.to_vec()));
        self.inner.lookup(log, lookups).await
    }
    async fn lookup_recent(
        &self,
        log: EventLog,
        lookups: &[Lookup],
    ) -> StoreResult<Vec<Option<Record>>> {
        self.reads
            .lock()
            .unwrap()
            .push(("recent", lookups.to_vec()));
        if self.stale_recent {
            return Ok(vec![None; lookups.len()]);
        }
        self.inner.lookup(log, lookups).await
    }
    async fn read_event(&self, log: EventLog) -> StoreResult<Vec<Record>> {
        self.inner.read_event(log).await
    }
}

async fn setup(log: Option<Arc<dyn Log>>) -> Setup {
    let memory = MemoryStore::new();
    let log: Arc<dyn Log> = log.unwrap_or_else(|| memory.clone());
    let store = Store {
        directory: memory.clone(),
        log,
        views: memory,
        states: None,
        damage: Default::default(),
    };
    let trigger = Arc::new(LocalTrigger::new());
    let executor = Executor::new(store.clone(), trigger.clone(), Arc::new(SystemClock));
    let created = executor
        .create_event(NewEvent {
            title: Title::parse("Town hall").unwrap(),
            region: "local".into(),
            shards: 1,
            retention: Duration::from_secs(3600),
        })
        .await
        .unwrap();
    // The creation notified the projector; start each test from quiet.
    let notified: Vec<_> = trigger
        .next_batch()
        .await
        .into_iter()
        .map(|d| d.event)
        .collect();
    assert_eq!(notified, [created.meta.id]);
    Setup {
        executor,
        store,
        meta: created.meta,
        trigger,
    }
}

fn voter(meta: &EventMeta, token: &str) -> VoterId {
    VoterId::derive(meta.id, &VoterToken::parse(token).unwrap())
}

async fn ask(s: &Setup, question: QuestionId) {
    let ask = Command::Ask(Ask {
        question,
        asker: voter(&s.meta, "asker-token-000001"),
        text: QuestionText::parse("Why?").unwrap(),
        author: None,
    });
    s.executor.execute(&s.meta, &ask, None).await.unwrap();
}

#[tokio::test]
async fn an_append_notifies_the_projector_and_a_repeat_writes_nothing() {
    let s = setup(None).await;
    let question = QuestionId::from_ulid(s.executor.mint());
    ask(&s, question).await;
    let up = Command::Vote(Vote {
        question,
        voter: voter(&s.meta, "voter-token-0000001"),
        up: true,
    });
    let first = s.executor.execute(&s.meta, &up, None).await.unwrap();
    assert!(first.appended);
    let notified: Vec<_> = s
        .trigger
        .next_batch()
        .await
        .into_iter()
        .map(|d| d.event)
        .collect();
    assert_eq!(notified, [s.meta.id]);
    let again = s.executor.execute(&s.meta, &up, None).await.unwrap();
    assert_eq!(
        again,
        Executed {
            record: first.record,
            appended: false
        }
    );
    // Question, one vote and the creation record: nothing more.
    assert_eq!(s.store.log.read_event(s.meta.log()).await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_lost_race_is_decided_again_from_what_the_rival_wrote() {
    let memory = MemoryStore::new();
    let rival = Arc::new(RivalFirst {
        inner: memory,
        rival: Mutex::new(None),
    });
    let s = setup(Some(rival.clone() as Arc<dyn Log>)).await;
    let question = QuestionId::from_ulid(s.executor.mint());
    ask(&s, question).await;
    let who = voter(&s.meta, "voter-token-0000001");
    // The same voter's other request votes first, between our read and our
    // append: same sequence, same n, so the same key.
    let rival_id = RecordId::from_ulid(s.executor.mint());
    *rival.rival.lock().unwrap() = Some(Record {
        id: rival_id,
        event: s.meta.id,
        client: None,
        body: RecordBody::Vote {
            question,
            voter: who,
            n: 1,
        },
    });
    let up = Command::Vote(Vote {
        question,
        voter: who,
        up: true,
    });
    let executed = s.executor.execute(&s.meta, &up, None).await.unwrap();
    assert_eq!(
        executed,
        Executed {
            record: Some(rival_id),
            appended: false
        },
        "the vote is already so, by the rival's record"
    );
    let votes = s
        .store
        .log
        .read_event(s.meta.log())
        .await
        .unwrap()
        .into_iter()
        .filter(|r| matches!(r.body, RecordBody::Vote { .. }))
        .count();
    assert_eq!(votes, 1);
}

#[tokio::test]
async fn admission_is_asked_only_before_an_append() {
    let s = setup(None).await;
    let question = QuestionId::from_ulid(s.executor.mint());
    let ask = Command::Ask(Ask {
        question,
        asker: voter(&s.meta, "asker-token-000001"),
        text: QuestionText::parse("Why?").unwrap(),
        author: None,
    });
    // Refused admission: nothing stored.
    let refused = s
        .executor
        .execute_admitted(&s.meta, &ask, None, || Err("slow down"))
        .await;
    assert!(matches!(
        refused,
        Err(ExecuteError::NotAdmitted("slow down"))
    ));
    assert_eq!(s.store.log.read_event(s.meta.log()).await.unwrap().len(), 1);
    // Admitted: stored.
    let done = s
        .executor
        .execute_admitted(&s.meta, &ask, None, || Ok::<(), &str>(()))
        .await
        .unwrap();
    assert!(done.appended);
    // A retry of the stored question is never refused.
    let retry = s
        .executor
        .execute_admitted(&s.meta, &ask, None, || -> Result<(), &str> {
            panic!("a retry must not be limited")
        })
        .await
        .unwrap();
    assert!(!retry.appended);
}

#[tokio::test]
async fn refusals_store_nothing() {
    let s = setup(None).await;
    let unknown = QuestionId::from_ulid(s.executor.mint());
    let up = Command::Vote(Vote {
        question: unknown,
        voter: voter(&s.meta, "voter-token-0000001"),
        up: true,
    });
    let r = s.executor.execute(&s.meta, &up, None).await;
    assert!(matches!(
        r,
        Err(ExecuteError::Refused(Refusal::NoSuchQuestion))
    ));
    assert_eq!(s.store.log.read_event(s.meta.log()).await.unwrap().len(), 1);
}

/// A voter's first vote on a just-asked question, on a log whose recent
/// reads are `stale` or not; asserts it was appended, and returns the point
/// reads the vote made, with the question.
async fn first_vote_reads(stale: bool) -> (Vec<(&'static str, Vec<Lookup>)>, QuestionId) {
    let watched = Watched::new(stale);
    let s = setup(Some(watched.clone() as Arc<dyn Log>)).await;
    let question = QuestionId::from_ulid(s.executor.mint());
    ask(&s, question).await;
    watched.take_reads();
    let up = Command::Vote(Vote {
        question,
        voter: voter(&s.meta, "voter-token-0000001"),
        up: true,
    });
    let executed = s.executor.execute(&s.meta, &up, None).await.unwrap();
    assert!(executed.appended);
    (watched.take_reads(), question)
}

#[tokio::test]
async fn a_first_vote_reads_only_its_checks_never_its_own_sequence() {
    let (reads, question) = first_vote_reads(false).await;
    assert_eq!(
        reads,
        [(
            "recent",
            vec![
                Lookup::Key(RecordKey::question_asked(question)),
                Lookup::Latest(Sequence::Hidden(question)),
            ]
        )],
        "one round of checks that may be stale, and no read of the vote's own sequence"
    );
}

#[tokio::test]
async fn a_stale_check_never_refuses_a_vote_it_is_decided_again_from_every_read() {
    // The stale checks say "no such question"; the strong reads find it.
    let (reads, _) = first_vote_reads(true).await;
    let kinds: Vec<&str> = reads.into_iter().map(|(kind, _)| kind).collect();
    assert_eq!(kinds, ["recent", "strong"]);
}

#[tokio::test]
async fn a_vote_after_a_withdrawal_finds_its_key_taken_and_numbers_on() {
    let s = setup(None).await;
    let question = QuestionId::from_ulid(s.executor.mint());
    ask(&s, question).await;
    let who = voter(&s.meta, "voter-token-0000001");
    for up in [true, false, true] {
        let vote = Command::Vote(Vote {
            question,
            voter: who,
            up,
        });
        assert!(
            s.executor
                .execute(&s.meta, &vote, None)
                .await
                .unwrap()
                .appended
        );
    }
    let latest = s
        .store
        .log
        .latest(
            s.meta.log(),
            &Sequence::Vote {
                voter: who,
                question,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.n(), Some(3), "up, down, up again: n = 1, 2, 3");
    // Creation, question and three votes; the guessed n = 1 stored nothing.
    assert_eq!(s.store.log.read_event(s.meta.log()).await.unwrap().len(), 5);
}
