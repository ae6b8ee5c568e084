//! Commands: what guests and hosts ask the service to do, and the rule that
//! decides each one.
//!
//! A command declares what it must read from the event's log
//! ([`Command::reads`], answered in one round trip), and a pure
//! [`Command::decide`] turns what was read into a [`Decision`]: it is
//! already so, append this record, or refuse and say why. `decide` folds
//! what was read with the same [`EventState`] the projector uses, so each
//! rule ("open unless closed", "a hidden question is unknown to guests",
//! "odd n is a vote") is written once, in the fold, and tested without HTTP
//! or storage.
//!
//! Running a command (read, decide, append, retry when a race took the key,
//! notify the projector) is the executor's job (`openfloor-commands`).
//!
//! Numbered changes follow the design: read the sequence's latest n, do
//! nothing when the state already matches, else append n+1. The record's
//! key makes the append conditional, so when two requests race, one finds
//! its key taken, reads again and decides again.

use crate::fold::EventState;
use crate::ids::{EventId, QuestionId, RecordId, VoterId};
use crate::input::{AuthorName, QuestionText};
use crate::record::{Record, RecordBody, RecordKey, Sequence, MAX_SEQUENCE_NUMBER};

/// One point read a command needs before it can decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The record stored under this key.
    Key(RecordKey),
    /// The record with the highest n in this sequence.
    Latest(Sequence),
}

/// What a command comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to write: the state is already what was asked. Carries the
    /// record that makes it so, if there is one (withdrawing a vote never
    /// cast has none).
    AlreadySo(Option<RecordId>),
    /// Append a record with this body.
    Append(RecordBody),
    /// The command cannot be done.
    Refuse(Refusal),
}

/// Why a command is refused. Each is the client's to fix, never a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The question was never asked, or (for guests) is hidden.
    #[error("no such question")]
    NoSuchQuestion,
    /// The event is closed to new questions.
    #[error("this event is closed to new questions")]
    EventClosed,
    /// A client-minted question id was used again with other content.
    #[error("a question with this id already exists with other content")]
    QuestionIdReused,
    /// A numbered sequence has no room for one more change: the service
    /// stops one short of [`MAX_SEQUENCE_NUMBER`], after about four billion
    /// changes of one item.
    #[error("this item cannot be changed any more")]
    SequenceExhausted,
}

/// A guest asks a question. The id may be client-minted, so that a retry is
/// recognised: the same id with the same content is already so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub question: QuestionId,
    pub asker: VoterId,
    pub text: QuestionText,
    pub author: Option<AuthorName>,
}

/// A voter votes for a question (`up`) or withdraws their vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote {
    pub question: QuestionId,
    pub voter: VoterId,
    pub up: bool,
}

/// Which host flag [`SetFlag`] sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    Answered,
    Hidden,
}

/// The host marks a question answered or hidden, or clears the mark. Host
/// actions may target hidden questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetFlag {
    pub question: QuestionId,
    pub flag: Flag,
    pub value: bool,
}

/// The host corrects a question's text; correcting it to the text it
/// already shows is already so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrectText {
    pub question: QuestionId,
    pub text: QuestionText,
}

/// The host opens or closes the event to new questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetOpen {
    pub value: bool,
}

/// Every command that changes an event after its creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ask(Ask),
    Vote(Vote),
    SetFlag(SetFlag),
    CorrectText(CorrectText),
    SetOpen(SetOpen),
}

