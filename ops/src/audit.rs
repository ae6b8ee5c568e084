//! The audit trail: who (pseudonym) did what, when, with from/to for every
//! change; vote timelines per question; simple abuse signals. Records carry
//! no tokens, secrets or addresses, so neither can the audit.

use std::collections::{BTreeMap, HashMap, HashSet};

use openfloor_domain::fold::{EventState, QuestionState};
use openfloor_domain::ids::{QuestionId, RecordId};
use openfloor_domain::record::{is_vote, Record, RecordBody};
use openfloor_domain::Millis;
use serde::Serialize;
use serde_json::{json, Value};

use crate::replay::format_time;

/// When many pseudonymous voters appear from one client-address hash within
/// a short window, it may be one person with many browsers.
#[derive(Debug, Clone, Copy)]
pub struct SignalRules {
    pub window_ms: Millis,
    /// Distinct voters within the window from one address hash that raise
    /// a signal.
    pub voters_per_client: usize,
}

impl Default for SignalRules {
    fn default() -> Self {
        Self {
            window_ms: 10 * 60 * 1000,
            voters_per_client: 20,
        }
    }
}

/// One step of the timeline.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub record: RecordId,
    pub at: Millis,
    pub time: String,
    pub actor: String,
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub question: Option<QuestionId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// The whole audit of one event.
#[derive(Debug, Serialize)]
pub struct Audit {
    pub timeline: Vec<Entry>,
    /// Per question: (time, vote count after that record).
    pub vote_timelines: BTreeMap<QuestionId, Vec<(Millis, u64)>>,
    pub signals: Vec<Value>,
}

pub fn audit(records: &[Record], rules: SignalRules) -> Audit {
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by_key(|r| r.id);

    // Values by (sequence prefix, n), to find each change's predecessor
    // whatever order the records arrived in.
    let mut values: HashMap<(String, u32), Value> = HashMap::new();
    let mut asked_text: HashMap<QuestionId, Value> = HashMap::new();
    for r in &sorted {
        if let (Some(seq), Some(n)) = (r.sequence(), r.n()) {
            values.insert((seq.prefix(), n), change_value(&r.body));
        }
        if let RecordBody::QuestionAsked { question, text, .. } = &r.body {
            asked_text.insert(*question, json!(text.as_str()));
        }
    }

    let mut timeline = Vec::with_capacity(sorted.len());
    // The event as of each record, by the fold itself: the vote counts in
    // the timelines are exactly those the views showed at that moment.
    let mut state = records.first().map(|r| EventState::new(r.event));
    let mut vote_timelines: BTreeMap<QuestionId, Vec<(Millis, u64)>> = BTreeMap::new();
    for r in &sorted {
        if let Some(state) = &mut state {
            state.apply(r);
        }
        let previous = match (r.sequence(), r.n()) {
            (Some(seq), Some(n)) if n > 1 => values.get(&(seq.prefix(), n - 1)).cloned(),
            _ => None,
        };
        let (action, from, to) = match &r.body {
            RecordBody::EventCreated { title } => {
                ("event_created", None, Some(json!(title.as_str())))
            }
            RecordBody::QuestionAsked { text, author, .. } => (
                "asked",
                None,
                Some(json!({"text": text.as_str(), "author": author.as_ref().map(|a| a.as_str())})),
            ),
            RecordBody::Vote { question, n, .. } => {
                let count = state
                    .as_ref()
                    .and_then(|s| s.question(*question))
                    .map_or(0, QuestionState::votes);
                vote_timelines
                    .entry(*question)
                    .or_default()
                    .push((r.at(), count));
                let action = if is_vote(*n) { "vote" } else { "withdraw_vote" };
                (action, None, None)
            }
            RecordBody::Answered { value, .. } => (
                "answered",
                Some(previous.unwrap_or(json!(false))),
                Some(json!(value)),
            ),
            RecordBody::Hidden { value, .. } => (
                "hidden",
                Some(previous.unwrap_or(json!(false))),
                Some(json!(value)),
            ),
            RecordBody::TextCorrected { question, text, .. } => (
                "text_corrected",
                Some(
                    previous
                        .or_else(|| asked_text.get(question).cloned())
                        .unwrap_or(Value::Null),
                ),
                Some(json!(text.as_str())),
            ),
            RecordBody::Open { value, .. } => (
                "open",
                Some(previous.unwrap_or(json!(true))),
                Some(json!(value)),
            ),
        };
        timeline.push(Entry {
            record: r.id,
            at: r.at(),
            time: format_time(r.at()),
            actor: r.actor().to_string(),
            action,
            question: r.question(),
            from,
            to,
            client: r.client.as_ref().map(|c| c.as_str().to_owned()),
        });
    }

    Audit {
        signals: signals(&sorted, rules),
        timeline,
        vote_timelines,
    }
}

fn change_value(body: &RecordBody) -> Value {
    match body {
        RecordBody::Answered { value, .. }
        | RecordBody::Hidden { value, .. }
        | RecordBody::Open { value, .. } => json!(value),
        RecordBody::TextCorrected { text, .. } => json!(text.as_str()),
        RecordBody::Vote { n, .. } => json!(is_vote(*n)),
        _ => Value::Null,
    }
}

