//! Rate limits: enough for any person, and for a room full of people
//! behind one address, not for a script. A limited request gets `429` with
//! `Retry-After` and changes nothing.
//!
//! Two kinds, because a voter token costs nothing to make:
//! - per voter per event, so one person cannot flood an event;
//! - per client address ([`crate::client_address`]), across tokens, so a
//!   script that makes a new token for each request is held too: events
//!   created, questions asked, new voters, and votes in one event.
//!
//! Limits are per process (per Lambda instance on AWS), so they stop floods
//! from one client rather than enforce exact quotas. Their memory is
//! bounded: idle keys are swept, and the voters seen are a bounded cache.

use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use moka::sync::Cache;
use openfloor_domain::ids::{EventId, VoterId};

use crate::client_address::limit_key;
use crate::error::ApiError;

/// How much each client may do. The defaults are documented in API.md
/// ("Rate limits") and the README; tests use smaller ones.
#[derive(Debug, Clone, Copy)]
pub struct Quotas {
    /// Questions per voter per event: five at once, then one every 12 s.
    pub asks_per_voter: Quota,
    /// Votes per voter per event: sixty toggles at once (a burst through a
    /// list), then 20 a second.
    pub votes_per_voter: Quota,
    /// Events created per address: a host trying things out, not a farm.
    pub events_per_address: Quota,
    /// Questions per address, across events: a busy room behind one
    /// address asks far less than one a second.
    pub asks_per_address: Quota,
    /// New voters per address, across events (a voter id is per event, so
    /// a person is new once in each): a room of hundreds joining behind one
    /// address, not a token per request.
    pub new_voters_per_address: Quota,
    /// Votes per address per event: a room of hundreds voting, not one
    /// client casting thousands.
    pub votes_per_address: Quota,
    /// Whether the per-address quotas apply at all. Off only where every
    /// request comes from one trusted address: a load test on loopback.
    pub by_address: bool,
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// `burst` at once, then one more each `every`.
pub fn quota(burst: u32, every: std::time::Duration) -> Quota {
    Quota::with_period(every)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(nonzero(burst))
}

impl Default for Quotas {
    fn default() -> Self {
        use std::time::Duration;
        Self {
            asks_per_voter: quota(5, Duration::from_secs(12)),
            votes_per_voter: quota(60, Duration::from_millis(50)),
            events_per_address: quota(20, Duration::from_secs(60)),
            asks_per_address: quota(60, Duration::from_secs(1)),
            new_voters_per_address: quota(300, Duration::from_millis(200)),
            votes_per_address: quota(1000, Duration::from_millis(20)),
            by_address: true,
        }
    }
}

/// Checks between sweeps of idle keys, bounding the limiters' memory.
const CHECKS_PER_CLEANUP: u64 = 10_000;

/// A client address as a limiter key: hashed with this process's random
/// key, so the limiters hold no addresses (and no one can aim collisions).
type AddressKey = u64;

pub struct RateLimits {
    asks_per_voter: DefaultKeyedRateLimiter<(EventId, VoterId)>,
    votes_per_voter: DefaultKeyedRateLimiter<(EventId, VoterId)>,
    by_address: bool,
    events_per_address: DefaultKeyedRateLimiter<AddressKey>,
    asks_per_address: DefaultKeyedRateLimiter<AddressKey>,
    new_voters_per_address: DefaultKeyedRateLimiter<AddressKey>,
    votes_per_address: DefaultKeyedRateLimiter<(EventId, AddressKey)>,
    /// Voters that have written from an address lately: a voter not in it
    /// counts as new to [`Quotas::new_voters_per_address`].
    voters_seen: Cache<(AddressKey, VoterId), ()>,
    hasher: std::hash::RandomState,
    checks: AtomicU64,
}

impl RateLimits {
    /// Limits by `quotas`, remembering up to `voters_seen` voters (about
    /// 100 bytes each).
    pub fn new(quotas: Quotas, voters_seen: u64) -> Self {
        Self {
            asks_per_voter: DefaultKeyedRateLimiter::keyed(quotas.asks_per_voter),
            votes_per_voter: DefaultKeyedRateLimiter::keyed(quotas.votes_per_voter),
            by_address: quotas.by_address,
            events_per_address: DefaultKeyedRateLimiter::keyed(quotas.events_per_address),
            asks_per_address: DefaultKeyedRateLimiter::keyed(quotas.asks_per_address),
            new_voters_per_address: DefaultKeyedRateLimiter::keyed(quotas.new_voters_per_address),
            votes_per_address: DefaultKeyedRateLimiter::keyed(quotas.votes_per_address),
            voters_seen: Cache::new(voters_seen),
            hasher: std::hash::RandomState::new(),
            checks: AtomicU64::new(0),
        }
    }

    /// Creating an event from `address` (unknown: not limited by address).
    pub fn create_event(&self, address: Option<IpAddr>) -> Result<(), ApiError> {
        self.sweep_now_and_then();
        match self.of(address) {
            Some(key) => check(&self.events_per_address, &key),
            None => Ok(()),
        }
    }

