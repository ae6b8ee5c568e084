//! Properties every backend and every replay relies on: the fold is
//! deterministic, order-independent and idempotent.

use std::collections::HashMap;

use openfloor_domain::fold::EventState;
use openfloor_domain::ids::{EventId, QuestionId, RecordId, VoterId};
use openfloor_domain::input::{AuthorName, QuestionText, Title};
use openfloor_domain::record::{Record, RecordBody};
use openfloor_domain::stored_state::StoredHead;
use openfloor_domain::toggles::ChunkEntries;
use openfloor_domain::view::render;
use proptest::prelude::*;
use ulid::Ulid;

fn event() -> EventId {
    EventId::from_ulid(Ulid::from_parts(1_700_000_000_000, 42))
}

fn question(i: u8) -> QuestionId {
    QuestionId::from_ulid(Ulid::from_parts(
        1_700_000_000_000 + u64::from(i),
        u128::from(i),
    ))
}

fn voter(i: u8) -> VoterId {
    VoterId::parse(&format!("{:020x}", u128::from(i) * 7919)).unwrap()
}

/// Small domains so that collisions (many votes on one question, many
/// toggles of one flag) are common.
fn body() -> impl Strategy<Value = RecordBody> {
    let q = (0u8..4).prop_map(question);
    let v = (0u8..5).prop_map(voter);
    let n = 1u32..6;
    let text = prop::sample::select(vec!["why?", "how?", "<b>who</b>?", "what\nnext"])
        .prop_map(|t| QuestionText::parse(t).unwrap());
    prop_oneof![
        prop::sample::select(vec!["", "Town hall"]).prop_map(|t| RecordBody::EventCreated {
            title: Title::parse(t).unwrap()
        }),
        (
            q.clone(),
            v.clone(),
            text.clone(),
            prop::option::of(Just("Ada"))
        )
            .prop_map(
                |(question, asker, text, author)| RecordBody::QuestionAsked {
                    question,
                    asker,
                    text,
                    author: author.map(|a| AuthorName::parse(a).unwrap()),
                }
            ),
        (q.clone(), v, n.clone()).prop_map(|(question, voter, n)| RecordBody::Vote {
            question,
            voter,
            n
        }),
        (q.clone(), v_n(), any::<bool>()).prop_map(|(question, n, value)| RecordBody::Answered {
            question,
            n,
            value
        }),
        (q.clone(), v_n(), any::<bool>()).prop_map(|(question, n, value)| RecordBody::Hidden {
            question,
            n,
            value
        }),
        (q, v_n(), text).prop_map(|(question, n, text)| RecordBody::TextCorrected {
            question,
            n,
            text
        }),
        (v_n(), any::<bool>()).prop_map(|(n, value)| RecordBody::Open { n, value }),
    ]
}

fn v_n() -> impl Strategy<Value = u32> + Clone {
    1u32..6
}

fn records() -> impl Strategy<Value = Vec<Record>> {
    prop::collection::vec((body(), 0u64..1_000, any::<u16>()), 0..60).prop_map(|items| {
        items
            .into_iter()
            .map(|(body, ms, rand)| Record {
                id: RecordId::from_ulid(Ulid::from_parts(1_700_000_000_000 + ms, u128::from(rand))),
                event: event(),
                client: None,
                body,
            })
            .collect()
    })
}

/// The records, shuffled, with some of them repeated.
fn permuted_with_duplicates() -> impl Strategy<Value = (Vec<Record>, Vec<Record>)> {
    records().prop_flat_map(|records| {
        let len = records.len();
        let dups = prop::collection::vec(0..len.max(1), 0..len.max(1) * 2);
        (Just(records), dups).prop_flat_map(|(records, dups)| {
            let mut mixed = records.clone();
            if !records.is_empty() {
                mixed.extend(dups.iter().map(|&i| records[i].clone()));
            }
            (Just(records), Just(mixed).prop_shuffle())
        })
    })
}

