//! Rate limits, per voter per event: enough for any person, not for a
//! script. A limited request gets `429` with `Retry-After` and changes
//! nothing. Limits are per process (per Lambda instance on AWS), so they
//! stop floods from one client rather than enforce exact quotas.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use openfloor_domain::ids::{EventId, VoterId};

use crate::error::ApiError;

/// Asking: five at once, then one every 12 seconds.
const ASK_BURST: u32 = 5;
const ASKS_PER_MINUTE: u32 = 5;
/// Voting: sixty toggles at once (a burst through a list), then 20 a second.
const VOTE_BURST: u32 = 60;
const VOTES_PER_SECOND: u32 = 20;
/// Checks between sweeps of idle keys, bounding the limiters' memory.
const CHECKS_PER_CLEANUP: u64 = 10_000;

pub struct RateLimits {
    asks: DefaultKeyedRateLimiter<(EventId, VoterId)>,
    votes: DefaultKeyedRateLimiter<(EventId, VoterId)>,
    checks: AtomicU64,
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            asks: DefaultKeyedRateLimiter::keyed(
                Quota::per_minute(nonzero(ASKS_PER_MINUTE)).allow_burst(nonzero(ASK_BURST)),
            ),
            votes: DefaultKeyedRateLimiter::keyed(
                Quota::per_second(nonzero(VOTES_PER_SECOND)).allow_burst(nonzero(VOTE_BURST)),
            ),
            checks: AtomicU64::new(0),
        }
    }
}

impl RateLimits {
    pub fn ask(&self, event: EventId, voter: VoterId) -> Result<(), ApiError> {
        self.check(&self.asks, event, voter)
    }

    pub fn vote(&self, event: EventId, voter: VoterId) -> Result<(), ApiError> {
        self.check(&self.votes, event, voter)
    }

    fn check(
        &self,
        limiter: &DefaultKeyedRateLimiter<(EventId, VoterId)>,
        event: EventId,
        voter: VoterId,
    ) -> Result<(), ApiError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % CHECKS_PER_CLEANUP
            == CHECKS_PER_CLEANUP - 1
        {
            self.asks.retain_recent();
            self.votes.retain_recent();
        }
        limiter.check_key(&(event, voter)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited(wait.as_secs().max(1))
        })
    }
}
