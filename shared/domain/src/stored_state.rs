//! An event's folded state as a projector stores it between runs, where its
//! memory cannot be trusted to last (a Lambda is frozen after each answer,
//! and any instance may be the next to run).
//!
//! The state is the fold's own: order-independent and idempotent. A stored
//! state with any records applied to it, again or in any order, equals the
//! fold of everything it has seen, so a projection needs only the records
//! that are new, and a redelivered batch changes nothing.
//!
//! It is stored in two kinds of pieces: a head with everything but the
//! votes' toggles (its size grows with the questions, like the views), and
//! the toggles in chunks by voter ([`crate::toggles`]). A projection
//! rewrites the head and only the chunks its records touched.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fold::{EventState, Latest, QuestionState};
use crate::ids::{EventId, QuestionId, RecordId};
use crate::input::Title;
use crate::toggles::{ChunkEntries, Toggles};

/// Everything in an [`EventState`] but the toggles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredHead {
    pub event: EventId,
    pub created: Option<(RecordId, Title)>,
    pub open: Option<Latest<bool>>,
    pub questions: BTreeMap<QuestionId, QuestionState>,
    /// How many toggle chunks the state has (a power of two).
    pub toggle_chunks: u32,
}

impl EventState {
    /// The head to store.
    pub fn stored_head(&self) -> StoredHead {
        StoredHead {
            event: self.event,
            created: self.created.clone(),
            open: self.open.clone(),
            questions: self.questions.clone(),
            toggle_chunks: u32::try_from(self.toggles.chunk_count()).unwrap_or(u32::MAX),
        }
    }

    /// The toggle chunks changed since the state was last stored or loaded.
    pub fn changed_toggle_chunks(&self) -> Vec<(usize, ChunkEntries)> {
        self.toggles.changed_chunks()
    }

    /// The indices of the toggle chunks changed since the state was last
    /// stored or loaded: a load that keeps this copy must read them again.
    pub fn unstored_toggle_chunks(&self) -> Vec<usize> {
        self.toggles.changed_indices()
    }

    /// Notes that the state is stored as it is now.
    pub fn mark_stored(&mut self) {
        self.toggles.mark_stored();
    }

    /// The state stored as `head` and `chunks`. Chunks not given are taken
    /// from `kept` (this projector's copy of an earlier version, whose
    /// unchanged chunks need not be read again) if it has as many, else
    /// they are empty.
    pub fn from_stored(
        head: StoredHead,
        chunks: Vec<(usize, ChunkEntries)>,
        kept: Option<EventState>,
    ) -> Result<Self, String> {
        if kept.as_ref().is_some_and(|k| k.event != head.event) {
            return Err("a kept state of another event".to_owned());
        }
        let count = usize::try_from(head.toggle_chunks).map_err(|e| e.to_string())?;
        let toggles = Toggles::from_chunks(count, chunks, kept.map(|k| k.toggles))?;
        Ok(Self {
            event: head.event,
            created: head.created,
            open: head.open,
            questions: head.questions,
            toggles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::VoterId;
    use crate::input::QuestionText;
    use crate::record::{Record, RecordBody};
    use crate::view::render;
    use ulid::Ulid;

    fn record(event: EventId, i: u64, body: RecordBody) -> Record {
        Record {
            id: RecordId::from_ulid(Ulid::from_parts(1_700_000_000_000 + i, u128::from(i))),
            event,
            client: None,
            body,
        }
    }

    #[test]
    fn a_stored_state_loads_back_to_the_same_views_and_takes_more_records() {
        let event = EventId::from_ulid(Ulid::from_parts(1, 1));
        let question = QuestionId::from_ulid(Ulid::from_parts(2, 2));
        let voter = |i: u64| VoterId::parse(&format!("{i:020x}")).unwrap();
        let mut records = vec![
            record(
                event,
                0,
                RecordBody::EventCreated {
                    title: Title::parse("Town hall").unwrap(),
                },
            ),
            record(
                event,
                1,
                RecordBody::QuestionAsked {
                    question,
                    asker: voter(1),
                    text: QuestionText::parse("Why?").unwrap(),
                    author: None,
                },
            ),
        ];
        records.extend((0..50).map(|i| {
            record(
                event,
                10 + i,
                RecordBody::Vote {
                    question,
                    voter: voter(i),
                    n: 1,
                },
            )
        }));
        let mut state = EventState::fold(event, &records);
        assert_eq!(state.implied_records(), records.len() as u64);
        let head = state.stored_head();
        let chunks = state.changed_toggle_chunks();
        state.mark_stored();
        let mut loaded = EventState::from_stored(head, chunks, None).unwrap();
        assert_eq!(render(&loaded), render(&state));
        assert_eq!(loaded.implied_records(), state.implied_records());

        // A withdrawal, and the same record again: one change.
        let withdrawal = record(
            event,
            100,
            RecordBody::Vote {
                question,
                voter: voter(3),
                n: 2,
            },
        );
        loaded.apply_all([&withdrawal, &withdrawal]);
        assert_eq!(loaded.changed_toggle_chunks().len(), 1);
        records.push(withdrawal);
        assert_eq!(render(&loaded), render(&EventState::fold(event, &records)));
        assert_eq!(loaded.implied_records(), records.len() as u64);
    }
}
