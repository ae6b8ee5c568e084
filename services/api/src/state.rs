//! What every handler shares: the store (for reads), the command executor
//! (for every change), the settings and the clock.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use openfloor_commands::Executor;
use openfloor_domain::clock::Clock;
use openfloor_domain::ids::EventId;
use openfloor_store::{EventMeta, Store, StoredView, Trigger};

use crate::client_address::ClientAddressSource;
use crate::error::ApiError;
use crate::limits::{Quotas, RateLimits};
use crate::regions::Regions;

/// Settings of the API, fixed at start.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The deployment's regions: this instance's, where new events live
    /// unless the host's location or choice says otherwise, and the others.
    pub regions: Regions,
    /// How long an event (and its records) lives.
    pub retention: Duration,
    /// How many partitions a new event's records are spread over.
    pub shards: u16,
    /// Salt for hashing client addresses into records.
    pub client_salt: Vec<u8>,
    /// Where clients' addresses come from (the connection, or the proxies
    /// in front).
    pub client_address: ClientAddressSource,
    /// How much one client may do.
    pub quotas: Quotas,
    /// How many questions one event may be asked: its host view, its
    /// stored state and its projections stay bounded. Checked against the
    /// projected count, so a burst may pass it by the questions of the
    /// last moment (the projector's lag).
    pub max_questions: u64,
    /// How much this instance keeps in memory.
    pub caches: CacheSizes,
    /// Served over HTTPS only (behind a CDN or API gateway): the voter
    /// cookie is `Secure` and named with the `__Host-` prefix. From the
    /// configuration alone, never from a client's `X-Forwarded-Proto`.
    pub secure_cookies: bool,
    /// How long this instance may answer polls from views it has read
    /// ([`VIEW_REUSE_BEHIND_A_CDN`] on AWS). Zero: read the store each time
    /// (the embedded store keeps its views in memory anyway).
    pub view_reuse: Duration,
}

/// How long an API instance on AWS reuses a view it has read: as long as a
/// CDN may (the guest view's `max-age`), so no poll sees older views than
/// the CDN would serve.
pub const VIEW_REUSE_BEHIND_A_CDN: Duration = Duration::from_secs(1);

/// [`ApiConfig::max_questions`] unless configured: ten times what a very
/// busy town hall is asked.
pub const DEFAULT_MAX_QUESTIONS: u64 = 5_000;

/// How many entries the API's caches keep. Beyond them the least used
/// are dropped, and read again from the store when asked for: memory stays
/// bounded however many events or voters a flood makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSizes {
    /// Events whose directory entries are kept (a few hundred bytes each).
    pub events: u64,
    /// Bytes of views kept for [`ApiConfig::view_reuse`].
    pub view_bytes: u64,
    /// (Address, voter) pairs remembered for the new-voter limit, in all
    /// (about 100 bytes each).
    pub voters: u64,
}

impl Default for CacheSizes {
    fn default() -> Self {
        Self {
            events: 10_000,
            view_bytes: 128 * 1024 * 1024,
            voters: 100_000,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            regions: Regions::single("local"),
            retention: Duration::from_secs(30 * 24 * 3600),
            shards: 1,
            client_salt: b"openfloor".to_vec(),
            client_address: ClientAddressSource::default(),
            quotas: Quotas::default(),
            max_questions: DEFAULT_MAX_QUESTIONS,
            caches: CacheSizes::default(),
            secure_cookies: false,
            view_reuse: Duration::ZERO,
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
    limits: RateLimits,
    /// Directory entries are written once, so a found one can be kept.
    /// (Misses are not kept: on AWS a new event may not have replicated yet.)
    events: Cache<EventId, Arc<EventMeta>>,
    /// Views read in the last [`ApiConfig::view_reuse`] (an inner `None`:
    /// none stored yet); `None` when that is zero.
    views: Option<Cache<EventId, Option<Arc<StoredView>>>>,
    /// The process's metrics for `/metrics`; `None`: switched off.
    metrics: Option<openfloor_telemetry::Metrics>,
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
            inner: Arc::new(Shared {
                limits: RateLimits::new(config.quotas, config.caches.voters),
                events: Cache::new(config.caches.events),
                views: (!config.view_reuse.is_zero()).then(|| {
                    Cache::builder()
                        .max_capacity(config.caches.view_bytes)
                        .weigher(|_, view: &Option<Arc<StoredView>>| {
                            view.as_ref().map_or(0, |v| v.weight())
                        })
                        .time_to_live(config.view_reuse)
                        .build()
                }),
                metrics: None,
            }),
            config: Arc::new(config),
            clock,
        }
    }

    /// Serves `metrics` at `/metrics` (off unless given).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Option<openfloor_telemetry::Metrics>) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("set before the state is shared");
        inner.metrics = metrics;
        self
    }

    /// The metrics `/metrics` serves, if it is switched on.
    pub fn metrics(&self) -> Option<&openfloor_telemetry::Metrics> {
        self.inner.metrics.as_ref()
    }

    /// A fresh, time-ordered ULID (for a question id the client left out).
    pub fn mint(&self) -> ulid::Ulid {
        self.executor.mint()
    }

    pub fn limits(&self) -> &RateLimits {
        &self.inner.limits
    }

    /// The live (unexpired) event, or 404. Shared, not copied: every
    /// request looks its event up.
    pub async fn event(&self, id: EventId) -> Result<Arc<EventMeta>, ApiError> {
        let meta = match self.inner.events.get(&id) {
            Some(meta) => meta,
            None => {
                let meta = Arc::new(
                    self.store
                        .directory
                        .get(id)
                        .await?
                        .ok_or(ApiError::NotFound("no such event"))?,
                );
                self.inner.events.insert(id, meta.clone());
                meta
            }
        };
        if meta.is_expired(self.clock.now_ms()) {
            return Err(ApiError::NotFound("no such event (it has expired)"));
        }
        Ok(meta)
    }

    /// The versions of the event's stored views, for a poll that may be
    /// answered `304`: from the views this instance read within
    /// [`ApiConfig::view_reuse`], else from the store, which reads them
    /// without the views' bytes where it can.
    pub async fn recent_versions(
        &self,
        event: EventId,
    ) -> Result<Option<openfloor_store::ViewVersions>, ApiError> {
        if let Some(view) = self
            .inner
            .views
            .as_ref()
            .and_then(|views| views.get(&event))
        {
            return Ok(view.map(|view| (&*view).into()));
        }
        Ok(self.store.views.recent_versions(event).await?)
    }

    /// The event's stored views for a poll: as this instance read them
    /// within [`ApiConfig::view_reuse`], else as the store has them
    /// recently.
    pub async fn recent_views(&self, event: EventId) -> Result<Option<Arc<StoredView>>, ApiError> {
        if let Some(view) = self
            .inner
            .views
            .as_ref()
            .and_then(|views| views.get(&event))
        {
            return Ok(view);
        }
        let view = self.store.views.get_recent(event).await?;
        if let Some(views) = &self.inner.views {
            views.insert(event, view.clone());
        }
        Ok(view)
    }
}