impl Command {
    /// A short name for logs and spans.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Ask(_) => "ask",
            Command::Vote(_) => "vote",
            Command::SetFlag(SetFlag {
                flag: Flag::Answered,
                ..
            }) => "set_answered",
            Command::SetFlag(SetFlag {
                flag: Flag::Hidden, ..
            }) => "set_hidden",
            Command::CorrectText(_) => "correct_text",
            Command::SetOpen(_) => "set_open",
        }
    }

    /// The question the command is about, if any.
    pub fn question(&self) -> Option<QuestionId> {
        match self {
            Command::Ask(c) => Some(c.question),
            Command::Vote(c) => Some(c.question),
            Command::SetFlag(c) => Some(c.question),
            Command::CorrectText(c) => Some(c.question),
            Command::SetOpen(_) => None,
        }
    }

    /// What [`Command::decide`] needs, in the order it expects the answers.
    pub fn reads(&self) -> Vec<Lookup> {
        let asked = |q| Lookup::Key(RecordKey::question_asked(q));
        match self {
            Command::Ask(c) => vec![asked(c.question), Lookup::Latest(Sequence::Open)],
            Command::Vote(c) => vec![
                asked(c.question),
                Lookup::Latest(Sequence::Hidden(c.question)),
                Lookup::Latest(c.sequence()),
            ],
            Command::SetFlag(c) => vec![asked(c.question), Lookup::Latest(c.sequence())],
            Command::CorrectText(c) => vec![
                asked(c.question),
                Lookup::Latest(Sequence::Text(c.question)),
            ],
            Command::SetOpen(_) => vec![Lookup::Latest(Sequence::Open)],
        }
    }

    /// For a command whose usual case starts a sequence (a voter's first
    /// vote for a question): the reads that check it may be appended, all
    /// of [`Command::reads`] but the sequence's own latest record. The
    /// executor decides from their answers as if the sequence had no record
    /// yet, and appends on the condition that the key is free; if it is
    /// taken, or the guess decides anything but an append, the command is
    /// decided again from every read. So the usual vote costs no read of
    /// its own sequence, and stays exact.
    pub fn optimistic_reads(&self) -> Option<Vec<Lookup>> {
        match self {
            Command::Vote(c) if c.up => {
                let mut reads = self.reads();
                reads.pop(); // the sequence's own latest record, assumed absent
                Some(reads)
            }
            _ => None,
        }
    }

    /// Decides the command on event `event` from `found`, the answers to
    /// [`Command::reads`] in order. Pure: the same answers give the same
    /// decision.
    pub fn decide(&self, event: EventId, found: &[Option<Record>]) -> Decision {
        let state = EventState::fold(event, found.iter().flatten());
        // The latest record of the command's own sequence, which is always
        // the last thing a numbered command reads.
        let latest = found.last().and_then(Option::as_ref);
        match self {
            Command::Ask(c) => c.decide(&state),
            Command::Vote(c) => c.decide(&state, latest),
            Command::SetFlag(c) => c.decide(&state, latest),
            Command::CorrectText(c) => c.decide(&state, latest),
            Command::SetOpen(c) => c.decide(&state, latest),
        }
    }
}

/// The next change of a sequence whose latest record is `latest`.
fn next_n(latest: Option<&Record>) -> Result<u32, Refusal> {
    latest
        .and_then(Record::n)
        .unwrap_or(0)
        .checked_add(1)
        .filter(|n| *n < MAX_SEQUENCE_NUMBER)
        .ok_or(Refusal::SequenceExhausted)
}

/// Appends `make(n)` for the next n, or refuses when the sequence is full.
fn append_next(latest: Option<&Record>, make: impl FnOnce(u32) -> RecordBody) -> Decision {
    match next_n(latest) {
        Ok(n) => Decision::Append(make(n)),
        Err(refusal) => Decision::Refuse(refusal),
    }
}

impl Ask {
    fn decide(&self, state: &EventState) -> Decision {
        if let Some(asked) = state.question(self.question).and_then(|q| q.asked.as_ref()) {
            // A retry only from the one who asked: anyone else learns
            // nothing about the question (were it hidden, not even whether
            // a guessed text is right).
            let retry =
                asked.asker == self.asker && asked.text == self.text && asked.author == self.author;
            return if retry {
                Decision::AlreadySo(Some(asked.record))
            } else {
                Decision::Refuse(Refusal::QuestionIdReused)
            };
        }
        if !state.is_open() {
            return Decision::Refuse(Refusal::EventClosed);
        }
        Decision::Append(RecordBody::QuestionAsked {
            question: self.question,
            asker: self.asker,
            text: self.text.clone(),
            author: self.author.clone(),
        })
    }
}

impl Vote {
    /// The sequence of this voter's toggles on this question.
    pub fn sequence(&self) -> Sequence {
        Sequence::Vote {
            voter: self.voter,
            question: self.question,
        }
    }