/// A history as the service writes it: every sequence numbered from 1
/// without gaps, each record once, in a shuffled order.
fn gap_free_history() -> impl Strategy<Value = Vec<Record>> {
    let question_plan = (any::<bool>(), 0u32..3, 0u32..3, 0u32..3);
    (
        any::<bool>(),
        0u32..3,
        prop::collection::vec(question_plan, 4),
        prop::collection::vec(0u32..4, 20),
    )
        .prop_map(|(created, opens, questions, votes)| {
            let mut bodies = Vec::new();
            if created {
                bodies.push(RecordBody::EventCreated {
                    title: Title::parse("Town hall").unwrap(),
                });
            }
            bodies.extend((1..=opens).map(|n| RecordBody::Open {
                n,
                value: n % 2 == 0,
            }));
            for (i, (asked, answered, hidden, corrected)) in questions.into_iter().enumerate() {
                let question = question(i as u8);
                if asked {
                    bodies.push(RecordBody::QuestionAsked {
                        question,
                        asker: voter(9),
                        text: QuestionText::parse("why?").unwrap(),
                        author: None,
                    });
                }
                let value = |n: u32| n % 2 == 1;
                bodies.extend((1..=answered).map(|n| RecordBody::Answered {
                    question,
                    n,
                    value: value(n),
                }));
                bodies.extend((1..=hidden).map(|n| RecordBody::Hidden {
                    question,
                    n,
                    value: value(n),
                }));
                bodies.extend((1..=corrected).map(|n| RecordBody::TextCorrected {
                    question,
                    n,
                    text: QuestionText::parse(&format!("why {n}?")).unwrap(),
                }));
            }
            // Voter v's toggles on question v % 4.
            for (v, m) in votes.into_iter().enumerate() {
                bodies.extend((1..=m).map(|n| RecordBody::Vote {
                    question: question(v as u8 % 4),
                    voter: voter(v as u8),
                    n,
                }));
            }
            bodies
                .into_iter()
                .zip(0u64..)
                .map(|(body, i)| Record {
                    id: RecordId::from_ulid(Ulid::from_parts(1_700_000_000_000 + i, u128::from(i))),
                    event: event(),
                    client: None,
                    body,
                })
                .collect()
        })
        .prop_shuffle()
}

/// A stand-in for durable storage of a projector's state: a head and
/// toggle chunks, each stamped with the version that last wrote it.
#[derive(Default)]
struct StoredState {
    version: u64,
    head: Option<StoredHead>,
    chunks: HashMap<usize, (u64, ChunkEntries)>,
}

impl StoredState {
    /// Loads the state, reading only the chunks written since `kept`'s
    /// version when `kept` has as many chunks.
    fn load(&self, kept: Option<(EventState, u64)>) -> (EventState, u64) {
        let Some(head) = self.head.clone() else {
            return (EventState::new(event()), 0);
        };
        let same_layout =
            |k: &(EventState, u64)| k.0.stored_head().toggle_chunks == head.toggle_chunks;
        let since = kept.as_ref().filter(|k| same_layout(k)).map_or(0, |k| k.1);
        let unstored = kept
            .as_ref()
            .filter(|k| same_layout(k))
            .map(|k| k.0.unstored_toggle_chunks())
            .unwrap_or_default();
        let mut chunks: Vec<(usize, ChunkEntries)> = self
            .chunks
            .iter()
            .filter(|(index, (written, _))| *written > since || unstored.contains(index))
            .map(|(index, (_, entries))| (*index, entries.clone()))
            .collect();
        // A chunk changed here but never stored is empty in storage.
        chunks.extend(
            unstored
                .iter()
                .filter(|index| !self.chunks.contains_key(index))
                .map(|&index| (index, ChunkEntries::new())),
        );
        let state = EventState::from_stored(head, chunks, kept.map(|k| k.0)).unwrap();
        (state, self.version)
    }

