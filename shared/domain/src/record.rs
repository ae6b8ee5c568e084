//! Records: the immutable entries of an event's log, and their keys.
//!
//! Every record has a deterministic [`RecordKey`] computed from its content,
//! so a retried write lands on the same key and is stored once. Changes that
//! can happen more than once (a vote, a host toggle) are numbered: the n-th
//! change of one *sequence* is its own record, and n is only written if n−1
//! exists. The fold can then take, per sequence, the value with the highest
//! n, which is exact in any order and with any duplicates.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{hex_lower, EventId, QuestionId, RecordId, VoterId};
use crate::input::{AuthorName, QuestionText, Title};
use crate::Millis;

/// The version of the record schema written in exports.
pub const RECORD_SCHEMA_VERSION: u32 = 1;

/// Whether the n-th toggle of a voter on a question is a vote (odd n) or a
/// withdrawal (even n). The one place this rule is written.
pub const fn is_vote(n: u32) -> bool {
    n % 2 == 1
}

/// One immutable entry of an event's log.
///
/// Written flat: `{"id", "event", "client"?, "kind", …fields of the kind}`.
/// Read through `WireRecord`, which parses the same JSON without serde's
/// buffering of flattened enums (replaying a million records is dominated
/// by this decode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireRecord")]
pub struct Record {
    /// Minted at first append; orders the audit timeline and the export.
    pub id: RecordId,
    pub event: EventId,
    /// A salted hash of the client's network address, for abuse audits.
    /// Never the address itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientHash>,
    #[serde(flatten)]
    pub body: RecordBody,
}

/// What happened. The tag is the record's `kind` in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordBody {
    /// The event was created. Its title never changes.
    EventCreated { title: Title },
    /// A guest asked a question. The question id may be client-minted.
    QuestionAsked {
        question: QuestionId,
        asker: VoterId,
        text: QuestionText,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        author: Option<AuthorName>,
    },
    /// The n-th toggle of `voter` on `question`: odd n votes, even n withdraws.
    Vote {
        question: QuestionId,
        voter: VoterId,
        n: u32,
    },
    /// The host set a question's answered flag (n-th change).
    Answered {
        question: QuestionId,
        n: u32,
        value: bool,
    },
    /// The host set a question's hidden flag (n-th change).
    Hidden {
        question: QuestionId,
        n: u32,
        value: bool,
    },
    /// The host corrected a question's text (n-th correction).
    TextCorrected {
        question: QuestionId,
        n: u32,
        text: QuestionText,
    },
    /// The host opened or closed the event to new questions (n-th change).
    Open { n: u32, value: bool },
}

/// The kinds of record, as the `kind` field names them.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    EventCreated,
    QuestionAsked,
    Vote,
    Answered,
    Hidden,
    TextCorrected,
    Open,
}

/// Every field any kind of record has; [`Record`] is built from it and
/// checks that the kind's fields are all there.
#[derive(Deserialize)]
struct WireRecord {
    id: RecordId,
    event: EventId,
    #[serde(default)]
    client: Option<ClientHash>,
    kind: Kind,
    #[serde(default)]
    title: Option<Title>,
    #[serde(default)]
    question: Option<QuestionId>,
    #[serde(default)]
    asker: Option<VoterId>,
    #[serde(default)]
    text: Option<QuestionText>,
    #[serde(default)]
    author: Option<AuthorName>,
    #[serde(default)]
    voter: Option<VoterId>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    value: Option<bool>,
}

impl TryFrom<WireRecord> for Record {
    type Error = String;