    fn decide(&self, state: &EventState, latest: Option<&Record>) -> Decision {
        if state.visible_question(self.question).is_none() {
            return Decision::Refuse(Refusal::NoSuchQuestion);
        }
        if state.voted_by(self.question, &self.voter) == self.up {
            return Decision::AlreadySo(latest.map(|r| r.id));
        }
        let (question, voter) = (self.question, self.voter);
        append_next(latest, |n| RecordBody::Vote { question, voter, n })
    }
}

impl SetFlag {
    pub fn sequence(&self) -> Sequence {
        match self.flag {
            Flag::Answered => Sequence::Answered(self.question),
            Flag::Hidden => Sequence::Hidden(self.question),
        }
    }

    fn decide(&self, state: &EventState, latest: Option<&Record>) -> Decision {
        let Some(question) = state.asked_question(self.question) else {
            return Decision::Refuse(Refusal::NoSuchQuestion);
        };
        let current = match self.flag {
            Flag::Answered => question.is_answered(),
            Flag::Hidden => question.is_hidden(),
        };
        if current == self.value {
            return Decision::AlreadySo(latest.map(|r| r.id));
        }
        let (question, value) = (self.question, self.value);
        append_next(latest, |n| match self.flag {
            Flag::Answered => RecordBody::Answered { question, n, value },
            Flag::Hidden => RecordBody::Hidden { question, n, value },
        })
    }
}

impl CorrectText {
    fn decide(&self, state: &EventState, latest: Option<&Record>) -> Decision {
        let Some(question) = state.asked_question(self.question) else {
            return Decision::Refuse(Refusal::NoSuchQuestion);
        };
        if question.text() == Some(&self.text) {
            return Decision::AlreadySo(latest.map(|r| r.id));
        }
        let question = self.question;
        append_next(latest, |n| RecordBody::TextCorrected {
            question,
            n,
            text: self.text.clone(),
        })
    }
}

impl SetOpen {
    fn decide(&self, state: &EventState, latest: Option<&Record>) -> Decision {
        if state.is_open() == self.value {
            return Decision::AlreadySo(latest.map(|r| r.id));
        }
        let value = self.value;
        append_next(latest, |n| RecordBody::Open { n, value })
    }
}

#[cfg(test)]
mod tests {
    //! Each command's rule, decided from hand-made log answers: no HTTP, no
    //! storage.

    use super::*;
    use crate::input::{AuthorName, QuestionText};

    fn ids() -> (EventId, QuestionId, VoterId) {
        ids_of("voter-token-0001")
    }

    /// The test event and question, and the voter holding `token`.
    fn ids_of(token: &str) -> (EventId, QuestionId, VoterId) {
        let event = EventId::from_ulid(ulid::Ulid::from_parts(1_000, 1));
        let question = QuestionId::from_ulid(ulid::Ulid::from_parts(2_000, 2));
        let voter = VoterId::derive(event, &crate::ids::VoterToken::parse(token).unwrap());
        (event, question, voter)
    }

    fn record(event: EventId, at: u64, body: RecordBody) -> Record {
        Record {
            id: RecordId::from_ulid(ulid::Ulid::from_parts(at, u128::from(at))),
            event,
            client: None,
            body,
        }
    }

    fn text(s: &str) -> QuestionText {
        QuestionText::parse(s).unwrap()
    }

    fn asked(event: EventId, question: QuestionId, voter: VoterId, t: &str) -> Record {
        record(
            event,
            3_000,
            RecordBody::QuestionAsked {
                question,
                asker: voter,
                text: text(t),
                author: None,
            },
        )
    }

    fn decide(command: &Command, event: EventId, found: Vec<Option<Record>>) -> Decision {
        assert_eq!(found.len(), command.reads().len(), "one answer per read");
        command.decide(event, &found)
    }

    #[test]
    fn only_a_vote_up_is_guessed_and_its_guess_leaves_out_its_own_sequence() {
        let (_, question, voter) = ids();
        let vote = |up| {
            Command::Vote(Vote {
                question,
                voter,
                up,
            })
        };
        let mut checks = vote(true).reads();
        assert_eq!(
            checks.pop(),
            Some(Lookup::Latest(Sequence::Vote { voter, question }))
        );
        assert_eq!(vote(true).optimistic_reads(), Some(checks));
        // A withdrawal must know the vote it withdraws.
        assert_eq!(vote(false).optimistic_reads(), None);
        let open = Command::SetOpen(SetOpen { value: false });
        assert_eq!(open.optimistic_reads(), None);
    }

