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

    let head = EventHead {
        id: state.event,
        title: state.title(),
        open: state.is_open(),
    };
    // Serializing the parts of a derived struct cannot fail.
    let head = serde_json::to_string(&head).expect("view head serializes");
    let questions = serde_json::to_string(&open_items).expect("questions serialize");
    let answered = serde_json::to_string(&answered_items).expect("answered serialize");

    let mut hash = Sha256::new();
    for part in [&head, &questions, &answered] {
        hash.update(part.as_bytes());
        hash.update(b"\0");
    }
    let mut version = hex_lower(&hash.finalize());
    version.truncate(16);

    let json = format!(
        r#"{{"event":{head},"version":"{version}","questions":{questions},"answered":{answered}}}"#
    )
    .into_bytes();
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
}
