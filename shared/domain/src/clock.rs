//! The one clock. Everything that needs "now" (minting record ids, expiry,
//! sweeps, purges) takes an `Arc<dyn Clock>`, so tests can move time and
//! every entry point (server, Lambdas, operator tools) reads time the same
//! way. [`SystemClock`] is the only implementation that reads the OS clock.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::Millis;

/// A source of the current time.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;

    /// Milliseconds since the Unix epoch (0 before it, saturating far after).
    fn now_ms(&self) -> Millis {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
