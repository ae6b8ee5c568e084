//! The fold: records in, an event's state out.
//!
//! Deterministic, order-independent and idempotent: folding any permutation
//! of a set of records, with any duplicates, gives the same state. Every
//! decision below is "the maximum of something", which is what makes that
//! true: per numbered sequence the highest n wins (ties, which the log's
//! unique keys rule out, are broken by record id then value so that even a
//! corrupt input folds deterministically); a question's first ask is the
//! one with the smallest record id.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{EventId, QuestionId, RecordId, VoterId};
use crate::input::{AuthorName, QuestionText, Title};
use crate::record::{is_vote, Record, RecordBody};
use crate::toggles::Toggles;
use crate::Millis;

/// The latest value of a numbered sequence, with what decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latest<T> {
    pub n: u32,
    pub record: RecordId,
    pub value: T,
}

impl<T: Ord + Clone> Latest<T> {
    /// Keeps whichever of the current and the offered change is later in
    /// the sequence.
    fn offer(slot: &mut Option<Self>, n: u32, record: RecordId, value: &T) {
        let wins = match slot {
            None => true,
            Some(cur) => (n, record, value) > (cur.n, cur.record, &cur.value),
        };
        if wins {
            *slot = Some(Latest {
                n,
                record,
                value: value.clone(),
            });
        }
    }

    /// When the winning change was made.
    pub fn at(&self) -> Millis {
        self.record.timestamp_ms()
    }
}

/// The asked question as first recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asked {
    pub record: RecordId,
    /// Who asked: only they may repeat the ask as a retry.
    pub asker: VoterId,
    pub text: QuestionText,
    pub author: Option<AuthorName>,
}

/// Everything known about one question. Its voters' toggles are kept by
/// the event ([`EventState::voted_by`]), in chunks by voter, so that the
/// state of a question stays small however many vote for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionState {
    /// `None` while only votes or host changes for it have been seen (a vote
    /// can arrive before its question); such a question is not shown.
    pub asked: Option<Asked>,
    pub answered: Option<Latest<bool>>,
    pub hidden: Option<Latest<bool>>,
    pub correction: Option<Latest<QuestionText>>,
    /// How many voters' highest toggle is odd (a vote, not a withdrawal).
    votes: u64,
}

impl QuestionState {
    pub fn votes(&self) -> u64 {
        self.votes
    }

    pub fn is_answered(&self) -> bool {
        self.answered.as_ref().is_some_and(|l| l.value)
    }

    pub fn is_hidden(&self) -> bool {
        self.hidden.as_ref().is_some_and(|l| l.value)
    }

    /// The text shown: the latest correction, else the asked text.
    pub fn text(&self) -> Option<&QuestionText> {
        match &self.correction {
            Some(c) => Some(&c.value),
            None => self.asked.as_ref().map(|a| &a.text),
        }
    }

    /// Counts a voter's toggle raised from `previous` to `n`.
    fn toggled(&mut self, previous: u32, n: u32) {
        match (is_vote(previous), is_vote(n)) {
            (false, true) => self.votes += 1,
            (true, false) => self.votes -= 1,
            _ => {}
        }
    }

    /// How many records of this question's own sequences the state
    /// accounts for: its ask, and every numbered change up to the latest.
    fn implied_records(&self) -> u64 {
        let latest = |n: Option<u32>| u64::from(n.unwrap_or(0));
        u64::from(self.asked.is_some())
            + latest(self.answered.as_ref().map(|l| l.n))
            + latest(self.hidden.as_ref().map(|l| l.n))
            + latest(self.correction.as_ref().map(|l| l.n))
    }
}

/// An event's state: the fold of its records.
#[derive(Debug, Clone)]
pub struct EventState {
    pub event: EventId,
    /// From the `event_created` record; `None` until it has been folded.
    pub created: Option<(RecordId, Title)>,
    /// Open to new questions unless the latest open/close says otherwise.
    pub open: Option<Latest<bool>>,
    pub questions: BTreeMap<QuestionId, QuestionState>,
    /// Each voter's highest toggle number on each question.
    pub(crate) toggles: Toggles,
}

impl EventState {
    pub fn new(event: EventId) -> Self {
        Self {
            event,
            created: None,
            open: None,
            questions: BTreeMap::new(),
            toggles: Toggles::default(),
        }
    }