    fn try_from(w: WireRecord) -> Result<Self, Self::Error> {
        fn need<T>(field: Option<T>, name: &str, kind: Kind) -> Result<T, String> {
            field.ok_or_else(|| format!("a {kind:?} record needs `{name}`"))
        }
        let k = w.kind;
        let body = match k {
            Kind::EventCreated => RecordBody::EventCreated {
                title: need(w.title, "title", k)?,
            },
            Kind::QuestionAsked => RecordBody::QuestionAsked {
                question: need(w.question, "question", k)?,
                asker: need(w.asker, "asker", k)?,
                text: need(w.text, "text", k)?,
                author: w.author,
            },
            Kind::Vote => RecordBody::Vote {
                question: need(w.question, "question", k)?,
                voter: need(w.voter, "voter", k)?,
                n: need(w.n, "n", k)?,
            },
            Kind::Answered => RecordBody::Answered {
                question: need(w.question, "question", k)?,
                n: need(w.n, "n", k)?,
                value: need(w.value, "value", k)?,
            },
            Kind::Hidden => RecordBody::Hidden {
                question: need(w.question, "question", k)?,
                n: need(w.n, "n", k)?,
                value: need(w.value, "value", k)?,
            },
            Kind::TextCorrected => RecordBody::TextCorrected {
                question: need(w.question, "question", k)?,
                n: need(w.n, "n", k)?,
                text: need(w.text, "text", k)?,
            },
            Kind::Open => RecordBody::Open {
                n: need(w.n, "n", k)?,
                value: need(w.value, "value", k)?,
            },
        };
        Ok(Record {
            id: w.id,
            event: w.event,
            client: w.client,
            body,
        })
    }
}

/// Who did it, as far as the log knows: a pseudonymous voter, or the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Host,
    Voter(VoterId),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Host => f.write_str("host"),
            Actor::Voter(v) => write!(f, "voter:{v}"),
        }
    }
}

impl Record {
    /// When the record was first appended (its id's timestamp).
    pub fn at(&self) -> Millis {
        self.id.timestamp_ms()
    }

    /// The record's deterministic identity within its event.
    pub fn key(&self) -> RecordKey {
        match &self.body {
            RecordBody::EventCreated { .. } => RecordKey("E".to_owned()),
            RecordBody::QuestionAsked { question, .. } => RecordKey::question_asked(*question),
            RecordBody::Vote { n, .. }
            | RecordBody::Answered { n, .. }
            | RecordBody::Hidden { n, .. }
            | RecordBody::TextCorrected { n, .. }
            | RecordBody::Open { n, .. } => {
                let seq = self
                    .sequence()
                    .expect("numbered records belong to a sequence");
                seq.key(*n)
            }
        }
    }

    /// The sequence a numbered record belongs to.
    pub fn sequence(&self) -> Option<Sequence> {
        Some(match &self.body {
            RecordBody::EventCreated { .. } | RecordBody::QuestionAsked { .. } => return None,
            RecordBody::Vote {
                question, voter, ..
            } => Sequence::Vote {
                voter: *voter,
                question: *question,
            },
            RecordBody::Answered { question, .. } => Sequence::Answered(*question),
            RecordBody::Hidden { question, .. } => Sequence::Hidden(*question),
            RecordBody::TextCorrected { question, .. } => Sequence::Text(*question),
            RecordBody::Open { .. } => Sequence::Open,
        })
    }

    /// The position of a numbered record in its sequence.
    pub fn n(&self) -> Option<u32> {
        match &self.body {
            RecordBody::Vote { n, .. }
            | RecordBody::Answered { n, .. }
            | RecordBody::Hidden { n, .. }
            | RecordBody::TextCorrected { n, .. }
            | RecordBody::Open { n, .. } => Some(*n),
            _ => None,
        }
    }

    /// Who did it.
    pub fn actor(&self) -> Actor {
        match &self.body {
            RecordBody::QuestionAsked { asker, .. } => Actor::Voter(*asker),
            RecordBody::Vote { voter, .. } => Actor::Voter(*voter),
            _ => Actor::Host,
        }
    }

    /// The question a record is about, if any.
    pub fn question(&self) -> Option<QuestionId> {
        match &self.body {
            RecordBody::QuestionAsked { question, .. }
            | RecordBody::Vote { question, .. }
            | RecordBody::Answered { question, .. }
            | RecordBody::Hidden { question, .. }
            | RecordBody::TextCorrected { question, .. } => Some(*question),
            RecordBody::EventCreated { .. } | RecordBody::Open { .. } => None,
        }
    }

