//! Test data: an event's directory entry with defaults, ids from small
//! numbers, and records.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openfloor_domain::ids::{EventId, RecordId, VoterId};
use openfloor_domain::input::Title;
use openfloor_domain::record::{Record, RecordBody};
use openfloor_domain::secret::HostSecret;
use openfloor_domain::Millis;
use openfloor_store::EventMeta;
use ulid::Ulid;

/// A directory entry for event `id`, built from defaults a test overrides
/// where it matters: title `t`, region `local`, one shard, created at 0,
/// never expiring, and the hash of a fresh host secret.
pub fn event_meta(id: EventId) -> EventMetaBuilder {
    EventMetaBuilder(EventMeta {
        id,
        title: parse_title("t"),
        region: "local".into(),
        shards: 1,
        secret_hash: HostSecret::generate().hash(),
        created_at: 0,
        expires_at: Millis::MAX,
    })
}

/// Builds an [`EventMeta`]; see [`event_meta`].
#[must_use]
pub struct EventMetaBuilder(EventMeta);

impl EventMetaBuilder {
    /// Panics unless `title` is a valid title.
    pub fn title(mut self, title: &str) -> Self {
        self.0.title = parse_title(title);
        self
    }

    pub fn region(mut self, region: &str) -> Self {
        self.0.region = region.into();
        self
    }

    pub fn shards(mut self, shards: u16) -> Self {
        self.0.shards = shards;
        self
    }

    pub fn created_at(mut self, at: Millis) -> Self {
        self.0.created_at = at;
        self
    }

    pub fn expires_at(mut self, at: Millis) -> Self {
        self.0.expires_at = at;
        self
    }

    /// Created now (the system clock), expiring `lifetime` later.
    pub fn live_for(self, lifetime: Duration) -> Self {
        let now = now_ms();
        let lifetime = Millis::try_from(lifetime.as_millis()).expect("a lifetime in range");
        self.created_at(now).expires_at(now + lifetime)
    }

    pub fn build(self) -> EventMeta {
        self.0
    }
}

/// The system clock in milliseconds since the Unix epoch.
pub fn now_ms() -> Millis {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    Millis::try_from(since.as_millis()).expect("the clock is in range")
}

/// A distinct voter per `n` (its id is `n` in 20 hex digits).
pub fn voter_id(n: u64) -> VoterId {
    VoterId::parse(&format!("{n:020x}")).expect("20 hex digits are a voter id")
}

/// A record of `event` with id `id`, sent by no client in particular.
pub fn record(event: EventId, id: Ulid, body: RecordBody) -> Record {
    Record {
        id: RecordId::from_ulid(id),
        event,
        client: None,
        body,
    }
}

fn parse_title(raw: &str) -> Title {
    Title::parse(raw).unwrap_or_else(|e| panic!("{raw:?} is not a title: {e}"))
}
