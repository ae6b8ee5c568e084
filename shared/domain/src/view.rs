//! Rendering: an event's state into the exact bytes of the guest and host
//! views (API.md). Rendering is deterministic, so equal states give
//! byte-identical views and a view's `version` (a hash of its content)
//! changes exactly when the content does.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::fold::{EventState, QuestionState};
use crate::ids::{hex_lower, EventId, QuestionId, RecordId};
use crate::input::Title;
use crate::Millis;

/// One rendered view: its JSON bytes and the version inside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedView {
    pub json: Vec<u8>,
    /// Also the view's HTTP entity tag (quoted).
    pub version: String,
}

/// Both views of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedViews {
    pub guest: RenderedView,
    pub host: RenderedView,
}

#[derive(Serialize)]
struct EventHead<'a> {
    id: EventId,
    title: &'a str,
    open: bool,
}

#[derive(Serialize)]
struct QuestionItem<'a> {
    id: QuestionId,
    text: &'a str,
    author: Option<&'a str>,
    votes: u64,
    asked_at: Millis,
    #[serde(skip_serializing_if = "Option::is_none")]
    answered_at: Option<Millis>,
    /// Only in the host view.
    #[serde(skip_serializing_if = "Option::is_none")]
    hidden: Option<bool>,
}

/// How many unanswered questions the guest view lists, best ranked first.
/// The guest view is what every guest downloads on every change, so it
/// stays this small however large the event; a room reads the top of the
/// ranking anyway. The host view lists every question.
pub const GUEST_VIEW_QUESTIONS: usize = 250;
/// How many answered questions the guest view lists, latest first.
pub const GUEST_VIEW_ANSWERED: usize = 50;

/// How many questions a view leaves out (the guest view's lists are cut at
/// [`GUEST_VIEW_QUESTIONS`] and [`GUEST_VIEW_ANSWERED`]).
#[derive(Serialize)]
struct LeftOut {
    questions: usize,
    answered: usize,
}

/// Which audience a view is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Never sees hidden questions or the `hidden` flag.
    Guest,
    /// Sees everything.
    Host,
}

/// Renders both views of `state`.
pub fn render(state: &EventState) -> RenderedViews {
    RenderedViews {
        guest: render_for(state, Audience::Guest),
        host: render_for(state, Audience::Host),
    }
}

/// The views of an event whose only record is its creation: what the
/// projector stores for a new event, served until it has. Rendering does not
/// show the creation record's id, so the real record is not needed (tested
/// below).
pub fn render_created(event: EventId, title: &Title) -> RenderedViews {
    let mut state = EventState::new(event);
    state.created = Some((RecordId::from_ulid(event.ulid()), title.clone()));
    render(&state)
}