/// Many voters from one client-address hash in a sliding window.
fn signals(sorted: &[&Record], rules: SignalRules) -> Vec<Value> {
    let mut by_client: BTreeMap<&str, Vec<(Millis, String)>> = BTreeMap::new();
    for r in sorted {
        if let Some(client) = &r.client {
            by_client
                .entry(client.as_str())
                .or_default()
                .push((r.at(), r.actor().to_string()));
        }
    }
    let mut out = Vec::new();
    for (client, seen) in by_client {
        // Slide a window over this client's records (already time-ordered);
        // report the window with the most distinct voters, once.
        let mut best: Option<(usize, Millis, Millis)> = None;
        let mut start = 0;
        for end in 0..seen.len() {
            while seen[end].0 - seen[start].0 > rules.window_ms {
                start += 1;
            }
            let voters: HashSet<&str> = seen[start..=end].iter().map(|(_, a)| a.as_str()).collect();
            if voters.len() >= rules.voters_per_client
                && best.is_none_or(|(b, _, _)| voters.len() > b)
            {
                best = Some((voters.len(), seen[start].0, seen[end].0));
            }
        }
        if let Some((voters, from, to)) = best {
            out.push(json!({
                "signal": "many_voters_one_client",
                "client": client,
                "voters": voters,
                "from": format_time(from),
                "to": format_time(to),
            }));
        }
    }
    out
}

/// The audit as readable text.
pub fn render_text(audit: &Audit, out: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(out, "Timeline ({} records)", audit.timeline.len());
    for e in &audit.timeline {
        let q = e
            .question
            .map(|q| format!(" question {q}"))
            .unwrap_or_default();
        let change = match (&e.from, &e.to) {
            (Some(f), Some(t)) => format!(": {f} -> {t}"),
            (None, Some(t)) => format!(": {t}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{}  {}  {:<30} {}{q}{change}",
            e.time, e.record, e.actor, e.action
        );
    }
    let _ = writeln!(out, "\nVotes per question over time");
    for (q, points) in &audit.vote_timelines {
        let last = points.last().map_or(0, |p| p.1);
        let steps: Vec<String> = points
            .iter()
            .map(|(t, c)| format!("{} {c}", format_time(*t)))
            .collect();
        let _ = writeln!(out, "question {q}: {last} now; {}", steps.join(", "));
    }
    let _ = writeln!(out, "\nAbuse signals");
    if audit.signals.is_empty() {
        let _ = writeln!(out, "none");
    }
    for s in &audit.signals {
        let _ = writeln!(
            out,
            "{} voters from one client (address hash {}) between {} and {}",
            s["voters"],
            s["client"].as_str().unwrap_or("?"),
            s["from"].as_str().unwrap_or("?"),
            s["to"].as_str().unwrap_or("?")
        );
    }
}

/// The audit as JSON lines: one `{"type":"record",…}` per timeline entry,
/// then `{"type":"vote_timeline",…}` per question and `{"type":"signal",…}`.
pub fn render_json_lines(audit: &Audit, out: &mut String) {
    for e in &audit.timeline {
        let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
        v["type"] = json!("record");
        out.push_str(&v.to_string());
        out.push('\n');
    }
    for (q, points) in &audit.vote_timelines {
        out.push_str(
            &json!({"type": "vote_timeline", "question": q, "points": points}).to_string(),
        );
        out.push('\n');
    }
    for s in &audit.signals {
        let mut s = s.clone();
        s["type"] = json!("signal");
        out.push_str(&s.to_string());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use openfloor_domain::ids::{EventId, VoterId};
    use openfloor_domain::record::ClientHash;
    use ulid::Ulid;

    use super::*;

    fn votes_from_one_client(count: u64, spacing_ms: u64) -> Vec<Record> {
        let event = EventId::from_ulid(Ulid::from_parts(1_790_000_000_000, 1));
        let client = ClientHash::derive(b"salt", event, "198.51.100.4");
        (0..count)
            .map(|i| Record {
                id: RecordId::from_ulid(Ulid::from_parts(
                    1_790_000_000_000 + i * spacing_ms,
                    u128::from(i),
                )),
                event,
                client: Some(client.clone()),
                body: RecordBody::Vote {
                    question: QuestionId::from_ulid(Ulid::from_parts(1, 1)),
                    voter: VoterId::parse(&format!("{i:020x}")).unwrap(),
                    n: 1,
                },
            })
            .collect()
    }

    #[test]
    fn many_voters_behind_one_address_raise_one_signal() {
        let rules = SignalRules::default();
        let burst = audit(&votes_from_one_client(25, 1_000), rules);
        assert_eq!(burst.signals.len(), 1, "{:?}", burst.signals);
        assert_eq!(burst.signals[0]["voters"], 25);
        assert!(
            !burst.signals[0].to_string().contains("198.51.100.4"),
            "never the address"
        );
        // The same voters spread over hours are not a burst.
        let spread = audit(&votes_from_one_client(25, 30 * 60 * 1000), rules);
        assert!(spread.signals.is_empty(), "{:?}", spread.signals);
        // Below the threshold, nothing.
        assert!(audit(&votes_from_one_client(19, 1_000), rules)
            .signals
            .is_empty());
    }

    #[test]
    fn the_vote_timeline_follows_votes_and_withdrawals() {
        let mut records = votes_from_one_client(3, 1_000);
        let withdraw = Record {
            id: RecordId::from_ulid(Ulid::from_parts(1_790_000_100_000, 9)),
            event: records[0].event,
            client: None,
            body: RecordBody::Vote {
                question: QuestionId::from_ulid(Ulid::from_parts(1, 1)),
                voter: VoterId::parse(&format!("{:020x}", 0)).unwrap(),
                n: 2,
            },
        };
        records.push(withdraw);
        let a = audit(&records, SignalRules::default());
        let counts: Vec<u64> = a
            .vote_timelines
            .values()
            .next()
            .unwrap()
            .iter()
            .map(|(_, c)| *c)
            .collect();
        assert_eq!(counts, [1, 2, 3, 2]);
        assert_eq!(a.timeline.last().unwrap().action, "withdraw_vote");
    }
}