    /// Asking in `event`, as `voter`, from `address`.
    pub fn ask(
        &self,
        event: EventId,
        voter: VoterId,
        address: Option<IpAddr>,
    ) -> Result<(), ApiError> {
        self.sweep_now_and_then();
        check(&self.asks_per_voter, &(event, voter))?;
        if let Some(key) = self.of(address) {
            // The address's own quota first: a request it refuses must not
            // use up the address's new voters.
            check(&self.asks_per_address, &key)?;
            self.voter_from(key, voter)?;
        }
        Ok(())
    }

    /// Voting in `event`, as `voter`, from `address`.
    pub fn vote(
        &self,
        event: EventId,
        voter: VoterId,
        address: Option<IpAddr>,
    ) -> Result<(), ApiError> {
        self.sweep_now_and_then();
        check(&self.votes_per_voter, &(event, voter))?;
        if let Some(key) = self.of(address) {
            check(&self.votes_per_address, &(event, key))?;
            self.voter_from(key, voter)?;
        }
        Ok(())
    }

    /// Counts `voter` against its address's new voters, unless it wrote
    /// from there lately. (A voter id is per event, so a person is new once
    /// in each event.)
    fn voter_from(&self, key: AddressKey, voter: VoterId) -> Result<(), ApiError> {
        if self.voters_seen.contains_key(&(key, voter)) {
            return Ok(());
        }
        check(&self.new_voters_per_address, &key)?;
        self.voters_seen.insert((key, voter), ());
        Ok(())
    }

    /// The limiter key of `address`; `None` where addresses are not
    /// limited (unknown, or switched off).
    fn of(&self, address: Option<IpAddr>) -> Option<AddressKey> {
        let address = address.filter(|_| self.by_address)?;
        Some(self.hasher.hash_one(limit_key(address)))
    }

    fn sweep_now_and_then(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % CHECKS_PER_CLEANUP
            == CHECKS_PER_CLEANUP - 1
        {
            self.asks_per_voter.retain_recent();
            self.votes_per_voter.retain_recent();
            self.events_per_address.retain_recent();
            self.asks_per_address.retain_recent();
            self.new_voters_per_address.retain_recent();
            self.votes_per_address.retain_recent();
        }
    }
}

fn check<K: Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), ApiError> {
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::RateLimited(wait.as_secs().max(1))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use openfloor_domain::ids::VoterToken;

    use super::*;

    fn voter(event: EventId, i: usize) -> VoterId {
        VoterId::derive(
            event,
            &VoterToken::parse(&format!("token-of-voter-{i:06}")).unwrap(),
        )
    }

    fn strict() -> Quotas {
        let hour = Duration::from_secs(3600);
        Quotas {
            asks_per_voter: quota(1000, hour),
            votes_per_voter: quota(1000, hour),
            events_per_address: quota(3, hour),
            asks_per_address: quota(4, hour),
            new_voters_per_address: quota(5, hour),
            votes_per_address: quota(8, hour),
            by_address: true,
        }
    }

    #[test]
    fn a_new_token_per_request_does_not_escape_the_address_limits() {
        let limits = RateLimits::new(strict(), 1000);
        let event = EventId::from_ulid(ulid::Ulid::new());
        let script: IpAddr = "203.0.113.7".parse().unwrap();
        let allowed = (0..50)
            .filter(|i| limits.vote(event, voter(event, *i), Some(script)).is_ok())
            .count();
        assert_eq!(allowed, 5, "five new voters, then the address is held");
        // Another address is not held by this one.
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(limits.vote(event, voter(event, 99), Some(other)).is_ok());
    }

    #[test]
    fn a_known_voter_is_limited_by_the_address_votes_not_as_new() {
        let limits = RateLimits::new(strict(), 1000);
        let event = EventId::from_ulid(ulid::Ulid::new());
        let room: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let neighbour: IpAddr = "2001:db8:0:1::2".parse().unwrap();
        // Two voters of one /64 vote eight times between them.
        let allowed = (0..20)
            .filter(|i| {
                let address = if i % 2 == 0 { room } else { neighbour };
                limits
                    .vote(event, voter(event, i % 2), Some(address))
                    .is_ok()
            })
            .count();
        assert_eq!(allowed, 8);
        // Another event's votes are counted apart.
        let elsewhere = EventId::from_ulid(ulid::Ulid::new());
        assert!(limits
            .vote(elsewhere, voter(elsewhere, 0), Some(room))
            .is_ok());
    }

    #[test]
    fn events_and_asks_are_limited_per_address() {
        let limits = RateLimits::new(strict(), 1000);
        let host: IpAddr = "192.0.2.1".parse().unwrap();
        let created = (0..10)
            .filter(|_| limits.create_event(Some(host)).is_ok())
            .count();
        assert_eq!(created, 3);
        let event = EventId::from_ulid(ulid::Ulid::new());
        let asked = (0..10)
            .filter(|_| limits.ask(event, voter(event, 0), Some(host)).is_ok())
            .count();
        assert_eq!(asked, 4);
        // Unknown addresses (no connection seen) are held per voter only.
        assert!(limits.create_event(None).is_ok());
    }
}