    /// Which of `shards` partitions the record is stored in (see
    /// [`RecordKey::shard`]).
    pub fn shard(&self, shards: u16) -> u16 {
        self.key().shard(self.event, shards)
    }

    /// Whether the record is internally consistent: numbered records start
    /// at 1 and the title/text obey their limits (guaranteed by the types).
    pub fn check(&self) -> Result<(), String> {
        match self.n() {
            Some(0) => Err(format!("record {}: sequence numbers start at 1", self.id)),
            Some(MAX_SEQUENCE_NUMBER..) => Err(format!(
                "record {}: sequence number {} leaves no room for the next change \
                 (at most {})",
                self.id,
                self.n().unwrap_or_default(),
                MAX_SEQUENCE_NUMBER - 1
            )),
            _ => Ok(()),
        }
    }
}

/// The first sequence number that is never used: the service stops a
/// sequence one short of it (a 409 `sequence_exhausted`), so that every
/// stored number has room for a next one and no arithmetic can wrap.
pub const MAX_SEQUENCE_NUMBER: u32 = u32::MAX;

/// A record's deterministic identity within its event. Keys of one sequence
/// share a prefix and sort by n, so "the latest of a sequence" is the last
/// key under the prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordKey(String);

impl RecordKey {
    /// The key of a question's `question_asked` record.
    pub fn question_asked(question: QuestionId) -> Self {
        Self(format!("Q#{question}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Which of `shards` partitions this key lives in. Derived from the key
    /// alone, so a point read knows where to look: a voter's votes share a
    /// shard (one query finds "this voter's latest toggle on this
    /// question"), a question's records share one, event-wide records use
    /// the event's.
    pub fn shard(&self, event: EventId, shards: u16) -> u16 {
        let key = self.0.as_str();
        let basis = match key.as_bytes().first() {
            Some(b'V' | b'Q' | b'A' | b'H' | b'T') => {
                key.get(2..).and_then(|rest| rest.split('#').next())
            }
            _ => None,
        };
        match basis {
            Some(basis) if !basis.is_empty() => shard_of(basis.as_bytes(), shards),
            _ => shard_of(event.to_string().as_bytes(), shards),
        }
    }

    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A numbered series of changes to one thing; the highest n wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sequence {
    Vote {
        voter: VoterId,
        question: QuestionId,
    },
    Answered(QuestionId),
    Hidden(QuestionId),
    Text(QuestionId),
    Open,
}

impl Sequence {
    /// The key prefix every record of this sequence shares.
    pub fn prefix(&self) -> String {
        match self {
            Sequence::Vote { voter, question } => format!("V#{voter}#{question}#"),
            Sequence::Answered(q) => format!("A#{q}#"),
            Sequence::Hidden(q) => format!("H#{q}#"),
            Sequence::Text(q) => format!("T#{q}#"),
            Sequence::Open => "O#".to_owned(),
        }
    }

    /// The key of the n-th record. n is zero-padded so keys sort by n.
    pub fn key(&self, n: u32) -> RecordKey {
        RecordKey(format!("{}{n:08x}", self.prefix()))
    }

    /// The shard all records of this sequence live in.
    pub fn shard(&self, event: EventId, shards: u16) -> u16 {
        RecordKey(self.prefix()).shard(event, shards)
    }
}

/// A stable shard number for `basis`: FNV-1a (64 bit), which never changes
/// between builds or machines, unlike `std`'s randomly seeded hasher. Records
/// written years ago must be found in the same shard today.
pub fn shard_of(basis: &[u8], shards: u16) -> u16 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = basis
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME));
    (hash % u64::from(shards.max(1))) as u16
}

/// A salted hash of a client's network address within one event: lets an
/// audit see that many voters came from one place, without the address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientHash(String);

impl ClientHash {
    pub fn derive(salt: &[u8], event: EventId, address: &str) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"openfloor client v1\0");
        hash.update(salt);
        hash.update(b"\0");
        hash.update(event.to_string().as_bytes());
        hash.update(b"\0");
        hash.update(address.as_bytes());
        let mut hex = hex_lower(&hash.finalize());
        hex.truncate(16);
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ulid::Ulid;

