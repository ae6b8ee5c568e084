//! What every handler shares: the store (for reads), the command executor
//! (for every change), the settings and the clock.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openfloor_commands::Executor;
use openfloor_domain::clock::Clock;
use openfloor_domain::ids::EventId;
use openfloor_store::{EventMeta, Store, Trigger};

use crate::error::ApiError;

/// Settings of the API, fixed at start.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// This deployment's region name; new events live here.
    pub region: String,
    /// How long an event (and its records) lives.
    pub retention: Duration,
    /// How many partitions a new event's records are spread over.
    pub shards: u16,
    /// Salt for hashing client addresses into records.
    pub client_salt: Vec<u8>,
    /// Take the client address from `X-Forwarded-For` (behind a proxy or
    /// CDN that sets it); otherwise from the connection.
    pub trust_forwarded_for: bool,
    /// Other regions' API base URLs, by region name. Requests for an event
    /// homed elsewhere are redirected there. Empty: a single region.
    pub region_urls: std::collections::HashMap<String, String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            region: "local".into(),
            retention: Duration::from_secs(30 * 24 * 3600),
            shards: 1,
            client_salt: b"openfloor".to_vec(),
            trust_forwarded_for: false,
            region_urls: std::collections::HashMap::new(),
        }
    }
}

/// Shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    /// For reads; every change goes through [`AppState::executor`].
    pub store: Store,
    pub executor: Arc<Executor>,
    pub config: Arc<ApiConfig>,
    pub clock: Arc<dyn Clock>,
    inner: Arc<Shared>,
}

struct Shared {
    limits: crate::limits::RateLimits,
    /// Directory entries are written once, so a found one can be kept.
    /// (Misses are not kept: on AWS a new event may not have replicated yet.)
    events: RwLock<HashMap<EventId, Arc<EventMeta>>>,
}

impl AppState {
    pub fn new(
        store: Store,
        trigger: Arc<dyn Trigger>,
        config: ApiConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            executor: Arc::new(Executor::new(store.clone(), trigger, clock.clone())),
            store,
            config: Arc::new(config),
            clock,
            inner: Arc::new(Shared {
                limits: crate::limits::RateLimits::default(),
                events: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// A fresh, time-ordered ULID (for a question id the client left out).
    pub fn mint(&self) -> ulid::Ulid {
        self.executor.mint()
    }

    pub fn limits(&self) -> &crate::limits::RateLimits {
        &self.inner.limits
    }

    /// The live (unexpired) event, or 404. Shared, not copied: every
    /// request looks its event up.
    pub async fn event(&self, id: EventId) -> Result<Arc<EventMeta>, ApiError> {
        let cached = self
            .inner
            .events
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned();
        let meta = match cached {
            Some(meta) => meta,
            None => {
                let meta = Arc::new(
                    self.store
                        .directory
                        .get(id)
                        .await?
                        .ok_or(ApiError::NotFound("no such event"))?,
                );
                self.inner
                    .events
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, meta.clone());
                meta
            }
        };
        if meta.is_expired(self.clock.now_ms()) {
            return Err(ApiError::NotFound("no such event (it has expired)"));
        }
        Ok(meta)
    }
}