/// Renders the view of `state` for `audience`.
pub fn render_for(state: &EventState, audience: Audience) -> RenderedView {
    let mut open_items = Vec::new();
    let mut answered_items = Vec::new();
    for (id, q, asked) in state.asked_questions() {
        let hidden = q.is_hidden();
        if hidden && audience == Audience::Guest {
            continue;
        }
        let item = item(*id, q, asked.record.timestamp_ms(), hidden, audience);
        if q.is_answered() {
            answered_items.push(item);
        } else {
            open_items.push(item);
        }
    }
    // Unanswered: votes descending, then asked_at ascending, then id.
    open_items.sort_by(|a, b| {
        b.votes
            .cmp(&a.votes)
            .then(a.asked_at.cmp(&b.asked_at))
            .then(a.id.cmp(&b.id))
    });
    // Answered: most recently answered first, then id for a total order.
    answered_items.sort_by(|a, b| b.answered_at.cmp(&a.answered_at).then(a.id.cmp(&b.id)));
    let mut more = LeftOut {
        questions: 0,
        answered: 0,
    };
    if audience == Audience::Guest {
        more.questions = open_items.len().saturating_sub(GUEST_VIEW_QUESTIONS);
        more.answered = answered_items.len().saturating_sub(GUEST_VIEW_ANSWERED);
        open_items.truncate(GUEST_VIEW_QUESTIONS);
        answered_items.truncate(GUEST_VIEW_ANSWERED);
    }

    let head = EventHead {
        id: state.event,
        title: state.title(),
        open: state.is_open(),
    };
    // Serializing the parts of a derived struct cannot fail.
    let head = serde_json::to_string(&head).expect("view head serializes");
    let questions = serde_json::to_string(&open_items).expect("questions serialize");
    let answered = serde_json::to_string(&answered_items).expect("answered serialize");
    let more = serde_json::to_string(&more).expect("counts serialize");

    let mut hash = Sha256::new();
    for part in [&head, &questions, &answered, &more] {
        hash.update(part.as_bytes());
        hash.update(b"\0");
    }
    let mut version = hex_lower(&hash.finalize());
    version.truncate(16);

    let json = format!(r#"{{"event":{head},"version":"{version}","questions":{questions},"#)
        + &format!(r#""answered":{answered},"more":{more}}}"#);
    let json = json.into_bytes();
    RenderedView { json, version }
}

fn item(
    id: QuestionId,
    q: &QuestionState,
    asked_at: Millis,
    hidden: bool,
    audience: Audience,
) -> QuestionItem<'_> {
    QuestionItem {
        id,
        text: q.text().map_or("", |t| t.as_str()),
        author: q
            .asked
            .as_ref()
            .and_then(|a| a.author.as_ref())
            .map(|a| a.as_str()),
        votes: q.votes(),
        asked_at,
        answered_at: q.answered.as_ref().filter(|l| l.value).map(|l| l.at()),
        hidden: (audience == Audience::Host).then_some(hidden),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, RecordBody};

    #[test]
    fn the_created_view_is_what_folding_the_creation_record_renders() {
        let event = EventId::from_ulid(ulid::Ulid::from_parts(1_000, 7));
        let title = Title::parse("Town hall").unwrap();
        let creation = Record {
            id: RecordId::from_ulid(ulid::Ulid::from_parts(1_001, 9)),
            event,
            client: None,
            body: RecordBody::EventCreated {
                title: title.clone(),
            },
        };
        assert_eq!(
            render_created(event, &title),
            render(&EventState::fold(event, [&creation]))
        );
    }

    #[test]
    fn the_guest_view_lists_the_top_of_a_large_event_and_counts_the_rest() {
        use crate::ids::{VoterId, VoterToken};
        use crate::input::QuestionText;

        let event = EventId::from_ulid(ulid::Ulid::from_parts(1_000, 7));
        let record = |ms: u64, body: RecordBody| Record {
            id: RecordId::from_ulid(ulid::Ulid::from_parts(ms, 1)),
            event,
            client: None,
            body,
        };
        let asker = VoterId::derive(event, &VoterToken::parse("a-voter-token-0001").unwrap());
        let title = Title::parse("Big").unwrap();
        let mut records = vec![record(1_000, RecordBody::EventCreated { title })];
        let (open, answered) = (GUEST_VIEW_QUESTIONS + 3, GUEST_VIEW_ANSWERED + 2);
        let mut ids = Vec::new();
        for i in 0..open + answered {
            let question = QuestionId::from_ulid(ulid::Ulid::from_parts(2_000 + i as u64, 1));
            ids.push(question);
            records.push(record(
                2_000 + i as u64,
                RecordBody::QuestionAsked {
                    question,
                    asker,
                    text: QuestionText::parse(&format!("Question {i}")).unwrap(),
                    author: None,
                },
            ));
        }
        for (i, question) in ids[open..].iter().enumerate() {
            let body = RecordBody::Answered {
                question: *question,
                n: 1,
                value: true,
            };
            records.push(record(9_000 + i as u64, body));
        }
        // The last question asked gets a vote: it ranks first.
        let voter = VoterId::derive(event, &VoterToken::parse("a-voter-token-0002").unwrap());
        let body = RecordBody::Vote {
            question: ids[open - 1],
            voter,
            n: 1,
        };
        records.push(record(8_000, body));

        let views = render(&EventState::fold(event, &records));
        let json =
            |v: &RenderedView| -> serde_json::Value { serde_json::from_slice(&v.json).unwrap() };
        let (guest, host) = (json(&views.guest), json(&views.host));
        assert_eq!(
            guest["questions"].as_array().unwrap().len(),
            GUEST_VIEW_QUESTIONS
        );
        assert_eq!(
            guest["answered"].as_array().unwrap().len(),
            GUEST_VIEW_ANSWERED
        );
        assert_eq!(
            guest["more"],
            serde_json::json!({"questions": 3, "answered": 2})
        );
        assert_eq!(guest["questions"][0]["id"], ids[open - 1].to_string());
        assert_eq!(host["questions"].as_array().unwrap().len(), open);
        assert_eq!(host["answered"].as_array().unwrap().len(), answered);
        assert_eq!(
            host["more"],
            serde_json::json!({"questions": 0, "answered": 0})
        );
    }
}