    fn eid() -> EventId {
        EventId::from_ulid(Ulid::from_parts(1_700_000_000_000, 7))
    }

    #[test]
    fn a_record_must_leave_its_sequence_room_for_a_next_number() {
        let hidden = |n| Record {
            id: RecordId::from_ulid(Ulid::from_parts(1_700_000_000_001, 1)),
            event: eid(),
            client: None,
            body: RecordBody::Hidden {
                question: QuestionId::from_ulid(Ulid::from_parts(1, 1)),
                n,
                value: true,
            },
        };
        assert!(hidden(0).check().is_err());
        assert!(hidden(1).check().is_ok());
        assert!(hidden(MAX_SEQUENCE_NUMBER - 1).check().is_ok());
        let refused = hidden(MAX_SEQUENCE_NUMBER).check().unwrap_err();
        assert!(refused.contains("leaves no room"), "{refused}");
    }

    #[test]
    fn keys_of_a_sequence_sort_by_n() {
        let q = QuestionId::from_ulid(Ulid::from_parts(1, 1));
        let seq = Sequence::Hidden(q);
        assert!(seq.key(9) < seq.key(10));
        assert!(seq.key(0xff) < seq.key(0x100));
        assert!(seq.key(1).as_str().starts_with(&seq.prefix()));
    }

    #[test]
    fn a_sequence_and_all_its_records_share_a_shard() {
        let q = QuestionId::from_ulid(Ulid::from_parts(1, 1));
        let v = VoterId::parse("0123456789abcdef0123").unwrap();
        for seq in [
            Sequence::Vote {
                voter: v,
                question: q,
            },
            Sequence::Answered(q),
            Sequence::Hidden(q),
            Sequence::Text(q),
            Sequence::Open,
        ] {
            for n in [1, 2, 300] {
                assert_eq!(seq.key(n).shard(eid(), 16), seq.shard(eid(), 16), "{seq:?}");
            }
        }
        assert_eq!(
            RecordKey::question_asked(q).shard(eid(), 16),
            Sequence::Hidden(q).shard(eid(), 16)
        );
        // Votes spread by voter, not by question.
        let spread: std::collections::HashSet<u16> = (0..64u32)
            .map(|i| {
                Sequence::Vote {
                    voter: VoterId::parse(&format!("{i:020x}")).unwrap(),
                    question: q,
                }
                .shard(eid(), 8)
            })
            .collect();
        assert!(spread.len() > 4, "{spread:?}");
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        // Pinned values: changing the hash would strand stored records.
        assert_eq!(shard_of(b"", 8), (0xcbf2_9ce4_8422_2325u64 % 8) as u16);
        assert_eq!(shard_of(b"a", 1), 0);
        for s in 0..100u32 {
            assert!(shard_of(s.to_string().as_bytes(), 7) < 7);
        }
        assert_eq!(shard_of(b"x", 0), 0, "zero shards is treated as one");
    }

    #[test]
    fn records_round_trip_through_json_and_validate_on_the_way_in() {
        let record = Record {
            id: RecordId::from_ulid(Ulid::from_parts(1_700_000_000_001, 1)),
            event: eid(),
            client: None,
            body: RecordBody::QuestionAsked {
                question: QuestionId::from_ulid(Ulid::from_parts(1, 2)),
                asker: VoterId::parse("0123456789abcdef0123").unwrap(),
                text: QuestionText::parse("why?").unwrap(),
                author: None,
            },
        };
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains(r#""kind":"question_asked""#), "{json}");
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), record);
        let too_long = json.replace("why?", &"x".repeat(1001));
        assert!(serde_json::from_str::<Record>(&too_long).is_err());
        let missing = json.replace(r#","text":"why?""#, "");
        let err = serde_json::from_str::<Record>(&missing)
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs `text`"), "{err}");
        let unknown_kind = json.replace("question_asked", "question_deleted");
        assert!(serde_json::from_str::<Record>(&unknown_kind).is_err());
    }
}