    #[test]
    fn ask_appends_a_new_question() {
        let (event, question, voter) = ids();
        let ask = Command::Ask(Ask {
            question,
            asker: voter,
            text: text("Why?"),
            author: Some(AuthorName::parse("Ada").unwrap()),
        });
        match decide(&ask, event, vec![None, None]) {
            Decision::Append(RecordBody::QuestionAsked { text: t, .. }) => {
                assert_eq!(t.as_str(), "Why?")
            }
            other => panic!("expected an append, got {other:?}"),
        }
    }

    #[test]
    fn ask_again_with_the_same_content_is_already_so_and_other_content_is_refused() {
        let (event, question, voter) = ids();
        let existing = asked(event, question, voter, "Why?");
        let same = Command::Ask(Ask {
            question,
            asker: voter,
            text: text("Why?"),
            author: None,
        });
        assert_eq!(
            decide(&same, event, vec![Some(existing.clone()), None]),
            Decision::AlreadySo(Some(existing.id))
        );
        let other = Command::Ask(Ask {
            question,
            asker: voter,
            text: text("Why not?"),
            author: None,
        });
        assert_eq!(
            decide(&other, event, vec![Some(existing.clone()), None]),
            Decision::Refuse(Refusal::QuestionIdReused)
        );
        // Someone else repeating the exact ask is no retry: a guest cannot
        // confirm a hidden question's text by guessing it.
        let (_, _, someone_else) = ids_of("another-voter-token");
        let copy = Command::Ask(Ask {
            question,
            asker: someone_else,
            text: text("Why?"),
            author: None,
        });
        assert_eq!(
            decide(&copy, event, vec![Some(existing), None]),
            Decision::Refuse(Refusal::QuestionIdReused)
        );
    }

    #[test]
    fn ask_is_refused_when_closed_and_allowed_when_reopened() {
        let (event, question, voter) = ids();
        let ask = Command::Ask(Ask {
            question,
            asker: voter,
            text: text("Why?"),
            author: None,
        });
        let closed = record(event, 4_000, RecordBody::Open { n: 1, value: false });
        assert_eq!(
            decide(&ask, event, vec![None, Some(closed)]),
            Decision::Refuse(Refusal::EventClosed)
        );
        let reopened = record(event, 5_000, RecordBody::Open { n: 2, value: true });
        assert!(matches!(
            decide(&ask, event, vec![None, Some(reopened)]),
            Decision::Append(_)
        ));
    }

    #[test]
    fn vote_toggles_with_odd_n_and_repeats_are_already_so() {
        let (event, question, voter) = ids();
        let q = Some(asked(event, question, voter, "Why?"));
        let up = Command::Vote(Vote {
            question,
            voter,
            up: true,
        });
        let down = Command::Vote(Vote {
            question,
            voter,
            up: false,
        });
        assert_eq!(
            decide(&up, event, vec![q.clone(), None, None]),
            Decision::Append(RecordBody::Vote {
                question,
                voter,
                n: 1
            })
        );
        // Withdrawing a vote never cast needs no record.
        assert_eq!(
            decide(&down, event, vec![q.clone(), None, None]),
            Decision::AlreadySo(None)
        );
        let first = record(
            event,
            4_000,
            RecordBody::Vote {
                question,
                voter,
                n: 1,
            },
        );
        assert_eq!(
            decide(&up, event, vec![q.clone(), None, Some(first.clone())]),
            Decision::AlreadySo(Some(first.id))
        );
        assert_eq!(
            decide(&down, event, vec![q, None, Some(first)]),
            Decision::Append(RecordBody::Vote {
                question,
                voter,
                n: 2
            })
        );
    }

    #[test]
    fn vote_on_an_unknown_or_hidden_question_is_refused() {
        let (event, question, voter) = ids();
        let up = Command::Vote(Vote {
            question,
            voter,
            up: true,
        });
        assert_eq!(
            decide(&up, event, vec![None, None, None]),
            Decision::Refuse(Refusal::NoSuchQuestion)
        );
        let hidden = record(
            event,
            4_000,
            RecordBody::Hidden {
                question,
                n: 1,
                value: true,
            },
        );
        assert_eq!(
            decide(
                &up,
                event,
                vec![
                    Some(asked(event, question, voter, "Why?")),
                    Some(hidden),
                    None
                ]
            ),
            Decision::Refuse(Refusal::NoSuchQuestion)
        );
    }