    /// Folds `records` into a fresh state.
    pub fn fold<'a>(event: EventId, records: impl IntoIterator<Item = &'a Record>) -> Self {
        let mut state = Self::new(event);
        state.apply_all(records);
        state
    }

    pub fn apply_all<'a>(&mut self, records: impl IntoIterator<Item = &'a Record>) {
        for record in records {
            self.apply(record);
        }
    }

    /// Folds one more record in. Records of other events are ignored, so a
    /// stray record can never change this event.
    pub fn apply(&mut self, record: &Record) {
        if record.event != self.event {
            return;
        }
        let id = record.id;
        match &record.body {
            RecordBody::EventCreated { title } => {
                let wins = match &self.created {
                    None => true,
                    Some((cur, cur_title)) => (id, title) < (*cur, cur_title),
                };
                if wins {
                    self.created = Some((id, title.clone()));
                }
            }
            RecordBody::QuestionAsked {
                question,
                asker,
                text,
                author,
            } => {
                let q = self.questions.entry(*question).or_default();
                let wins = match &q.asked {
                    None => true,
                    Some(cur) => {
                        (id, text, author, asker) < (cur.record, &cur.text, &cur.author, &cur.asker)
                    }
                };
                if wins {
                    q.asked = Some(Asked {
                        record: id,
                        asker: *asker,
                        text: text.clone(),
                        author: author.clone(),
                    });
                }
            }
            RecordBody::Vote { question, voter, n } => {
                let q = self.questions.entry(*question).or_default();
                if let Some(previous) = self.toggles.raise(*question, *voter, *n) {
                    q.toggled(previous, *n);
                }
            }
            RecordBody::Answered { question, n, value } => {
                let q = self.questions.entry(*question).or_default();
                Latest::offer(&mut q.answered, *n, id, value);
            }
            RecordBody::Hidden { question, n, value } => {
                let q = self.questions.entry(*question).or_default();
                Latest::offer(&mut q.hidden, *n, id, value);
            }
            RecordBody::TextCorrected { question, n, text } => {
                let q = self.questions.entry(*question).or_default();
                Latest::offer(&mut q.correction, *n, id, text);
            }
            RecordBody::Open { n, value } => Latest::offer(&mut self.open, *n, id, value),
        }
    }

    /// Whether `voter` currently votes for `question`.
    pub fn voted_by(&self, question: QuestionId, voter: &VoterId) -> bool {
        is_vote(self.toggles.get(question, voter))
    }

    /// How many records the state accounts for. Every sequence is numbered
    /// without gaps (the n-th change is only written once the (n−1)-th
    /// exists, and no single record is ever deleted), so a state that
    /// knows a sequence's latest n accounts for all n of its records: this
    /// equals the number of distinct records folded in, once they are all
    /// in, in whatever order they came. A projector that cannot keep a
    /// cursor into the log (DynamoDB) counts its views' records this way.
    pub fn implied_records(&self) -> u64 {
        u64::from(self.created.is_some())
            + u64::from(self.open.as_ref().map_or(0, |l| l.n))
            + self
                .questions
                .values()
                .map(QuestionState::implied_records)
                .sum::<u64>()
            + self.toggles.sum()
    }

    /// What the state knows of `question` (perhaps only votes).
    pub fn question(&self, question: QuestionId) -> Option<&QuestionState> {
        self.questions.get(&question)
    }

    /// The question, if it has been asked: what a host may act on.
    pub fn asked_question(&self, question: QuestionId) -> Option<&QuestionState> {
        self.question(question).filter(|q| q.asked.is_some())
    }

    /// The question, if it has been asked and is not hidden: what a guest
    /// may see and vote on. A hidden question is unknown to guests.
    pub fn visible_question(&self, question: QuestionId) -> Option<&QuestionState> {
        self.asked_question(question).filter(|q| !q.is_hidden())
    }

    /// Open to new questions unless the latest open/close closed it.
    pub fn is_open(&self) -> bool {
        self.open.as_ref().is_none_or(|l| l.value)
    }

    pub fn title(&self) -> &str {
        self.created.as_ref().map_or("", |(_, t)| t.as_str())
    }

    /// The questions that have been asked (not just voted on).
    pub fn asked_questions(&self) -> impl Iterator<Item = (&QuestionId, &QuestionState, &Asked)> {
        self.questions
            .iter()
            .filter_map(|(id, q)| q.asked.as_ref().map(|a| (id, q, a)))
    }
}