    /// Stores `state`'s changes if it was loaded at the current version.
    fn store(&mut self, state: &mut EventState, loaded_at: u64) -> bool {
        if loaded_at != self.version {
            return false;
        }
        let head = state.stored_head();
        if self.head.as_ref().map(|h| h.toggle_chunks) != Some(head.toggle_chunks) {
            self.chunks.clear();
        }
        self.version += 1;
        for (index, entries) in state.changed_toggle_chunks() {
            self.chunks.insert(index, (self.version, entries));
        }
        self.head = Some(head);
        state.mark_stored();
        true
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_gap_free_history_implies_exactly_its_record_count(records in gap_free_history()) {
        let state = EventState::fold(event(), &records);
        prop_assert_eq!(state.implied_records(), records.len() as u64);
    }

    /// Two projectors take turns at batches of a stream that redelivers and
    /// reorders, each loading the stored state (only the chunks changed
    /// since its own copy), applying its batch and storing it. Sometimes
    /// the other one stores a batch in between: the first one's store is
    /// then refused, and it loads again (keeping its copy, whose changed
    /// chunks are read again) and applies again. The stored state
    /// renders exactly the full fold, and counts every record.
    #[test]
    fn a_state_stored_between_batches_equals_the_full_fold(
        records in gap_free_history(),
        extra in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        cuts in prop::collection::vec(1usize..8, 1..20),
        turns in prop::collection::vec(any::<(bool, bool, bool)>(), 20),
    ) {
        let mut delivered = records.clone();
        if !records.is_empty() {
            delivered.extend(extra.iter().map(|i| i.get(&records).clone()));
        }
        let mut batches = Vec::new();
        let mut rest = delivered.as_slice();
        for &cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (batch, later) = rest.split_at(cut.min(rest.len()));
            batches.push(batch);
            rest = later;
        }
        let mut stored = StoredState::default();
        let mut projectors: [Option<(EventState, u64)>; 2] = [None, None];
        let mut batches = batches.into_iter().enumerate().peekable();
        while let Some((turn, batch)) = batches.next() {
            let (which, cold, raced) = turns[turn % turns.len()];
            let mut interloper = if raced { batches.next() } else { None };
            loop {
                let kept = if cold { None } else { projectors[usize::from(which)].take() };
                let (mut state, version) = stored.load(kept);
                state.apply_all(batch);
                if let Some((_, theirs)) = interloper.take() {
                    let (mut other, at) = stored.load(projectors[usize::from(!which)].take());
                    other.apply_all(theirs);
                    prop_assert!(stored.store(&mut other, at));
                    projectors[usize::from(!which)] = Some((other, at + 1));
                }
                if stored.store(&mut state, version) {
                    projectors[usize::from(which)] = Some((state, version + 1));
                    break;
                }
                projectors[usize::from(which)] = Some((state, version));
            }
        }
        let (state, _) = stored.load(None);
        prop_assert_eq!(render(&state), render(&EventState::fold(event(), &records)));
        prop_assert_eq!(state.implied_records(), records.len() as u64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_permutation_with_duplicates_renders_identical_bytes(
        (records, mixed) in permuted_with_duplicates()
    ) {
        let a = render(&EventState::fold(event(), &records));
        let b = render(&EventState::fold(event(), &mixed));
        let text = |json: Vec<u8>| String::from_utf8(json).unwrap();
        prop_assert_eq!(text(a.guest.json), text(b.guest.json));
        prop_assert_eq!(text(a.host.json), text(b.host.json));
        prop_assert_eq!(a.guest.version, b.guest.version);
    }

    #[test]
    fn folding_in_chunks_equals_folding_at_once(
        (records, mixed) in permuted_with_duplicates(),
        cut in 0usize..200,
    ) {
        let whole = render(&EventState::fold(event(), &records));
        let cut = cut.min(mixed.len());
        let mut state = EventState::fold(event(), &mixed[..cut]);
        state.apply_all(&mixed[cut..]);
        prop_assert_eq!(render(&state), whole);
    }

    #[test]
    fn a_voter_counts_once_and_their_latest_toggle_wins(records in records()) {
        // Reference model: per (question, voter) the highest n decides.
        let mut latest: HashMap<(QuestionId, VoterId), u32> = HashMap::new();
        for r in &records {
            if let RecordBody::Vote { question, voter, n } = &r.body {
                let e = latest.entry((*question, *voter)).or_default();
                *e = (*e).max(*n);
            }
        }
        let state = EventState::fold(event(), &records);
        for (qid, q) in &state.questions {
            let expected = latest
                .iter()
                .filter(|((q2, _), n)| q2 == qid && *n % 2 == 1)
                .count() as u64;
            prop_assert_eq!(q.votes(), expected);
        }
    }
}

#[test]
fn records_of_another_event_change_nothing() {
    let other = EventId::from_ulid(Ulid::from_parts(1, 1));
    let stray = Record {
        id: RecordId::from_ulid(Ulid::from_parts(1_700_000_000_500, 1)),
        event: other,
        client: None,
        body: RecordBody::Open { n: 1, value: false },
    };
    let state = EventState::fold(event(), [&stray]);
    assert!(state.is_open());
}

#[test]
fn guest_view_hides_hidden_questions_and_host_view_flags_them() {
    let rec = |ms: u64, body| Record {
        id: RecordId::from_ulid(Ulid::from_parts(1_700_000_000_000 + ms, u128::from(ms))),
        event: event(),
        client: None,
        body,
    };
    let asked = |i: u8, text: &str| RecordBody::QuestionAsked {
        question: question(i),
        asker: voter(1),
        text: QuestionText::parse(text).unwrap(),
        author: None,
    };
    let records = vec![
        rec(
            0,
            RecordBody::EventCreated {
                title: Title::parse("T").unwrap(),
            },
        ),
        rec(1, asked(1, "visible")),
        rec(2, asked(2, "secret")),
        rec(
            3,
            RecordBody::Hidden {
                question: question(2),
                n: 1,
                value: true,
            },
        ),
        rec(
            4,
            RecordBody::Vote {
                question: question(1),
                voter: voter(2),
                n: 1,
            },
        ),
        rec(
            5,
            RecordBody::Vote {
                question: question(1),
                voter: voter(3),
                n: 1,
            },
        ),
        rec(
            6,
            RecordBody::Vote {
                question: question(1),
                voter: voter(3),
                n: 2,
            },
        ),
    ];
    let views = render(&EventState::fold(event(), &records));
    let guest: serde_json::Value = serde_json::from_slice(&views.guest.json).unwrap();
    let host: serde_json::Value = serde_json::from_slice(&views.host.json).unwrap();
    assert_eq!(guest["questions"].as_array().unwrap().len(), 1);
    assert_eq!(guest["questions"][0]["votes"], 1);
    assert!(guest["questions"][0].get("hidden").is_none());
    assert!(!String::from_utf8_lossy(&views.guest.json).contains("secret"));
    assert_eq!(host["questions"].as_array().unwrap().len(), 2);
    let hidden: Vec<_> = host["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["hidden"].as_bool().unwrap())
        .collect();
    assert_eq!(
        hidden,
        vec![false, true],
        "sorted by votes, hidden one last"
    );
    assert_eq!(guest["version"].as_str().unwrap(), views.guest.version);
}