    #[test]
    fn flags_need_an_asked_question_and_write_only_changes() {
        let (event, question, voter) = ids();
        let q = Some(asked(event, question, voter, "Why?"));
        let hide = Command::SetFlag(SetFlag {
            question,
            flag: Flag::Hidden,
            value: true,
        });
        assert_eq!(
            decide(&hide, event, vec![None, None]),
            Decision::Refuse(Refusal::NoSuchQuestion)
        );
        assert_eq!(
            decide(&hide, event, vec![q.clone(), None]),
            Decision::Append(RecordBody::Hidden {
                question,
                n: 1,
                value: true
            })
        );
        // Unsetting a flag never set is already so.
        let unanswer = Command::SetFlag(SetFlag {
            question,
            flag: Flag::Answered,
            value: false,
        });
        assert_eq!(
            decide(&unanswer, event, vec![q.clone(), None]),
            Decision::AlreadySo(None)
        );
        let answered = record(
            event,
            4_000,
            RecordBody::Answered {
                question,
                n: 1,
                value: true,
            },
        );
        assert_eq!(
            decide(&unanswer, event, vec![q, Some(answered)]),
            Decision::Append(RecordBody::Answered {
                question,
                n: 2,
                value: false
            })
        );
    }

    #[test]
    fn a_correction_to_the_shown_text_is_already_so() {
        let (event, question, voter) = ids();
        let q = Some(asked(event, question, voter, "Whne?"));
        let fix = Command::CorrectText(CorrectText {
            question,
            text: text("When?"),
        });
        assert_eq!(
            decide(&fix, event, vec![q.clone(), None]),
            Decision::Append(RecordBody::TextCorrected {
                question,
                n: 1,
                text: text("When?")
            })
        );
        let done = record(
            event,
            4_000,
            RecordBody::TextCorrected {
                question,
                n: 1,
                text: text("When?"),
            },
        );
        assert_eq!(
            decide(&fix, event, vec![q.clone(), Some(done.clone())]),
            Decision::AlreadySo(Some(done.id))
        );
        // Back to the asked text, after a correction, is a change.
        let back = Command::CorrectText(CorrectText {
            question,
            text: text("Whne?"),
        });
        assert_eq!(
            decide(&back, event, vec![q, Some(done)]),
            Decision::Append(RecordBody::TextCorrected {
                question,
                n: 2,
                text: text("Whne?")
            })
        );
        assert_eq!(
            decide(&back, event, vec![None, None]),
            Decision::Refuse(Refusal::NoSuchQuestion)
        );
    }

    #[test]
    fn an_event_is_open_until_closed() {
        let (event, _, _) = ids();
        let open = Command::SetOpen(SetOpen { value: true });
        let close = Command::SetOpen(SetOpen { value: false });
        assert_eq!(decide(&open, event, vec![None]), Decision::AlreadySo(None));
        assert_eq!(
            decide(&close, event, vec![None]),
            Decision::Append(RecordBody::Open { n: 1, value: false })
        );
    }

    #[test]
    fn a_full_sequence_is_refused_not_wrapped() {
        let (event, question, voter) = ids();
        let q = Some(asked(event, question, voter, "Why?"));
        let last = record(
            event,
            4_000,
            RecordBody::Hidden {
                question,
                n: MAX_SEQUENCE_NUMBER - 1,
                value: false,
            },
        );
        let hide = Command::SetFlag(SetFlag {
            question,
            flag: Flag::Hidden,
            value: true,
        });
        assert_eq!(
            decide(&hide, event, vec![q.clone(), Some(last.clone())]),
            Decision::Refuse(Refusal::SequenceExhausted),
            "the last usable number is taken: no n = MAX_SEQUENCE_NUMBER"
        );
        let mut before = last;
        before.body = RecordBody::Hidden {
            question,
            n: MAX_SEQUENCE_NUMBER - 2,
            value: false,
        };
        assert!(matches!(
            decide(&hide, event, vec![q, Some(before)]),
            Decision::Append(RecordBody::Hidden { n, .. }) if n == MAX_SEQUENCE_NUMBER - 1
        ));
    }
}
