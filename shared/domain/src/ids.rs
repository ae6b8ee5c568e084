//! Identifiers. Event, question and record ids are ULIDs; a voter id is a
//! pseudonym derived from a token the voter holds.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;
use ulid::Ulid;

/// A string that should have been an id was not one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{what} must be a ULID (26 characters of Crockford base32)")]
pub struct MalformedId {
    pub what: &'static str,
}

macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Ulid);

        impl $name {
            /// Wraps an already-minted ULID.
            pub const fn from_ulid(ulid: Ulid) -> Self {
                Self(ulid)
            }

            /// The ULID inside.
            pub const fn ulid(self) -> Ulid {
                self.0
            }

            /// The millisecond timestamp the ULID was minted with.
            pub fn timestamp_ms(self) -> u64 {
                self.0.timestamp_ms()
            }
        }

        impl FromStr for $name {
            type Err = MalformedId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                // `Ulid::from_string` wraps values above 2^128 around instead
                // of refusing them; demand that the value writes back as the
                // same string (case aside: Crockford base32 ignores case).
                match Ulid::from_string(s) {
                    Ok(u) if u.to_string().eq_ignore_ascii_case(s) => Ok(Self(u)),
                    _ => Err(MalformedId { what: $what }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

ulid_id!(
    /// One Q&A session.
    EventId,
    "event id"
);
ulid_id!(
    /// One question of an event. Clients may mint it so that a retried ask
    /// is idempotent.
    QuestionId,
    "question id"
);
ulid_id!(
    /// One record. Minted when the record is first appended; its timestamp
    /// orders the audit timeline and the export, never correctness.
    RecordId,
    "record id"
);

/// A pseudonymous participant: derived from the voter's random token and
/// the event, so the token never appears in records and the same browser is
/// not linkable across events. 80 bits, kept as bytes so the fold can hash
/// and copy it cheaply; written as 20 lower-case hex characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VoterId([u8; VOTER_ID_BYTES]);

/// 80 bits: collisions between the voters of one event are out of reach.
const VOTER_ID_BYTES: usize = 10;

impl VoterId {
    /// Derives the voter id of `token` within `event`.
    pub fn derive(event: EventId, token: &VoterToken) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"openfloor voter v1\0");
        hash.update(event.to_string().as_bytes());
        hash.update(b"\0");
        hash.update(token.0.as_bytes());
        let digest = hash.finalize();
        let mut id = [0; VOTER_ID_BYTES];
        id.copy_from_slice(&digest[..VOTER_ID_BYTES]);
        Self(id)
    }

    /// The id's bytes (already a hash: spreading voters over chunks needs
    /// no other).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Accepts a written voter id (from a record): exactly 20 lower-case hex
    /// characters, so a key built from it never contains a separator.
    pub fn parse(s: &str) -> Result<Self, MalformedId> {
        // Bytes, not chars: any non-ASCII input is refused before it could be
        // sliced in the middle of a character.
        fn nibble(b: u8) -> Option<u8> {
            match b {
                b'0'..=b'9' => Some(b - b'0'),
                b'a'..=b'f' => Some(b - b'a' + 10),
                _ => None,
            }
        }
        let bytes = s.as_bytes();
        if bytes.len() != VOTER_ID_BYTES * 2 {
            return Err(MalformedId { what: "voter id" });
        }
        let mut id = [0; VOTER_ID_BYTES];
        for (i, byte) in id.iter_mut().enumerate() {
            match (nibble(bytes[i * 2]), nibble(bytes[i * 2 + 1])) {
                (Some(hi), Some(lo)) => *byte = hi << 4 | lo,
                _ => return Err(MalformedId { what: "voter id" }),
            }
        }
        Ok(Self(id))
    }
}

impl fmt::Display for VoterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for VoterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VoterId({self})")
    }
}

impl Serialize for VoterId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for VoterId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The random first-party token a browser (cookie) or API client
/// (`X-Voter`) holds. Never stored, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct VoterToken(String);

impl VoterToken {
    /// Shortest token accepted: 16 characters of 64 symbols is 96 bits.
    pub const MIN_LEN: usize = 16;
    /// Longest token accepted, to bound what we hash and store in cookies.
    pub const MAX_LEN: usize = 128;

    /// Mints a fresh token with 128 random bits.
    pub fn generate() -> Self {
        Self(hex_lower(&rand::random::<[u8; 16]>()))
    }

    /// Accepts a client-held token: 16–128 characters of `[A-Za-z0-9_-]`.
    pub fn parse(s: &str) -> Result<Self, MalformedId> {
        let ok_len = (Self::MIN_LEN..=Self::MAX_LEN).contains(&s.len());
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok_len && ok_chars {
            Ok(Self(s.to_owned()))
        } else {
            Err(MalformedId {
                what: "voter token",
            })
        }
    }

    /// The token, for the cookie that hands it back to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for VoterToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VoterToken(…)")
    }
}

/// Lower-case hex of `bytes`.
pub fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulid_ids_reject_malformed_strings() {
        assert!("01ARZ3NDEKTSV4RRFFQ69G5FAV".parse::<EventId>().is_ok());
        for bad in [
            "",
            "x",
            "01ARZ3NDEKTSV4RRFFQ69G5FA",
            "01ARZ3NDEKTSV4RRFFQ69G5FAVV",
            "81ARZ3NDEKTSV4RRFFQ69G5FAV",
            "01ARZ3NDEKTSV4RRFFQ69G5FA!",
        ] {
            assert!(bad.parse::<EventId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn voter_ids_differ_per_event_and_never_contain_the_token() {
        let token = VoterToken::parse("abcdefghijklmnopqrstuvwxyz").unwrap();
        let a = VoterId::derive(EventId::from_ulid(Ulid::from_parts(1, 1)), &token);
        let b = VoterId::derive(EventId::from_ulid(Ulid::from_parts(1, 2)), &token);
        assert_ne!(a, b);
        assert!(!a.to_string().contains("abcdef"));
        assert_eq!(VoterId::parse(&a.to_string()).unwrap(), a);
        assert!(VoterId::parse("ABCDEF0123456789abcd").is_err());
        // Twenty bytes with a two-byte character at an odd offset: refused,
        // not a panic.
        assert!(VoterId::parse("0é0123456789abcdef0").is_err());
        assert_eq!("0é0123456789abcdef0".len(), 20);
    }

    #[test]
    fn voter_tokens_are_bounded() {
        assert!(VoterToken::parse("short").is_err());
        assert!(VoterToken::parse(&"a".repeat(129)).is_err());
        assert!(VoterToken::parse("has space in it!!").is_err());
        assert!(VoterToken::parse(VoterToken::generate().expose()).is_ok());
    }
}
